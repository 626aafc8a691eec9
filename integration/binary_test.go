package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"podsb/internal/testenv"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// podsbBinary builds cmd/podsb once per test binary and returns its path. The
// directory is world-readable so tests can run the binary as an unprivileged
// user.
func podsbBinary(tb testing.TB) string {
	tb.Helper()
	testenv.RequireRoot(tb)
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "podsb-bin-")
		if buildErr != nil {
			return
		}
		if buildErr = os.Chmod(buildDir, 0o755); buildErr != nil {
			return
		}
		// As the Makefile builds it: static, with exec's C part as the
		// entry point (nsenter/fastexec.go).
		cmd := exec.Command("go", "build", "-ldflags=-E=podsb/nsenter.fastEntry", "-o", filepath.Join(buildDir, "podsb"), "podsb/cmd/podsb")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = &buildError{err: err, out: string(out)}
		}
	})
	if buildErr != nil {
		tb.Fatalf("build podsb: %v", buildErr)
	}
	return filepath.Join(buildDir, "podsb")
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}
