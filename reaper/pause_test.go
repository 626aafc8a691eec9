//go:build linux

package reaper_test

import (
	"runtime"
	"testing"

	"podsb/internal/testenv"
	"podsb/reaper"
)

// TestPauseImageUpToDate rebuilds pause/pause.c and checks that the embedded
// image is what the source and build script produce.
func TestPauseImageUpToDate(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skipf("the pause image is amd64 only; GOARCH=%s", runtime.GOARCH)
	}
	testenv.CheckRebuild(t, "pause/build.sh", "reaper/pause/pause-amd64", reaper.Image())
}
