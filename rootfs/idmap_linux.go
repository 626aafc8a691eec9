package rootfs

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// IDMapped returns a detached clone of the mount tree at path (with the
// mounts below it if recursive), idmapped with the user namespace at the
// fd userns and given the attributes attr (unix.MOUNT_ATTR_RDONLY and the
// like), as an fd for Spec.Shared. A file the host's root owns shows,
// through the mount, as owned by the namespace's root, and what the
// namespace's root creates is the host's root's on disk.
//
// It changes nothing in the caller's mount table. It needs CAP_SYS_ADMIN,
// and a file system that supports idmapped mounts (ext4, xfs, btrfs,
// tmpfs, overlayfs on Linux 6.x); an error names the path and the
// errno, EINVAL for a file system that does not.
func IDMapped(path string, userns int, attr uint64, recursive bool) (*os.File, error) {
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC)
	setFlags := uint(0)
	if recursive {
		flags |= unix.AT_RECURSIVE
		setFlags = unix.AT_RECURSIVE
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, path, flags)
	if err != nil {
		return nil, &os.PathError{Op: "open_tree", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	a := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP | attr, Userns_fd: uint64(userns)}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|setFlags, a); err != nil {
		f.Close()
		if errors.Is(err, unix.EINVAL) {
			return nil, fmt.Errorf("idmapped mount of %s: its file system (or one mounted below it) does not support idmapped mounts: %w", path, err)
		}
		return nil, &os.PathError{Op: "mount_setattr idmap", Path: path, Err: err}
	}
	return f, nil
}

// Clone returns a detached clone of the mount tree at path and the mounts
// below it, as an fd for Spec.Shared: the source of a volume that a
// process without the host's privileges attaches (move_mount needs no
// path to the source).
func Clone(path string) (*os.File, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return nil, &os.PathError{Op: "open_tree", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// Tmpfs returns a new detached tmpfs (nosuid, nodev) whose root directory,
// mode 0755, belongs to uid and gid: the default root of a pod whose root
// is uid on the host.
func Tmpfs(uid, gid uint32) (*os.File, error) {
	fs, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("fsopen tmpfs", err)
	}
	defer unix.Close(fs)
	for _, kv := range [][2]string{{"mode", "0755"}, {"uid", strconv.FormatUint(uint64(uid), 10)}, {"gid", strconv.FormatUint(uint64(gid), 10)}} {
		if err := unix.FsconfigSetString(fs, kv[0], kv[1]); err != nil {
			return nil, fmt.Errorf("tmpfs option %s=%s: %w", kv[0], kv[1], err)
		}
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return nil, os.NewSyscallError("fsconfig create tmpfs", err)
	}
	fd, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
	if err != nil {
		return nil, os.NewSyscallError("fsmount tmpfs", err)
	}
	return os.NewFile(uintptr(fd), "tmpfs"), nil
}

// HostSystemDirs are the host's directories the default root binds
// read-only, where they exist as directories.
func HostSystemDirs() []string {
	var out []string
	for _, d := range hostSystemDirs {
		if fi, err := OS.Lstat(d); err == nil && fi.IsDir() {
			out = append(out, d)
		}
	}
	return out
}

// Layers are an image's layer directories opened for an overlay
// (MountOverlay, OpenImageVolumeIn): each an idmapped, read-only,
// detached clone, named by its /proc/self/fd path, which overlayfs takes
// as a layer like any directory (it keeps a private clone of its own).
// Through them a file the image owns as 0 shows, in the user namespace
// they are mapped with, as owned by the namespace's 0, and by the
// namespace's host ID on the host side of the overlay; nothing is
// chowned on disk.
type Layers struct {
	Paths []string // lowest first, as ImageRoot.Layers
	files []*os.File
}

// IDMapLayers opens dirs, an image's layers (lowest first), idmapped with
// the user namespace at the fd userns. The caller closes the Layers once
// the overlay is made. Needs CAP_SYS_ADMIN.
func IDMapLayers(dirs []string, userns int) (*Layers, error) {
	l := &Layers{}
	for _, d := range dirs {
		f, err := IDMapped(d, userns, unix.MOUNT_ATTR_RDONLY, false)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("image layer: %w", err)
		}
		l.files = append(l.files, f)
		l.Paths = append(l.Paths, "/proc/self/fd/"+strconv.Itoa(int(f.Fd())))
	}
	return l, nil
}

// Close closes the layers' clones; an overlay made of them keeps its own.
func (l *Layers) Close() {
	for _, f := range l.files {
		f.Close()
	}
	l.files = nil
}

// Owner is a host user and group ID.
type Owner struct{ UID, GID uint32 }

// DefaultRoot returns, as an fd for Spec.Shared["."], a default root's
// tmpfs made on the host, with the skeleton Plan fills (/etc and its
// files, /root, /run, /var, /var/tmp, /home, /tmp) made already and owned by
// owner: the root of a container of a pod with a user namespace, whose
// init builds the root as the host's root. Plan's operations keep what
// is there (a directory made again, a file truncated keep their owner),
// so the pod's root owns its root as it would without a user namespace.
// Needs CAP_SYS_ADMIN.
func DefaultRoot(owner Owner) (*os.File, error) {
	f, err := Tmpfs(owner.UID, owner.GID)
	if err != nil {
		return nil, err
	}
	root := "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
	mk := func(name string, mode os.FileMode, dir bool) error {
		p := root + "/" + name
		var err error
		if dir {
			err = os.Mkdir(p, mode)
		} else {
			err = os.WriteFile(p, nil, mode)
		}
		if err == nil {
			err = os.Chmod(p, mode) // past the umask
		}
		if err == nil {
			err = os.Lchown(p, int(owner.UID), int(owner.GID))
		}
		return err
	}
	for _, d := range []struct {
		name string
		mode os.FileMode
	}{{"etc", 0o755}, {"root", 0o700}, {"run", 0o755}, {"var", 0o755}, {"var/tmp", 0o777 | os.ModeSticky}, {"home", 0o755}, {"tmp", 0o777 | os.ModeSticky}} {
		if err := mk(d.name, d.mode, true); err != nil {
			f.Close()
			return nil, fmt.Errorf("default root: %w", err)
		}
	}
	for _, n := range append(append([]string{}, hostEtcFiles...), EtcFiles...) {
		if err := mk("etc/"+n, 0o644, false); err != nil {
			f.Close()
			return nil, fmt.Errorf("default root: %w", err)
		}
	}
	return f, nil
}
