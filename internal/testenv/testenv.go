// Package testenv decides whether podsb's root-only tests run, skip or fail,
// and finds the C compiler that the build scripts use.
//
// Root-only tests call RequireRoot first. Without root they skip with a
// reason, unless PODSB_INTEGRATION=1 is set (as .ci/run does): then a missing
// privilege is a failure, so that CI never reports a skipped test as passed.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Integration reports whether PODSB_INTEGRATION=1 is set.
func Integration() bool { return os.Getenv("PODSB_INTEGRATION") == "1" }

// RequireRoot skips t when the process is not root, or fails it when
// PODSB_INTEGRATION=1 demands that root-only tests run.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if Integration() {
		tb.Fatal("PODSB_INTEGRATION=1 but not running as root: root-only tests must run, not skip")
	}
	tb.Skip("needs root (run as root, or set PODSB_INTEGRATION=1 as root in CI)")
}

// CC returns the C compiler the build scripts (reaper/pause/build.sh,
// fastexec/build.sh) pick: $CC, else gcc, else clang, else cc; "" if there
// is none.
func CC() string {
	if cc := os.Getenv("CC"); cc != "" {
		return cc
	}
	for _, cc := range []string{"gcc", "clang", "cc"} {
		if p, err := exec.LookPath(cc); err == nil {
			return p
		}
	}
	return ""
}

// Build runs a build script (with /bin/sh, from the test's directory) with
// an output path in a temporary directory as its only argument, and returns
// that path. name is the output's base name.
func Build(tb testing.TB, script, name string) string {
	tb.Helper()
	out := filepath.Join(tb.TempDir(), name)
	if b, err := exec.Command("/bin/sh", script, out).CombinedOutput(); err != nil {
		tb.Fatalf("%s: %v\n%s", script, err, b)
	}
	return out
}

// CompilerID prints what decides a build's bytes, as script (a
// compiler.sh) prints it for cc.
func CompilerID(script, cc string) (string, error) {
	out, err := exec.Command("/bin/sh", script, cc).Output()
	return strings.TrimSpace(string(out)), err
}
