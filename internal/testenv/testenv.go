// Package testenv decides whether podsb's root-only tests run, skip or fail.
//
// Root-only tests call RequireRoot first. Without root they skip with a
// reason, unless PODSB_INTEGRATION=1 is set (as .ci/run does): then a missing
// privilege is a failure, so that CI never reports a skipped test as passed.
package testenv

import (
	"os"
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
