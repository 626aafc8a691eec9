package image

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// ErrUntrustedRoot means the image root, or a directory above it, can be
// changed by a user other than root. The store holds set-user-ID files and
// device nodes from images, so podsb uses no such root.
var ErrUntrustedRoot = errors.New("untrusted image root")

// checkTrusted fails unless root and every directory above it are owned by
// root and not writable by group or others (a sticky directory above it,
// as /tmp, may be), as package sandbox requires of the state root.
func checkTrusted(root string) error {
	for d, first := root, true; ; d, first = filepath.Dir(d), false {
		fi, err := os.Lstat(d)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		perm := fi.Mode().Perm()&0o022 == 0 || !first && fi.Mode()&fs.ModeSticky != 0
		if !ok || st.Uid != 0 || !fi.IsDir() || !perm {
			return newErr(ErrUntrustedRoot, "untrusted image root %s: %s is not owned by root or is writable by group or others", root, d)
		}
		if d == "/" {
			return nil
		}
	}
}
