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
// A root can also be made of image layers (ImageRoot): MountOverlay mounts
// them as an overlayfs with the new mount API and returns it detached, as
// an fd that the plan attaches as the root (Spec.Shared["."]). It is the
// one function here that changes the system: it needs CAP_SYS_ADMIN, and
// mounts nothing in the caller's tree.
package rootfs
