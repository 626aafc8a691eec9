package integration

import (
	"debug/buildinfo"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/podsb/podsb/internal/testenv"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
	buildFast bool // the binary has exec's fast path (package fastexec)
)

// podsbBinary builds cmd/podsb once per test binary, with make build, so
// that the tests run what make build gives (with exec's fast path when
// there is a C compiler), and returns its path. The directory is
// world-readable so tests can run the binary as an unprivileged user.
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
		bin := filepath.Join(buildDir, "podsb")
		cmd := exec.Command("make", "-s", "-C", "..", "build", "BIN="+bin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = &buildError{err: err, out: string(out)}
			return
		}
		info, err := buildinfo.ReadFile(bin)
		if err != nil {
			buildErr = err
			return
		}
		for _, s := range info.Settings {
			if s.Key == "-tags" && strings.Contains(","+s.Value+",", ",fastexec,") {
				buildFast = true
			}
		}
	})
	if buildErr != nil {
		tb.Fatalf("build podsb: %v", buildErr)
	}
	return filepath.Join(buildDir, "podsb")
}

// requireFastPath skips tb unless the built podsb has exec's fast path,
// which make build leaves out without a C compiler.
func requireFastPath(tb testing.TB) {
	tb.Helper()
	podsbBinary(tb)
	if !buildFast {
		tb.Skip("podsb was built without exec's fast path: make build found no C compiler")
	}
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }

// The main goroutine keeps the main thread: the tests' own goroutines that
// change their thread's namespaces or trace a process (peers_test.go,
// gc_test.go) must never run there, since a locked main thread is not
// ended with its goroutine but wedged. (Package nsenter keeps its own off
// the main thread by itself.)
func init() { runtime.LockOSThread() }

func TestMain(m *testing.M) {
	if v := os.Getenv("PODSB_TEST_IMAGE_RUN"); v != "" {
		imageRunHelper(v)
		return
	}
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}
