package errclass

import (
	"errors"
	"io/fs"
	"testing"
)

func TestClass(t *testing.T) {
	kind := errors.New("invalid")
	err := New(kind, "pod name %q: %w", "x/y", fs.ErrInvalid)
	if err.Error() != `pod name "x/y": invalid argument` {
		t.Errorf("message %q", err)
	}
	if !errors.Is(err, kind) || !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("errors.Is fails on %v", err)
	}
	if w := Wrap(kind, fs.ErrNotExist); !errors.Is(w, kind) || !errors.Is(w, fs.ErrNotExist) || w.Error() != fs.ErrNotExist.Error() {
		t.Errorf("Wrap: %v", w)
	}
}
