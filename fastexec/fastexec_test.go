package fastexec

import (
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/podsb/podsb/internal/testenv"
)

// TestBlobBuilds builds the blob with the C compiler here, as make build
// does: the C part compiles, and it meets blob.ld's rule (no writable or
// relocated data).
func TestBlobBuilds(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skipf("the fast path is amd64 only; GOARCH=%s", runtime.GOARCH)
	}
	if testenv.CC() == "" {
		t.Skip("no C compiler (gcc, clang or cc): make build gives podsb without the fast path")
	}
	b, err := os.ReadFile(testenv.Build(t, "c/build.sh", "blob_amd64.s"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "//go:build fastexec\n") || !strings.Contains(string(b), "TEXT ·blob(SB)") {
		t.Errorf("build.sh wrote %.200q...", b)
	}
}
