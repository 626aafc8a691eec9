package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/podsb/podsb/network"
)

// TestNameSystemError checks which errors a caller's operation names:
// those of a system out of files, processes or memory that name no
// operation yet, and no others.
func TestNameSystemError(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"out of files", os.NewSyscallError("pipe2", syscall.EMFILE), "rm web: pipe2: too many open files"},
		{"out of processes", fmt.Errorf("start pod init: %w", syscall.EAGAIN), "rm web: start pod init: resource temporarily unavailable"},
		{"out of memory", &os.PathError{Op: "open", Path: "/x", Err: syscall.ENOMEM}, "rm web: open /x: cannot allocate memory"},
		{"named already", &Error{Op: "exec", Pod: "web", Err: syscall.EMFILE}, "exec web: too many open files"},
		{"bad input", invalid(&os.PathError{Op: "open", Path: "/x", Err: syscall.EMFILE}), "open /x: too many open files"},
		{"exists", fmt.Errorf("pod web: %w: %w", ErrExists, syscall.ENOSPC), "pod web: already exists: no space left on device"},
		{"other errno", &os.PathError{Op: "mount", Path: "/x", Err: syscall.EPERM}, "mount /x: operation not permitted"},
		{"no errno", errors.New("subnet 10.0.0.0/29: no free address"), "subnet 10.0.0.0/29: no free address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := NameSystemError("rm web", tc.err)
			if got.Error() != tc.want || !errors.Is(got, tc.err) {
				t.Errorf("got %q, want %q wrapping the error", got, tc.want)
			}
		})
	}
	if NameSystemError("rm web", nil) != nil {
		t.Error("nil is not nil")
	}
}

// TestOpError checks the messages of the public operations' errors: a
// system error names the operation and the pod (and container) once;
// the classes that name their subject stay as they are; errors.Is and As
// still find what is wrapped, and ErrExhausted matches what ran out.
func TestOpError(t *testing.T) {
	full := fmt.Errorf("subnet 10.0.0.0/29: %w", network.ErrFull)
	for _, tc := range []struct {
		name      string
		op, pod   string
		container string
		err       error
		want      string
		exhausted bool
	}{
		{"out of files", "create", "web", "", os.NewSyscallError("pipe2", syscall.EMFILE), "create web: pipe2: too many open files", true},
		{"out of processes", "exec", "web", "", fmt.Errorf("fork: %w", syscall.EAGAIN), "exec web: fork: resource temporarily unavailable", true},
		{"no space", "run", "web", "", &os.PathError{Op: "mkdir", Path: "/x", Err: syscall.ENOSPC}, "run web: mkdir /x: no space left on device", true},
		{"full pool", "create", "web", "", full, "create web: subnet 10.0.0.0/29: no free address", true},
		{"other errno", "start", "web", "", &os.PathError{Op: "mount", Path: "/x", Err: syscall.EPERM}, "start web: mount /x: operation not permitted", false},
		{"no errno", "start", "web", "", errors.New("lost its namespaces (x): remove it"), "start web: lost its namespaces (x): remove it", false},
		{"container", "stop", "web", "c1", fmt.Errorf("signal 15: %w", syscall.EPERM), "stop container c1 in pod web: signal 15: operation not permitted", false},
		{"no name yet", "create", "", "", syscall.ENOMEM, "create: cannot allocate memory", true},
		{"context", "start", "web", "", context.Canceled, "start web: context canceled", false},
		{"twice", "exec", "web", "", &Error{Op: "load", Pod: "web", Err: syscall.EMFILE}, "load web: too many open files", true},
		{"bad input", "create", "web", "", invalidf("volume %q: want SRC:DST[:ro]", "/tmp"), `volume "/tmp": want SRC:DST[:ro]`, false},
		{"exists", "create", "web", "", fmt.Errorf("pod web: %w", ErrExists), "pod web: already exists", false},
		{"not found", "exec", "web", "", fmt.Errorf("%w: web", ErrNotFound), "no such pod: web", false},
		{"not running", "exec", "web", "", fmt.Errorf("web: %w", ErrNotRunning), "web: pod is not running", false},
		{"running", "start", "web", "", fmt.Errorf("web: %w", ErrRunning), "web: pod is running", false},
		{"command not found", "exec", "web", "", fmt.Errorf("nosuch: %w", ErrCommandNotFound), "nosuch: command not found", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := opError(tc.op, tc.pod, tc.container, tc.err)
			if got.Error() != tc.want || !errors.Is(got, tc.err) {
				t.Errorf("got %q, want %q wrapping the error", got, tc.want)
			}
			if errors.Is(got, ErrExhausted) != tc.exhausted || Exhausted(got) != tc.exhausted {
				t.Errorf("%q: errors.Is(ErrExhausted) %v, want %v", got, errors.Is(got, ErrExhausted), tc.exhausted)
			}
		})
	}
	if opError("create", "web", "", nil) != nil {
		t.Error("nil is not nil")
	}
	// The classes survive a wrap that names the operation.
	var errno syscall.Errno
	if err := opError("exec", "web", "", fmt.Errorf("x: %w", syscall.EMFILE)); !errors.As(err, &errno) || errno != syscall.EMFILE {
		t.Errorf("errors.As finds no errno in %v", err)
	}
}
