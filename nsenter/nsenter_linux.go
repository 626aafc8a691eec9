package nsenter

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Namespace is one namespace to join: its type (a CLONE_NEW* flag) and the
// path of a handle (/proc/PID/ns/* or a bind mount of one).
type Namespace struct {
	Type int
	Path string
}

// Handles are open namespace handles, ready to join.
type Handles struct {
	fds   []int
	types []int
}

// Open opens the handles of nss, in the order they will be joined. A mount
// namespace must come last.
func Open(nss []Namespace) (*Handles, error) {
	h := &Handles{}
	for _, ns := range nss {
		fd, err := unix.Open(ns.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			h.Close()
			return nil, &os.PathError{Op: "open", Path: ns.Path, Err: err}
		}
		h.fds = append(h.fds, fd)
		h.types = append(h.types, ns.Type)
	}
	return h, nil
}

// Close closes the handles. It is safe to call twice.
func (h *Handles) Close() error {
	var errs []error
	for _, fd := range h.fds {
		if err := unix.Close(fd); err != nil {
			errs = append(errs, err)
		}
	}
	h.fds, h.types = nil, nil
	return errors.Join(errs...)
}

// Do runs f on a fresh OS thread that has joined every namespace of h, and
// returns f's error. f must not start goroutines that expect to run in the
// namespaces (they run on other threads). Processes f starts with os/exec or
// syscall.ForkExec are born in the namespaces, a PID namespace included. The
// thread is destroyed when f returns.
func (h *Handles) Do(f func() error) error {
	errc := make(chan error, 1)
	onFreshThread(func() { errc <- h.join(f) })
	return <-errc
}

// Go runs f on a fresh OS thread that has joined every namespace of h, and
// returns at once. f receives the error of joining, if any, and must then
// return. The thread is destroyed when f returns, so a process that f forks
// with PR_SET_PDEATHSIG lives as long as f does. The handles must stay open
// until f has started.
func (h *Handles) Go(f func(err error)) {
	onFreshThread(func() { f(h.join(func() error { return nil })) })
}

// onFreshThread runs f in a new goroutine locked to its OS thread and
// never unlocked, so that the runtime ends the thread, and whatever
// namespaces it joined, when f returns. Never on the process's main
// thread: the runtime cannot end that one, and would instead wedge it,
// still in the pod's namespaces, where /proc/self (the main thread's)
// would show the pod's mounts to the rest of the program. If the new
// goroutine lands on the main thread, it keeps it, untouched, while
// another goroutine, which cannot be scheduled there, runs f.
func onFreshThread(f func()) {
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			f() // never unlocked: the thread dies with this goroutine
			return
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			runtime.LockOSThread()
			f()
		}()
		<-done
		runtime.UnlockOSThread()
	}()
}

func (h *Handles) join(f func() error) error {
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return fmt.Errorf("unshare filesystem state: %w", err)
	}
	for i, fd := range h.fds {
		if err := unix.Setns(fd, h.types[i]); err != nil {
			return fmt.Errorf("join %s namespace: %w", typeName(h.types[i]), err)
		}
	}
	return f()
}

func typeName(t int) string {
	switch t {
	case unix.CLONE_NEWPID:
		return "pid"
	case unix.CLONE_NEWUTS:
		return "uts"
	case unix.CLONE_NEWIPC:
		return "ipc"
	case unix.CLONE_NEWNET:
		return "net"
	case unix.CLONE_NEWNS:
		return "mount"
	case unix.CLONE_NEWCGROUP:
		return "cgroup"
	case unix.CLONE_NEWUSER:
		return "user"
	}
	return fmt.Sprintf("%#x", t)
}
