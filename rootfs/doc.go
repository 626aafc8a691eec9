// Package rootfs plans a pod's root filesystem.
//
// It owns everything the pod sees at and below "/": the default root (a fresh
// tmpfs with read-only binds of the host's /usr, /bin, /sbin and /lib*, and a
// pod-private /etc), or a directory root bound onto itself; /proc of the pod's
// PID namespace, a read-only /sys, a small /dev with a private devpts and
// /dev/shm, a writable /tmp, the pod's /etc/hostname, /etc/hosts and
// /etc/resolv.conf, volumes, and finally pivot_root with the old root
// detached so that no path of the host stays reachable.
//
// Plan runs on the host and only decides: it reads what the root needs (the
// host's layout, files to copy, where a volume's destination resolves inside
// a directory root) and returns the operations (package internal/setup) that
// the pod's init executes inside the pod's new namespaces. Every host read a
// plan makes goes through a Host (OS in production), so a plan depends on
// its Spec and its Host alone and is unit-tested against a fake host,
// without root (plan_test.go). Check validates a
// spec before anything is made. Neither needs privileges; executing the plan
// needs CAP_SYS_ADMIN and CAP_MKNOD, in a process alone in a new mount
// namespace and inside the pod's PID namespace (for /proc).
//
// The operations of a plan, in order, with T the target directory:
//
//   - make / rslave: nothing mounted from here on propagates to the host;
//   - the root: for the default root a tmpfs at T with recursive read-only
//     binds of the host's /usr, /bin, /sbin and /lib* (or their merged-/usr
//     symlinks) and read-only binds of the host's /etc/passwd, group and
//     nsswitch.conf (copies with Spec.EtcCopies, in a user namespace of the
//     pod's own); for a directory root, DIR bound recursively onto T
//     (pivot_root needs a mount point) and made nodev unless privileged;
//   - proc (nosuid,nodev,noexec) and a read-only sysfs;
//   - /dev: a tmpfs with bind mounts of the host's null, zero, full,
//     random, urandom and tty (mknod only when privileged), the standard
//     symlinks, a new devpts instance (or, for a container, the pod's,
//     attached from Spec.Shared), /dev/shm and /dev/mqueue;
//   - /tmp, 1777: in the default root a directory of its tmpfs bound onto
//     itself (a mount of its own without a superblock of its own), over a
//     directory root a tmpfs;
//   - unless privileged, MaskedPaths hidden and ReadOnlyPaths made
//     read-only, as runc's defaults;
//   - /etc/hostname, hosts and resolv.conf: files in the default root's
//     private /etc, bind mounts from Spec.EtcDir over a directory root's
//     own (a symlinked entry is left alone);
//   - volumes: the destination resolved inside a directory root with
//     filepath-securejoin, made, bound recursively, read-only with ro;
//   - with ReadOnly, a read-only remount of T alone (/proc, /dev, /tmp and
//     volumes keep their modes);
//   - pivot_root(".", "."), the old root made a recursive slave and
//     detached: no path of the host stays reachable.
//
// Recursive read-only uses mount_setattr(AT_RECURSIVE, MOUNT_ATTR_RDONLY),
// with a bind remount of the top mount on kernels before 5.12.
//
// A root can also be made of image layers (ImageRoot): MountOverlay mounts
// them as an overlayfs with the new mount API and returns it detached, as
// an fd that the plan attaches as the root (Spec.Shared["."]). It is the
// one function here that changes the system: it needs CAP_SYS_ADMIN, and
// mounts nothing in the caller's tree. OpenImageVolume (the same
// privilege, the same detachment) opens an image volume (Volume.Image):
// the layers as a read-only overlay with no upper directory (a bind of the
// layer if it is alone: overlayfs needs two lower layers then), nosuid and
// nodev, or Volume.SubPath of it, resolved inside it (RESOLVE_IN_ROOT);
// the plan moves it to the destination (Spec.Shared, SharedFiles).
// IDMapped, Clone and Tmpfs make detached mounts likewise, for a pod with a user namespace of its own,
// whose init cannot reach the host's paths as the namespace's root: an
// idmapped clone of a host tree (mount_setattr MOUNT_ATTR_IDMAP with the
// pod's maps, so its files show their host owners), a plain clone (a
// volume), and the default root's tmpfs owned by the pod's root. The
// plan then takes the root as attached already (Spec.Attached: Target is
// a path to it), with the host's system directories in it
// (Spec.HostDirsAttached) and volumes staged elsewhere (Spec.Staged).
//
// A container of such a pod is built by the host's root, which then joins
// the pod's user namespace: IDMapLayers gives an image's layers as
// idmapped read-only clones, which MountOverlay and OpenImageVolumeIn take
// as layers (the image's files show their image owners in the pod, and
// nothing is chown-ed on disk); DefaultRoot makes the default root's tmpfs
// with its skeleton owned by the pod's root, attached as Spec.Shared["."]
// with the host's system directories as idmapped clones under their
// names; MakeMountPoints makes a directory root's missing mount points
// before it is idmapped (through the idmapped mount the host's root, which
// the pod does not map, cannot create files: EOVERFLOW), and
// MakeMountPointsOwned makes an image overlay's, owned by the pod's root
// (the overlay itself is not idmapped: made by the host's root, they
// would show as nobody).
package rootfs
