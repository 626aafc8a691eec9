package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// Prepare assembles the root described by s at s.Target.
//
// Preconditions: the calling process is alone in a new mount namespace and
// is a member of the pod's PID namespace (for /proc).
func Prepare(s *Spec) error {
	// Nothing mounted from here on may propagate back to the host; host
	// unmounts still reach the pod (as runc's default rslave).
	if err := mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return err
	}
	t := s.Target
	if s.Dir == "" {
		if err := defaultRoot(t); err != nil {
			return fmt.Errorf("default root: %w", err)
		}
	} else {
		// pivot_root needs the new root to be a mount point.
		if err := mount(s.Dir, t, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return err
		}
	}
	for _, d := range []string{"proc", "sys", "dev", "tmp"} {
		if err := mkdirIn(t, d); err != nil {
			return err
		}
	}
	if err := mount("proc", filepath.Join(t, "proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return err
	}
	if err := mount("sysfs", filepath.Join(t, "sys"), "sysfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return err
	}
	if err := devices(filepath.Join(t, "dev")); err != nil {
		return fmt.Errorf("/dev: %w", err)
	}
	if err := mount("tmpfs", filepath.Join(t, "tmp"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
		return err
	}
	if err := etcFiles(s); err != nil {
		return fmt.Errorf("/etc: %w", err)
	}
	for _, v := range s.Volumes {
		if err := volume(t, v); err != nil {
			return fmt.Errorf("volume %s: %w", v, err)
		}
	}
	if s.ReadOnly {
		if err := remountReadOnly(t, 0); err != nil {
			return err
		}
	}
	return nil
}

// defaultRoot mounts a tmpfs at t holding read-only binds of the host's system
// directories and a private /etc.
func defaultRoot(t string) error {
	if err := mount("tmpfs", t, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return err
	}
	for _, d := range hostSystemDirs {
		fi, err := os.Lstat(d)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		dst := filepath.Join(t, d)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			link, err := os.Readlink(d)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, dst); err != nil {
				return err
			}
		case fi.IsDir():
			if err := os.Mkdir(dst, 0o755); err != nil {
				return err
			}
			if err := bindReadOnly(d, dst, 0); err != nil {
				return err
			}
		}
	}
	for _, d := range []string{"etc", "root", "run", "var", "var/tmp", "home"} {
		if err := os.Mkdir(filepath.Join(t, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(t, "var/tmp"), 0o1777); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(t, "root"), 0o700); err != nil {
		return err
	}
	for _, f := range hostEtcCopies {
		b, err := os.ReadFile(filepath.Join("/etc", f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(t, "etc", f), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// etcFiles gives the root the pod's hostname, hosts and resolv.conf from
// s.EtcDir: copies in the default root's private /etc, bind mounts over the
// entries of a directory root (whose files stay untouched), created where
// the root allows.
func etcFiles(s *Spec) error {
	etc, err := securejoin.SecureJoin(s.Target, "etc")
	if err != nil {
		return err
	}
	if s.Dir == "" {
		for _, f := range EtcFiles {
			b, err := os.ReadFile(filepath.Join(s.EtcDir, f))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(etc, f), b, 0o644); err != nil {
				return err
			}
		}
		return nil
	}
	if !isDir(etc) {
		return nil // a root without /etc gets none
	}
	for _, f := range EtcFiles {
		dst := filepath.Join(etc, f)
		fi, err := os.Lstat(dst)
		switch {
		case err == nil && !fi.Mode().IsRegular():
			// A symlink (resolv.conf often is one) would be followed in
			// the host's tree by mount(2): leave it as the root has it.
			continue
		case err != nil:
			// Missing: create the mount point if the root allows.
			fd, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if err != nil {
				continue
			}
			fd.Close()
		}
		src := filepath.Join(s.EtcDir, f)
		if s.ReadOnly {
			err = bindReadOnly(src, dst, 0)
		} else {
			err = mount(src, dst, "", unix.MS_BIND, "")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// volume binds v.Source at v.Destination inside root t. The destination is
// resolved inside the root, so a symlink in the root cannot send the mount
// outside it.
func volume(t string, v Volume) error {
	dst, err := securejoin.SecureJoin(t, v.Destination)
	if err != nil {
		return err
	}
	fi, err := os.Stat(v.Source)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
	} else {
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(dst, os.O_CREATE|os.O_RDONLY, 0o644)
		if err != nil {
			return err
		}
		f.Close()
	}
	if v.ReadOnly {
		return bindReadOnly(v.Source, dst, 0)
	}
	return mount(v.Source, dst, "", unix.MS_BIND|unix.MS_REC, "")
}

// mkdirIn creates the directory name inside root t unless it exists.
func mkdirIn(t, name string) error {
	p, err := securejoin.SecureJoin(t, name)
	if err != nil {
		return err
	}
	if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return nil
}

// Pivot makes t the root of the calling process's mount namespace and
// detaches the old root, so nothing of the host stays reachable.
//
// It uses pivot_root(".", "."): the old root is stacked under the new one at
// the same place, needs no put_old directory, and is unmounted right away.
func Pivot(t string) error {
	oldroot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: "/", Err: err}
	}
	defer unix.Close(oldroot)
	if err := unix.Chdir(t); err != nil {
		return &os.PathError{Op: "chdir", Path: t, Err: err}
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return &os.PathError{Op: "pivot_root", Path: t, Err: err}
	}
	if err := unix.Fchdir(oldroot); err != nil {
		return &os.PathError{Op: "fchdir", Path: "old root", Err: err}
	}
	// The old root must not pass the unmount on to the host's mounts.
	if err := mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return err
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return &os.PathError{Op: "umount", Path: "old root", Err: err}
	}
	if err := unix.Chdir("/"); err != nil {
		return &os.PathError{Op: "chdir", Path: "/", Err: err}
	}
	return nil
}
