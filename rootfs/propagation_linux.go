package rootfs

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// sourcePeering returns how the mount that holds path propagates, in the
// caller's mount namespace.
func sourcePeering(path string) (peering, error) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_MNT_ID, &stx); err != nil {
		return peering{}, &os.PathError{Op: "statx", Path: path, Err: err}
	}
	if stx.Mask&unix.STATX_MNT_ID == 0 {
		return peering{}, fmt.Errorf("statx %s: no mount ID", path)
	}
	f, err := os.Open("/proc/thread-self/mountinfo")
	if err != nil {
		return peering{}, err
	}
	defer f.Close()
	p, ok := peeringOf(f, stx.Mnt_id)
	if !ok {
		return peering{}, fmt.Errorf("mount %d of %s: not in mountinfo", stx.Mnt_id, path)
	}
	return p, nil
}

// checkPropagation refuses a volume whose propagation cannot work with
// the mount of its source on the host: rshared needs a shared mount (the
// volume joins its peer group), rslave a shared or slave one (the volume
// receives what it receives). Otherwise the volume would silently not
// propagate. Make the source's mount shared first, e.g.
// mount --make-rshared, or bind it onto itself and make that shared.
func checkPropagation(v Volume) error {
	if v.Propagation != PropagationShared && v.Propagation != PropagationSlave {
		return nil
	}
	p, err := sourcePeering(v.Source)
	if err != nil {
		return invalidf("volume %s: %w", v, err)
	}
	switch {
	case v.Propagation == PropagationShared && !p.shared:
		return invalidf("volume %s: propagation %s: the host's mount of %s is not shared (mount --make-shared it)", v, v.Propagation, v.Source)
	case v.Propagation == PropagationSlave && !p.shared && !p.slave:
		return invalidf("volume %s: propagation %s: the host's mount of %s is neither shared nor a slave (mount --make-shared it)", v, v.Propagation, v.Source)
	}
	return nil
}

// OpenVolume returns a volume's source as a detached clone of its tree of
// mounts (open_tree OPEN_TREE_CLONE|AT_RECURSIVE), for Spec.Shared under
// VolumeKey(v): the clone keeps the peer group of the source's mount,
// which a bind made inside the container's namespace (a slave of the
// host's) cannot. Plan needs it for a volume of PropagationShared. The
// source's mount must be shared (checkPropagation).
//
// Needs CAP_SYS_ADMIN; it changes nothing in the caller's tree.
func OpenVolume(v Volume) (*os.File, error) {
	if err := checkPropagation(v); err != nil {
		return nil, err
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, v.Source, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return nil, &os.PathError{Op: "open_tree", Path: v.Source, Err: err}
	}
	return os.NewFile(uintptr(fd), v.Source), nil
}
