// Package rootfs prepares a pod's root filesystem and switches to it.
//
// It owns everything the pod sees at and below "/": the default root (a fresh
// tmpfs with read-only binds of the host's /usr, /bin, /sbin and /lib*, and a
// pod-private /etc), or a directory root bound onto itself; /proc of the pod's
// PID namespace, a read-only /sys, a small /dev with a private devpts and
// /dev/shm, a writable /tmp, the pod's /etc/hostname, /etc/hosts and
// /etc/resolv.conf, volumes, and finally pivot_root with the old root
// detached so that no path of the host stays reachable.
//
// Privileges: CAP_SYS_ADMIN and CAP_MKNOD in the caller's namespaces.
//
// Thread rules: Prepare and Pivot change the mount namespace and the root and
// working directory of the whole process, so they must run in a process of its
// own, already inside the pod's new mount namespace and, for /proc to show the
// pod's processes, as a member of the pod's PID namespace. The pod's init (a
// re-exec of the podsb binary) is such a process.
package rootfs
