//go:build linux

package reaper_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/podsb/podsb/internal/testenv"
	"github.com/podsb/podsb/reaper"
)

// freshEnv names a fresh build of pause.c that this package's tests, and
// the helpers they re-execute, run instead of the committed image.
const freshEnv = "PODSB_REAPER_TEST_IMAGE"

// useFreshPause decides which pause this package's tests run. The committed
// image is built with the compiler and linker in pause/COMPILER; with those,
// TestPauseImageUpToDate compares it byte for byte with a rebuild, and the
// tests run it. With another compiler (other bytes, the same behaviour),
// pause.c is built afresh and every test here runs that build instead, so
// a contributor's compiler checks the source. Without a compiler, the
// committed image is tested. It returns a directory to remove, if any.
func useFreshPause() (string, error) {
	path := os.Getenv(freshEnv)
	dir := ""
	// A helper (see TestMain) runs what its test runs.
	if os.Getenv(helperEnv) == "" && path == "" && runtime.GOARCH == "amd64" {
		cc := testenv.CC()
		if cc == "" || pinned(cc) {
			return "", nil
		}
		var err error
		if dir, err = os.MkdirTemp("", "pause-"); err != nil {
			return "", err
		}
		path = filepath.Join(dir, "pause-amd64")
		if out, err := exec.Command("/bin/sh", "pause/build.sh", path).CombinedOutput(); err != nil {
			return dir, fmt.Errorf("pause/build.sh with %s: %v\n%s", cc, err, out)
		}
		os.Setenv(freshEnv, path)
	}
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err == nil {
		reaper.SetImage(b)
	}
	return dir, err
}

// pinned tells whether cc (and its linker) is what built the committed image.
func pinned(cc string) bool {
	id, err := testenv.CompilerID("pause/compiler.sh", cc)
	want, _ := os.ReadFile("pause/COMPILER")
	return err == nil && id == strings.TrimSpace(string(want))
}

// TestPauseImageUpToDate rebuilds pause/pause.c and checks that the embedded
// image is what the source and build script produce, with the pinned
// compiler; with another, the package's tests run against a fresh build.
func TestPauseImageUpToDate(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skipf("the pause image is amd64 only; GOARCH=%s", runtime.GOARCH)
	}
	cc := testenv.CC()
	if cc == "" {
		t.Skip("no C compiler (gcc, clang or cc): cannot rebuild pause to compare it")
	}
	if !pinned(cc) {
		id, _ := testenv.CompilerID("pause/compiler.sh", cc)
		if os.Getenv(freshEnv) == "" {
			t.Fatalf("%s is not the pinned compiler, but the tests do not run a fresh build", cc)
		}
		t.Logf("%q is not the compiler in pause/COMPILER: bytes not compared; this package's tests ran a fresh build of pause.c", id)
		return
	}
	got, err := os.ReadFile(testenv.Build(t, "pause/build.sh", "pause-amd64"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, reaper.Image()) {
		t.Fatalf("reaper/pause/pause-amd64 (%d bytes) differs from a fresh build (%d bytes) with the pinned compiler: "+
			"run reaper/pause/build.sh and commit it", len(reaper.Image()), len(got))
	}
}
