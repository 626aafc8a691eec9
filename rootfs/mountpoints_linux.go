package rootfs

import (
	"os"
	"path/filepath"
	"strings"

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
func MakeMountPoints(s *Spec) error { return makeMountPoints(s, nil) }

// MakeMountPointsOwned is MakeMountPoints, but what it makes, the missing
// directories above a mount point included, is owned by owner: the pod's
// root on the host, for the root of a container of a pod with a user
// namespace that is an image's overlay. The overlay is not idmapped (its
// layers are), so what the host's root made in its upper directory would
// show as nobody in the pod. The directories are made one by one, each
// with mkdirat from a handle of the one above it, opened again with
// O_NOFOLLOW and fchown-ed through that handle.
func MakeMountPointsOwned(s *Spec, owner Owner) error { return makeMountPoints(s, &owner) }

func makeMountPoints(s *Spec, owner *Owner) error {
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
		var parent *os.File
		if owner == nil {
			parent, err = pathrs.MkdirAllHandle(root, parentRel, 0o755)
		} else {
			parent, err = mkdirAllOwned(root, parentRel, *owner)
		}
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
			if owner == nil {
				return nil
			}
			d, err := openDirAt(fd, base)
			if err != nil {
				return err
			}
			defer d.Close()
			return chown(d, *owner)
		}
		f, err := unix.Openat(fd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
		if err == unix.EEXIST {
			return nil
		}
		if err != nil {
			return os.NewSyscallError("openat", err)
		}
		if owner != nil {
			if err := unix.Fchown(f, int(owner.UID), int(owner.GID)); err != nil {
				unix.Close(f)
				return os.NewSyscallError("fchown", err)
			}
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
				// A symbolic link the plan leaves as it is.
				if fi, err := os.Lstat(filepath.Join(etc, f)); err == nil && fi.Mode()&os.ModeSymlink != 0 {
					continue
				}
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

// mkdirAllOwned makes the directories of rel (clean, relative, with no
// symbolic link, as SecureJoin resolved it) below root, the missing ones
// owned by owner, and returns a handle of the last. Each step is taken
// from a handle of the directory above it, without following a symbolic
// link: one swapped in meanwhile makes it fail, never lead out.
func mkdirAllOwned(root *os.File, rel string, owner Owner) (*os.File, error) {
	cur, err := openDirAt(int(root.Fd()), ".")
	if err != nil {
		return nil, err
	}
	for _, name := range strings.Split(filepath.Clean(rel), "/") {
		if name == "." || name == "" {
			continue
		}
		made := false
		switch err := unix.Mkdirat(int(cur.Fd()), name, 0o755); err {
		case nil:
			made = true
		case unix.EEXIST:
		default:
			cur.Close()
			return nil, os.NewSyscallError("mkdirat", err)
		}
		next, err := openDirAt(int(cur.Fd()), name)
		cur.Close()
		if err != nil {
			return nil, err
		}
		cur = next
		if made {
			if err := chown(cur, owner); err != nil {
				cur.Close()
				return nil, err
			}
		}
	}
	return cur, nil
}

// openDirAt opens the directory name of the directory dirfd, not
// following a symbolic link.
func openDirAt(dirfd int, name string) (*os.File, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "openat", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

func chown(f *os.File, o Owner) error {
	if err := unix.Fchown(int(f.Fd()), int(o.UID), int(o.GID)); err != nil {
		return &os.PathError{Op: "fchown", Path: f.Name(), Err: err}
	}
	return nil
}
