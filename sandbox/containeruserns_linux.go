package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/setup"
	"github.com/podsb/podsb/rootfs"
)

// A container of a pod with a user namespace of its own is started as any
// other: its init, host root in the pod's PID, UTS, IPC and network
// namespaces and a new mount namespace, builds the container's root, and
// only then, before it becomes the command's user, joins the pod's user
// namespace (setup.SetNS; a Go thread cannot). So the container's mount
// namespace is owned by the host's user namespace: the container's root,
// with every capability of the pod's namespace, can neither mount nor
// unmount there, nor undo a read-only flag. What the container sees of
// the host is idmapped with the pod's namespace (rootfs.IDMapped), made
// here on the host: the image's layers under the overlay (whose upper
// directory belongs to the pod's root on the host), a --rootfs directory,
// the default root's host directories, the volumes of option idmap and
// the image volumes. Other volumes are plain binds: the pod sees host IDs
// that it does not map as nobody, and writes as its mapped IDs.

// openUserNS is the start's step that opens the pod's user namespace, if
// it has one of its own (else r.userns stays nil).
func (r *containerStart) openUserNS(context.Context) error {
	if r.pod.state == nil || r.pod.state.UserNS == nil {
		return nil
	}
	f, err := r.pod.openUserNS()
	if err != nil {
		return err
	}
	r.userns = f
	r.closeLater(f)
	return nil
}

// rootOwner is the host's IDs of the pod's root.
func (r *containerStart) rootOwner() rootfs.Owner {
	uid, gid := r.pod.hostIDs(0, 0)
	return rootfs.Owner{UID: uid, GID: gid}
}

// mapRoot is the start's step that, in a pod with a user namespace, opens
// what the container's root shows of the host idmapped with it: a root
// directory (as r.overlay, which the plan attaches as the root), or for
// the default root its tmpfs, the pod's root's, with its skeleton
// (rootfs.DefaultRoot), and the host's directories.
func (r *containerStart) mapRoot(context.Context) error {
	if r.userns == nil || r.cc.Image != nil {
		return nil
	}
	ns := int(r.userns.Fd())
	if r.spec.Dir != "" {
		if err := rootfs.MakeMountPoints(&r.spec); err != nil {
			return fmt.Errorf("rootfs %s: %w", r.spec.Dir, err)
		}
		f, err := rootfs.IDMapped(r.spec.Dir, ns, 0, true)
		if err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
		r.overlay = f
		r.closeLater(f)
		r.spec.Dir = fmt.Sprintf("/proc/self/fd/%d", f.Fd())
		return nil
	}
	root, err := rootfs.DefaultRoot(r.rootOwner())
	if err != nil {
		return err
	}
	r.overlay = root
	r.closeLater(root)
	for _, d := range rootfs.HostSystemDirs() {
		f, err := rootfs.IDMapped(d, ns, unix.MOUNT_ATTR_RDONLY, true)
		if err != nil {
			return err
		}
		r.closeLater(f)
		r.addShared(strings.TrimPrefix(d, "/"), f)
	}
	return nil
}

// addShared adds a detached tree for Spec.Shared under key.
func (r *containerStart) addShared(key string, f *os.File) {
	if r.volumes == nil {
		r.volumes = map[string]*os.File{}
	}
	r.volumes[key] = f
}

// overlayLayers returns the layers an image root's overlay is made of:
// the image's, or in a pod with a user namespace idmapped clones of them,
// to close once the overlay is made.
func (r *containerStart) overlayLayers(img *rootfs.ImageRoot) ([]string, func(), error) {
	if r.userns == nil {
		return img.Layers, func() {}, nil
	}
	l, err := rootfs.IDMapLayers(img.Layers, int(r.userns.Fd()))
	if err != nil {
		return nil, nil, err
	}
	return l.Paths, l.Close, nil
}

// ownUpper gives the pod's root, on the host, the root of an overlay's
// upper directory (nothing without a user namespace): the overlay's root
// directory is the upper's, and the pod's root must write there.
func (r *containerStart) ownUpper(upper string) error {
	if r.userns == nil {
		return nil
	}
	o := r.rootOwner()
	return os.Lchown(upper, int(o.UID), int(o.GID))
}

// mkdirRoot makes the directory dir of the root at root, and its missing
// parents, as MkdirAll, owned by the pod's root in a pod with a user
// namespace (as they would be by root without one). root is trusted;
// dir was resolved inside it.
func (r *containerStart) mkdirRoot(root, dir string) error {
	if r.userns == nil {
		return os.MkdirAll(dir, 0o755)
	}
	o := r.rootOwner()
	rel, err := filepath.Rel(root, dir)
	if err != nil {
		return err
	}
	cur := root
	for _, part := range strings.Split(rel, "/") {
		if part == "." || part == "" {
			continue
		}
		cur = filepath.Join(cur, part)
		err := os.Mkdir(cur, 0o755)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := os.Lchown(cur, int(o.UID), int(o.GID)); err != nil {
			return err
		}
	}
	return nil
}

// openVolumeIn opens a volume's tree for a pod with a user namespace:
// idmapped if it has the option idmap, an image volume's layers idmapped;
// nil for a volume the plan binds itself.
func (r *containerStart) openVolumeIn(v rootfs.Volume) (*os.File, bool, error) {
	ns := int(r.userns.Fd())
	switch {
	case v.Image != nil:
		return rootfs.OpenImageVolumeIn(v, ns)
	case v.IDMap:
		f, err := rootfs.IDMapped(v.Source, ns, 0, true)
		return f, true, err
	}
	return nil, true, nil
}

// joinUserNSOps appends to ops the joining of the pod's user namespace, if
// it has one of its own: the user namespace's handle is the init's next
// extra file.
func (r *containerStart) joinUserNSOps(ops []setup.Op) []setup.Op {
	if r.userns == nil {
		return ops
	}
	ops = append(ops, setup.Op{Code: setup.SetNS, Num: uint64(programExtraFD + len(r.extra))})
	r.extra = append(r.extra, r.userns)
	return ops
}

// lateProcOps appends to ops, the program up to the built root, what
// gives a container of a pod with a user namespace a PID namespace of its
// own. The kernel makes a new PID namespace its creator's user
// namespace's, and refuses one of the host's user namespace below the
// pod's PID namespace, which the pod's user namespace owns (EINVAL); so
// the init joins the pod's user namespace once the root is built, then
// spawns the command's process with CLONE_NEWPID and CLONE_NEWNS: PID 1
// of a namespace the pod's user namespace owns, in a copy of the
// container's mount namespace that it owns too, where the process mounts
// its namespace's /proc and masks it (rootfs.ProcPlan; the plan left
// /proc out, Spec.ProcLater). A mount made by the host's root is locked
// in that copy: the process cannot undo one.
func (r *containerStart) lateProcOps(ops []setup.Op, spawn setup.Op) ([]setup.Op, error) {
	proc, err := rootfs.ProcPlan(&r.spec)
	if err != nil {
		return nil, invalid(err)
	}
	ops = r.joinUserNSOps(ops)
	spawn.Num |= unix.CLONE_NEWPID | unix.CLONE_NEWNS
	return append(append(ops, spawn), proc...), nil
}
