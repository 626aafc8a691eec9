// Package sandbox creates, finds, inspects and removes pods.
//
// A pod is a pause process running as PID 1 of new PID, UTS, IPC, mount and
// network namespaces, inside its own root filesystem. The namespaces are
// pinned by bind mounts of /proc/PID/ns/* under the pod's state directory
// (ROOT/NAME/ns/*), so they outlive any one command and other tools
// (nsenter, ip netns) can join them. The pod's network namespace is also
// registered in /run/netns under the pod's name.
//
// State lives under a state root (DefaultRoot, or Config.Root): one directory
// per pod holding state.json, written atomically, and the namespace handles.
// Operations on one pod are serialized with flock(2) on its directory.
// Only root may be able to change the state root: every function that
// opens one refuses it otherwise (ErrUntrustedRoot). Only directories that
// Create made, which hold its marker, are pods; records and handles are
// opened below the root through no symbolic link.
//
// Privileges: root (CAP_SYS_ADMIN for mounts and namespaces, CAP_KILL).
// A user other than root makes rootless pods (rootless_linux.go): a user
// namespace of the pod's own, no network, cgroup or host namespace, the
// state root the user's own ($XDG_RUNTIME_DIR/podsb for the CLI), the
// handles links to pause's /proc/PID/ns. Exec into one must join its user
// namespace before the Go runtime starts: Pod.Exec refuses (ErrRootless)
// unless the process runs in it already (the podsb binary re-executes
// itself so, through its entry point; see package fastexec).
//
// The pod's init is the pause program of package reaper, executed from a
// sealed memfd in the new namespaces: it runs the set-up that Create planned
// in Go (package rootfs and internal/setup), then stays as pause. No Go
// runtime starts inside the pod and nothing is re-executed, so any program
// that imports sandbox, a test binary included, creates pods with no extra
// set-up.
//
// Errors: bad input is of class ErrInvalid, and ErrNotFound, ErrExists,
// ErrNotRunning and ErrRunning say what they are about. A failure of the
// system in a public operation (Create, Load, Exec, Run, Start,
// SignalContainer, StopContainer, UpdateContainer) is an *Error, whose
// message names the operation and the pod once; one of running out of
// something is also ErrExhausted. The Go runtime cannot survive a thread
// it fails to start, so a program calls CheckTasks before an operation
// that starts tasks.
//
// Thread rules: nothing in this package changes the namespaces of the
// calling goroutine's thread. Exec joins a pod's namespaces on a fresh,
// locked thread of its own (package nsenter), which dies once the command
// has been waited for, and never the main thread, which the runtime
// cannot end: nothing is asked of the program that uses this package.
package sandbox
