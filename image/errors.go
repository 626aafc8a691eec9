package image

import (
	"errors"

	"github.com/podsb/podsb/internal/errclass"
)

// Error classes. Every error this package returns for bad input or bad data
// matches one of them with errors.Is; cmd/podsb maps them all to exit 125.
var (
	// ErrNotFound means no image in the store has that name or ID.
	ErrNotFound = errors.New("no such image")
	// ErrInvalid marks bad input: a reference, a platform, a path, a config.
	ErrInvalid = errors.New("invalid argument")
	// ErrInUse means a holder (a container) uses the image: Remove needs force.
	ErrInUse = errors.New("image is in use")
	// ErrCorrupt means data did not match its digest, or a tar or JSON
	// document could not be read. Nothing of it was stored.
	ErrCorrupt = errors.New("corrupt image data")
	// ErrUnsafe means a layer entry would write outside the layer's
	// directory: "..", an absolute path, a path through a symbolic link, a
	// hard link to outside.
	ErrUnsafe = errors.New("unsafe layer entry")
	// ErrUnsupported means an image the store cannot hold: a manifest for
	// another platform only, an unknown media type, a schema 1 manifest.
	ErrUnsupported = errors.New("unsupported image")
	// ErrRegistry means the registry could not be reached or refused the
	// request, after the retries.
	ErrRegistry = errors.New("registry error")
)

func newErr(kind error, format string, args ...any) error {
	return errclass.New(kind, format, args...)
}
