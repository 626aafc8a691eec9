package rootfs

import (
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// Host is what Plan reads of the host: every file system look-up a plan
// makes goes through it, so a plan is a function of its Spec and its Host
// alone. OS is the real host; the unit tests plan against a fake one.
// Lstat and Readlink also make it a securejoin.VFS.
type Host interface {
	Lstat(path string) (fs.FileInfo, error)
	Stat(path string) (fs.FileInfo, error)
	Readlink(path string) (string, error)
	ReadFile(path string) ([]byte, error)
	// Writable reports whether the caller may write to path (access(2)).
	Writable(path string) bool
}

// OS is the host's own file system.
var OS Host = osHost{}

type osHost struct{}

func (osHost) Lstat(p string) (fs.FileInfo, error) { return os.Lstat(p) }
func (osHost) Stat(p string) (fs.FileInfo, error)  { return os.Stat(p) }
func (osHost) Readlink(p string) (string, error)   { return os.Readlink(p) }
func (osHost) ReadFile(p string) ([]byte, error)   { return os.ReadFile(p) }
func (osHost) Writable(p string) bool              { return unix.Access(p, unix.W_OK) == nil }
