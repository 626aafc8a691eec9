package sandbox

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/podsb/podsb/internal/errclass"
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
)

func invalidf(format string, args ...any) error {
	return errclass.New(ErrInvalid, format, args...)
}

// invalid classifies err as bad input.
func invalid(err error) error { return errclass.Wrap(ErrInvalid, err) }

// NameSystemError prefixes err with what (as "create web") when the
// system ran out of something (files, processes, memory, space: an errno
// of outOfResource) and err is neither bad input nor a name in use nor a
// pod not found, whose messages name their subject already. Other errors
// it returns as they are.
func NameSystemError(what string, err error) error {
	var class *errclass.Error
	if !outOfResource(err) || errors.As(err, &class) || errors.Is(err, ErrExists) || errors.Is(err, ErrNotFound) {
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}

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
