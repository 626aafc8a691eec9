// Package nsenter joins namespaces from a multi-threaded Go program.
//
// The kernel makes joining namespaces a per-thread affair, and Go runs
// goroutines on whatever thread is free, so the rules are:
//
//   - setns(2) runs on a goroutine that has locked its OS thread, and that
//     thread is never unlocked: the goroutine returns and the runtime
//     destroys the thread, so no other goroutine ever runs in the joined
//     namespaces by accident. Since Go 1.10 the runtime never starts new
//     threads from a locked one.
//   - Joining a mount namespace is refused (EINVAL) to a thread that shares
//     its filesystem state (root, cwd, umask) with others, as every Go
//     thread does: the thread first calls unshare(CLONE_FS). After setns the
//     thread's root and cwd are the root of the joined mount namespace; for a
//     podsb pod that is the pod's root, thanks to pivot_root.
//   - Joining a PID namespace only affects children forked afterwards: a
//     process started from the locked thread (os/exec forks from the calling
//     thread) lands in the pod's PID namespace.
//   - Every handle is opened, close-on-exec, before the mount namespace is
//     joined: host paths no longer resolve after it.
//   - User namespaces are out of scope: joining one needs a single-threaded
//     process, which a Go program never is (runc keeps C for that). podsb
//     joins the others here and has the command's process, pause run,
//     join a pod's own user namespace (setup.SetNS).
//
// This pure-Go route is enough for podsb, which runs as root and joins no
// user namespace (docs/architecture.md, "Joining a pod").
//
// Privileges: CAP_SYS_ADMIN (setns of every type but user).
package nsenter
