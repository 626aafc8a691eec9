package fetch

import (
	"github.com/podsb/podsb/image"
	"github.com/podsb/podsb/internal/errclass"
)

// The error classes are package image's: every error Pull and Import
// return for bad input or bad data matches one of them with errors.Is.
var (
	ErrInvalid     = image.ErrInvalid
	ErrCorrupt     = image.ErrCorrupt
	ErrUnsafe      = image.ErrUnsafe
	ErrUnsupported = image.ErrUnsupported
	ErrRegistry    = image.ErrRegistry
)

func newErr(kind error, format string, args ...any) error {
	return errclass.New(kind, format, args...)
}
