package nsenter

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestFastExecUpToDate rebuilds fastexec/fastexec.c and checks that the
// committed fastexec_amd64.s is what the source, the pause image and the
// build script produce.
func TestFastExecUpToDate(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skipf("exec's C part is amd64 only; GOARCH=%s", runtime.GOARCH)
	}
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found: cannot rebuild fastexec_amd64.s to compare it with fastexec/fastexec.c")
	}
	out := filepath.Join(t.TempDir(), "fastexec_amd64.s")
	if b, err := exec.Command("/bin/sh", "fastexec/build.sh", out).CombinedOutput(); err != nil {
		t.Fatalf("fastexec/build.sh: %v\n%s", err, b)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("fastexec_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		version, _ := exec.Command(gcc, "--version").Output()
		first, _, _ := strings.Cut(string(version), "\n")
		t.Fatalf("nsenter/fastexec_amd64.s differs from a fresh build of fastexec/fastexec.c with %s: "+
			"run nsenter/fastexec/build.sh and commit fastexec_amd64.s (a different gcc version also gives different bytes)", first)
	}
}
