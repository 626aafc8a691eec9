package rootfs

import (
	"os"
	"path/filepath"

	securejoin "github.com/cyphar/filepath-securejoin"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// MakeMountPoints makes, in the directory root s.Dir, the mount points
// the plan would make that are missing: /proc, /sys, /dev, /tmp, the /etc
// files (if /etc is there) and the volumes' destinations, owned by the
// caller (the host's root). Plan's own making of them fails where s.Dir
// is reached through a mount idmapped with a user namespace that does not
// map the host's root (EOVERFLOW): the root of a container of a pod with
// a user namespace is made so; this runs first, on the directory itself,
// so that they show as the namespace root's there, as without one.
//
// Paths resolve inside s.Dir, and every step is taken from a handle of
// the directory above it (pathrs-lite's MkdirAllHandle, then mkdirat or
// openat with O_NOFOLLOW): the directory may be a running pod's to write,
// and a symbolic link it swaps in cannot lead the host's root out.
func MakeMountPoints(s *Spec) error {
	if s.Dir == "" {
		return nil
	}
	root, err := os.OpenFile(s.Dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer root.Close()
	mk := func(rel string, dir bool) error {
		// SecureJoin first, for its reading of a dangling symbolic link
		// (made at its target in the root); the handles then keep a link
		// swapped in since inside the root.
		p, err := securejoin.SecureJoin(s.Dir, rel)
		if err != nil {
			return err
		}
		inRoot, err := filepath.Rel(s.Dir, p)
		if err != nil {
			return err
		}
		parentRel, base := filepath.Split(inRoot)
		if base == "" {
			return nil
		}
		parent, err := pathrs.MkdirAllHandle(root, parentRel, 0o755)
		if err != nil {
			return err
		}
		defer parent.Close()
		fd := int(parent.Fd())
		var st unix.Stat_t
		switch err := unix.Fstatat(fd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err {
		case nil:
			return nil // there already, whatever it is
		case unix.ENOENT:
		default:
			return os.NewSyscallError("fstatat", err)
		}
		if dir {
			if err := unix.Mkdirat(fd, base, 0o755); err != nil && err != unix.EEXIST {
				return os.NewSyscallError("mkdirat", err)
			}
			return nil
		}
		f, err := unix.Openat(fd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
		if err == unix.EEXIST {
			return nil
		}
		if err != nil {
			return os.NewSyscallError("openat", err)
		}
		return unix.Close(f)
	}
	for _, d := range []string{"proc", "sys", "dev", "tmp"} {
		if err := mk(d, true); err != nil {
			return err
		}
	}
	if etc, err := securejoin.SecureJoin(s.Dir, "etc"); err == nil {
		if fi, err := os.Stat(etc); err == nil && fi.IsDir() {
			for _, f := range EtcFiles {
				if err := mk("etc/"+f, false); err != nil {
					return err
				}
			}
		}
	}
	for _, v := range s.Volumes {
		dir := true
		if v.Image == nil {
			fi, err := os.Stat(v.Source)
			if err != nil {
				return err
			}
			dir = fi.IsDir()
		}
		if err := mk(v.Destination, dir); err != nil {
			return err
		}
	}
	return nil
}
