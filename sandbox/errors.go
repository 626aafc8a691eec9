package sandbox

import (
	"errors"
	"syscall"

	"github.com/podsb/podsb/internal/errclass"
	"github.com/podsb/podsb/network"
)

var (
	// ErrNotFound means no pod of that name exists under the state root.
	ErrNotFound = errors.New("no such pod")
	// ErrExists means a pod, or a network namespace, of that name exists.
	ErrExists = errors.New("already exists")
	// ErrInvalid marks bad input: a name, a hostname, a root, a volume.
	ErrInvalid = errors.New("invalid argument")
	// ErrNotRunning means the pod's pause process is not alive.
	ErrNotRunning = errors.New("pod is not running")
	// ErrExhausted means the system, or the share of it podsb may use,
	// ran out of something: files, processes, memory, space. An Error
	// whose system call failed with EMFILE, ENFILE, ENOMEM, EAGAIN,
	// ENOSPC, EDQUOT or ENOBUFS is one, and so are a bridge network
	// with no free address and CheckTasks's refusal.
	ErrExhausted = errors.New("out of resources")
)

func invalidf(format string, args ...any) error {
	return errclass.New(ErrInvalid, format, args...)
}

// invalid classifies err as bad input.
func invalid(err error) error { return errclass.Wrap(ErrInvalid, err) }

// Error is a failure of the system (a system call, a process, a record)
// in an operation on a pod. Its message names the operation and the pod
// once, as "create web: pipe2: too many open files", or with a container
// "stop container c1 in pod web: ...". The package's public operations
// return their system errors as one; bad input, a name in use, a pod or
// container that does not exist, is not running or is running, and a
// command not found say what they are about already, and are returned as
// they are.
type Error struct {
	Op        string // create, load, exec, run, start, stop, signal, update, rm
	Pod       string // the pod's name; empty for a create that has none yet
	Container string // the container's name, for a container's operation
	Err       error
}

func (e *Error) Error() string {
	switch {
	case e.Container != "":
		return e.Op + " container " + e.Container + " in pod " + e.Pod + ": " + e.Err.Error()
	case e.Pod != "":
		return e.Op + " " + e.Pod + ": " + e.Err.Error()
	}
	return e.Op + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes an Error of the system out of something ErrExhausted.
func (e *Error) Is(target error) bool {
	return target == ErrExhausted && (outOfResource(e.Err) || errors.Is(e.Err, network.ErrFull))
}

// opError returns err as an Error of op on pod (and container), unless
// err is nil, an Error already, or one of the classes that name their
// subject (see Error).
func opError(op, pod, container string, err error) error {
	var oe *Error
	var class *errclass.Error
	switch {
	case err == nil, errors.As(err, &oe), errors.As(err, &class):
		return err
	}
	for _, known := range []error{ErrExists, ErrNotFound, ErrNotRunning, ErrRunning, ErrCommandNotFound, ErrNotExecutable} {
		if errors.Is(err, known) {
			return err
		}
	}
	return &Error{Op: op, Pod: pod, Container: container, Err: err}
}

// NameSystemError prefixes err with what (as "rm web") when the system
// ran out of something (files, processes, memory, space: an errno of
// outOfResource) and err names no operation yet (is no Error) and is
// neither bad input nor a name in use nor a pod not found, whose messages
// name their subject already. Other errors it returns as they are. For a
// caller's operation that is none of this package's (the public
// operations name their errors themselves).
func NameSystemError(what string, err error) error {
	var class *errclass.Error
	var oe *Error
	if !outOfResource(err) || errors.As(err, &oe) || errors.As(err, &class) || errors.Is(err, ErrExists) || errors.Is(err, ErrNotFound) {
		return err
	}
	return &namedError{what, err}
}

// namedError is what NameSystemError makes: err after what.
type namedError struct {
	what string
	err  error
}

func (e *namedError) Error() string { return e.what + ": " + e.err.Error() }
func (e *namedError) Unwrap() error { return e.err }
func (e *namedError) Is(target error) bool {
	return target == ErrExhausted
}

// Exhausted tells whether err is the system, or podsb's share of it,
// running out of something: an error of class ErrExhausted, or one whose
// system call failed with an errno of running out (see ErrExhausted).
func Exhausted(err error) bool { return errors.Is(err, ErrExhausted) || outOfResource(err) }

// outOfResource tells whether err is the system running out of something.
func outOfResource(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case syscall.EMFILE, syscall.ENFILE, syscall.ENOMEM, syscall.EAGAIN, syscall.ENOSPC, syscall.EDQUOT, syscall.ENOBUFS:
		return true
	}
	return false
}
