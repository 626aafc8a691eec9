package sandbox

import (
	"errors"
	"fmt"
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

// invalidError is bad input: its message stands alone and it matches
// ErrInvalid.
type invalidError struct{ err error }

func (e *invalidError) Error() string        { return e.err.Error() }
func (e *invalidError) Unwrap() error        { return e.err }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

func invalidf(format string, args ...any) error {
	return &invalidError{fmt.Errorf(format, args...)}
}
