package integration

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestVolumeRefusals is issue 11's: volumes onto the pod's /proc, /sys or
// /dev, of the host's /proc or /sys without the kernelfs option, and of
// the state root, a parent of it or a directory in it are refused, by
// create and by run, with exit 125, one line, and nothing made.
func TestVolumeRefusals(t *testing.T) {
	e := newEnv(t)
	pod, _ := e.create()
	vol := t.TempDir()
	link := filepath.Join(t.TempDir(), "proc")
	os.Symlink("/proc", link)
	for _, tc := range []struct {
		name, volume, want string
	}{
		{"onto /proc", vol + ":/proc", "cannot mount at or under the pod's /proc"},
		{"under /proc", vol + ":/proc/sys/kernel", "cannot mount at or under the pod's /proc"},
		{"onto /sys", vol + ":/sys", "cannot mount at or under the pod's /sys"},
		{"onto /dev", vol + ":/dev", "cannot mount at or under the pod's /dev"},
		{"under /dev", vol + ":/dev/shm", "cannot mount at or under the pod's /dev"},
		{"host /proc", "/proc:/hostproc", "the host's proc: add the volume option kernelfs"},
		{"host /proc, ro", "/proc:/hostproc:ro", "the host's proc"},
		{"host /proc/sys", "/proc/sys:/s", "the host's proc"},
		{"host /proc through a link", link + ":/hostproc", "the host's proc"},
		{"host /sys", "/sys:/hostsys", "the host's sys"},
		{"the state root", e.root + ":/x", "holds the state root"},
		{"a parent of the state root", filepath.Dir(e.root) + ":/x:ro", "holds the state root"},
		{"the host's root", "/:/host:ro", "holds the state root"},
		{"a pod's directory", filepath.Join(e.root, pod) + ":/x", "is inside the state root"},
		{"the default root's parent", "/run:/x", "holds the state root /run/podsb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, mounts := stateEntries(e.root), mountsUnder(t, e.root)
			wantFailure(t, e.run("create", "-v", tc.volume, e.name()), tc.want)
			wantFailure(t, e.run("run", "-v", tc.volume, pod, "--", "true"), tc.want)
			if after := stateEntries(e.root); !slices.Equal(before, after) {
				t.Errorf("state root %v -> %v", before, after)
			}
			if after := mountsUnder(t, e.root); len(after) != len(mounts) {
				t.Errorf("mounts %v -> %v", mounts, after)
			}
			if cs, _ := os.ReadDir(filepath.Join(e.root, pod, "containers")); len(cs) != 0 {
				t.Errorf("containers made: %v", cs)
			}
		})
	}
	// With kernelfs the host's /proc is allowed, for create and run.
	hp, _ := e.create("-v", "/proc:/hostproc:ro,kernelfs")
	if out := e.must("exec", hp, "--", "cat", "/hostproc/1/comm"); strings.TrimSpace(out) == "" || strings.TrimSpace(out) == "pause" {
		t.Errorf("the host's /proc/1/comm in the pod: %q", out)
	}
	if out := e.must("run", "-v", "/sys:/hostsys:ro,kernelfs", pod, "--", "ls", "/hostsys/kernel"); !strings.Contains(out, "mm") {
		t.Errorf("the host's /sys/kernel in a container: %q", out)
	}
}
