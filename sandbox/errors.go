package sandbox

import (
	"errors"

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
