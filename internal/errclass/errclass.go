// Package errclass classifies errors: an error of a class prints its own
// message only, and errors.Is matches it against the class's sentinel. Each
// podsb package keeps its own sentinels (sandbox.ErrInvalid,
// network.ErrInvalid, ...); this is the one type behind them.
package errclass

import "fmt"

// Error is Err, of the class Kind.
type Error struct {
	Kind error
	Err  error
}

func (e *Error) Error() string        { return e.Err.Error() }
func (e *Error) Unwrap() error        { return e.Err }
func (e *Error) Is(target error) bool { return target == e.Kind }

// New returns a formatted error of class kind.
func New(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Err: fmt.Errorf(format, args...)}
}

// Wrap returns err as an error of class kind.
func Wrap(kind, err error) error { return &Error{Kind: kind, Err: err} }
