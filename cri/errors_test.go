package cri

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/podsb/podsb/sandbox"
)

// TestGRPCError checks the codes and messages the CRI gives podsb's
// errors: what ran out is ResourceExhausted, and a container's error,
// which names the container and its pod, is not named twice.
func TestGRPCError(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		code codes.Code
		msg  string
	}{
		{"out of files", &sandbox.Error{Op: "create", Pod: "p1", Err: os.NewSyscallError("pipe2", syscall.EMFILE)},
			codes.ResourceExhausted, "run pod sandbox web: create p1: pipe2: too many open files"},
		{"out of processes", &sandbox.Error{Op: "exec", Pod: "p1", Err: fmt.Errorf("fork: %w", syscall.EAGAIN)},
			codes.ResourceExhausted, "run pod sandbox web: exec p1: fork: resource temporarily unavailable"},
		{"out of memory, unnamed", &os.PathError{Op: "open", Path: "/x", Err: syscall.ENOMEM},
			codes.ResourceExhausted, "run pod sandbox web: open /x: cannot allocate memory"},
		{"container", &sandbox.Error{Op: "stop", Pod: "p1", Container: "c1", Err: syscall.EPERM},
			codes.Unknown, "stop container c1 in pod p1: operation not permitted"},
		{"not found", fmt.Errorf("%w: p1", sandbox.ErrNotFound), codes.NotFound, "run pod sandbox web: no such pod: p1"},
		{"other", errors.New("boom"), codes.Unknown, "run pod sandbox web: boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := status.FromError(grpcError("run pod sandbox web", tc.err))
			if st.Code() != tc.code || st.Message() != tc.msg {
				t.Errorf("got %s %q, want %s %q", st.Code(), st.Message(), tc.code, tc.msg)
			}
		})
	}
}
