//go:build linux

package reaper_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"podsb/reaper"
)

// TestPauseImageUpToDate rebuilds pause/pause.c and checks that the embedded
// image is what the source and build script produce.
func TestPauseImageUpToDate(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skipf("the pause image is amd64 only; GOARCH=%s", runtime.GOARCH)
	}
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found: cannot rebuild pause/pause-amd64 to compare it with pause/pause.c")
	}
	out := filepath.Join(t.TempDir(), "pause-amd64")
	if b, err := exec.Command("/bin/sh", "pause/build.sh", out).CombinedOutput(); err != nil {
		t.Fatalf("pause/build.sh: %v\n%s", err, b)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, reaper.Image()) {
		version, _ := exec.Command(gcc, "--version").Output()
		first, _, _ := strings.Cut(string(version), "\n")
		t.Fatalf("reaper/pause/pause-amd64 (%d bytes) differs from a fresh build of pause.c (%d bytes) with %s: "+
			"run reaper/pause/build.sh and commit pause-amd64 (a different gcc version also gives different bytes)",
			len(reaper.Image()), len(got), first)
	}
}
