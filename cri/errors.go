package cri

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/podsb/podsb/image"
	"github.com/podsb/podsb/sandbox"
)

func invalidf(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

func notFoundf(format string, args ...any) error {
	return status.Errorf(codes.NotFound, format, args...)
}

func internalf(format string, args ...any) error {
	return status.Errorf(codes.Internal, format, args...)
}

func unimplementedf(format string, args ...any) error {
	return status.Errorf(codes.Unimplemented, format, args...)
}

// grpcError gives err, from package sandbox or image, its gRPC code, with
// what as context.
func grpcError(what string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	msg := fmt.Sprintf("%s: %v", what, err)
	var se *sandbox.Error
	if errors.As(err, &se) && se.Container != "" {
		msg = err.Error() // it names the container and its pod
	}
	code := codes.Unknown
	switch {
	// The caller's deadline or cancel first: a registry's error may be
	// one because of it (critest's pull with a 1 ms timeout).
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case sandbox.Exhausted(err):
		// Out of files, processes, memory, space or addresses: the
		// kubelet backs off and retries.
		code = codes.ResourceExhausted
	case errors.Is(err, sandbox.ErrNotFound), errors.Is(err, image.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, sandbox.ErrInvalid), errors.Is(err, image.ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, sandbox.ErrExists):
		code = codes.AlreadyExists
	case errors.Is(err, image.ErrInUse):
		code = codes.FailedPrecondition
	case errors.Is(err, image.ErrUnsupported):
		code = codes.Unimplemented
	case errors.Is(err, image.ErrRegistry):
		code = codes.Unavailable
	}
	return status.Error(code, msg)
}

func failedPreconditionf(format string, args ...any) error {
	return status.Errorf(codes.FailedPrecondition, format, args...)
}

func alreadyExistsf(format string, args ...any) error {
	return status.Errorf(codes.AlreadyExists, format, args...)
}

// statusOf returns the gRPC code's name of err, if it has one.
func statusOf(err error) (string, bool) {
	if err == nil {
		return "", false
	}
	st, ok := status.FromError(err)
	if !ok {
		return "", false
	}
	return st.Code().String(), true
}

// isNotFound tells whether err is a NotFound status.
func isNotFound(err error) bool {
	st, ok := statusOf(err)
	return ok && st == "NotFound"
}
