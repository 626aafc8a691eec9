package nsenter

import (
	"os"
	"runtime"
	"testing"

	"podsb/internal/testenv"
)

// TestFastExecUpToDate rebuilds fastexec/fastexec.c and checks that the
// committed fastexec_amd64.s is what the source, the pause image and the
// build script produce.
func TestFastExecUpToDate(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skipf("the C part of exec and rm is amd64 only; GOARCH=%s", runtime.GOARCH)
	}
	committed, err := os.ReadFile("fastexec_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	testenv.CheckRebuild(t, "fastexec/build.sh", "nsenter/fastexec_amd64.s", committed)
}
