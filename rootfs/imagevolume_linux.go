package rootfs

import (
	"os"

	"golang.org/x/sys/unix"
)

// OpenImageVolume returns the tree an image volume (Volume.Image) shows,
// detached, for Spec.Shared under VolumeKey(v): the image's layers as a
// read-only overlay (a bind of the layer if it is alone: overlayfs needs
// two lower layers without an upper), nosuid and nodev, or the directory
// or file Volume.SubPath of it, resolved inside the image (openat2
// RESOLVE_IN_ROOT: a symlink of the image cannot lead out). isDir tells
// which it is.
//
// Needs CAP_SYS_ADMIN; it changes nothing in the caller's tree.
func OpenImageVolume(v Volume) (f *os.File, isDir bool, err error) {
	return OpenImageVolumeIn(v, -1)
}

// OpenImageVolumeIn is OpenImageVolume for a pod with a user namespace of
// its own, at the fd userns (none if -1): the layers are idmapped with it
// (IDMapLayers), so that the image's files show their image owners there.
func OpenImageVolumeIn(v Volume, userns int) (f *os.File, isDir bool, err error) {
	if v.Image == nil {
		return nil, false, invalidf("volume %s: not an image volume", v)
	}
	layers := v.Image.Layers
	var fd int
	if userns >= 0 {
		l, err := IDMapLayers(layers, userns)
		if err != nil {
			return nil, false, err
		}
		defer l.Close()
		if len(layers) == 1 {
			// The idmapped clone itself: it is detached already.
			fd, err = unix.FcntlInt(l.files[0].Fd(), unix.F_DUPFD_CLOEXEC, 0)
			if err != nil {
				return nil, false, os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", err)
			}
		} else if fd, err = mountLowers(l.Paths); err != nil {
			return nil, false, err
		}
	} else if len(layers) == 1 {
		fd, err = unix.OpenTree(unix.AT_FDCWD, layers[0], unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return nil, false, &os.PathError{Op: "open_tree", Path: layers[0], Err: err}
		}
	} else if fd, err = mountLowers(layers); err != nil {
		return nil, false, err
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
		unix.Close(fd)
		return nil, false, os.NewSyscallError("mount_setattr", err)
	}
	if v.SubPath == "" {
		return os.NewFile(uintptr(fd), "image:"+v.Image.ID), true, nil
	}
	defer unix.Close(fd)
	how := unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	pfd, err := unix.Openat2(fd, v.SubPath, &how)
	if err != nil {
		return nil, false, invalidf("volume %s: sub path %s of image %s: %w", v, v.SubPath, v.Image.ID, err)
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return nil, false, os.NewSyscallError("fstat", err)
	}
	sub, err := unix.OpenTree(pfd, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	if err != nil {
		return nil, false, &os.PathError{Op: "open_tree", Path: v.SubPath, Err: err}
	}
	return os.NewFile(uintptr(sub), "image:"+v.Image.ID+":"+v.SubPath), st.Mode&unix.S_IFMT == unix.S_IFDIR, nil
}

// mountLowers makes a read-only overlayfs of layers (lowest first), with
// no upper layer, detached.
func mountLowers(layers []string) (int, error) {
	fs, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, os.NewSyscallError("fsopen overlay", err)
	}
	defer unix.Close(fs)
	for i := len(layers) - 1; i >= 0; i-- {
		if err := unix.FsconfigSetString(fs, "lowerdir+", layers[i]); err != nil {
			return -1, &overlayError{op: "fsconfig lowerdir+=" + layers[i], err: err, log: fsLog(fs)}
		}
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return -1, &overlayError{op: "create overlay", err: err, log: fsLog(fs)}
	}
	m, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY)
	if err != nil {
		return -1, &overlayError{op: "fsmount overlay", err: err, log: fsLog(fs)}
	}
	return m, nil
}
