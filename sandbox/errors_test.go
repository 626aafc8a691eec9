package sandbox

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
)

// TestNameSystemError checks which errors name the pod: those of a
// system out of files, processes or memory, and no others.
func TestNameSystemError(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"out of files", os.NewSyscallError("pipe2", syscall.EMFILE), "create web: pipe2: too many open files"},
		{"out of processes", fmt.Errorf("start pod init: %w", syscall.EAGAIN), "create web: start pod init: resource temporarily unavailable"},
		{"out of memory", &os.PathError{Op: "open", Path: "/x", Err: syscall.ENOMEM}, "create web: open /x: cannot allocate memory"},
		{"bad input", invalid(&os.PathError{Op: "open", Path: "/x", Err: syscall.EMFILE}), "open /x: too many open files"},
		{"exists", fmt.Errorf("pod web: %w: %w", ErrExists, syscall.ENOSPC), "pod web: already exists: no space left on device"},
		{"other errno", &os.PathError{Op: "mount", Path: "/x", Err: syscall.EPERM}, "mount /x: operation not permitted"},
		{"no errno", errors.New("subnet 10.0.0.0/29: no free address"), "subnet 10.0.0.0/29: no free address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := NameSystemError("create web", tc.err)
			if got.Error() != tc.want || !errors.Is(got, tc.err) {
				t.Errorf("got %q, want %q wrapping the error", got, tc.want)
			}
		})
	}
	if NameSystemError("create web", nil) != nil {
		t.Error("nil is not nil")
	}
}
