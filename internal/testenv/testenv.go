// Package testenv decides whether podsb's root-only tests run, skip or fail.
//
// Root-only tests call RequireRoot first. Without root they skip with a
// reason, unless PODSB_INTEGRATION=1 is set (as .ci/run does): then a missing
// privilege is a failure, so that CI never reports a skipped test as passed.
package testenv

import (
	"bytes"
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

// CheckRebuild runs the build script (with /bin/sh, from the test's
// directory) that makes a committed generated file, with an output path as
// its only argument, and fails tb unless the output equals committed. what
// names the file for the message. It skips without gcc, which the script
// needs (CI, which has it, counts a skip as a failure). The committed
// files are built with one gcc version; another may emit other bytes.
func CheckRebuild(tb testing.TB, script, what string, committed []byte) {
	tb.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		tb.Skipf("gcc not found: cannot rebuild %s to compare it", what)
	}
	out := filepath.Join(tb.TempDir(), filepath.Base(what))
	if b, err := exec.Command("/bin/sh", script, out).CombinedOutput(); err != nil {
		tb.Fatalf("%s: %v\n%s", script, err, b)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	if !bytes.Equal(got, committed) {
		version, _ := exec.Command(gcc, "--version").Output()
		first, _, _ := strings.Cut(string(version), "\n")
		tb.Fatalf("%s (%d bytes) differs from a fresh build (%d bytes) with %s: run %s and commit %s "+
			"(a different gcc version also gives different bytes)", what, len(committed), len(got), first, script, what)
	}
}
