package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// wantFailure checks podsb's contract for bad input: exit 125 and one line
// on stderr that starts with "podsb: " and contains want.
func wantFailure(t *testing.T, r result, want string) {
	t.Helper()
	if r.code != 125 {
		t.Errorf("exit %d, want 125 (stdout %q, stderr %q)", r.code, r.stdout, r.stderr)
	}
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "podsb: ") || !strings.Contains(lines[0], want) {
		t.Errorf("stderr %q: want one line 'podsb: ...%s...'", r.stderr, want)
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	existing, _ := e.create()
	notDir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notDir, nil, 0o644)
	emptyDir := t.TempDir()
	missing := filepath.Join(t.TempDir(), "missing")
	outside := filepath.Join(filepath.Dir(e.root), "escaped")

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"empty name", []string{"create", ""}, "empty pod name"},
		{"long name", []string{"create", strings.Repeat("a", 65)}, "longer than 64"},
		{"traversal", []string{"create", "../escaped"}, "must match"},
		{"slash", []string{"create", "a/b"}, "must match"},
		{"dot start", []string{"create", ".hidden"}, "must match"},
		{"bad char", []string{"create", "a b"}, "must match"},
		{"exists", []string{"create", existing}, "already exists"},
		{"two names", []string{"create", "a", "b"}, "accepts at most 1 arg"},
		{"unknown flag", []string{"create", "--nope"}, "unknown flag"},
		{"rootfs missing", []string{"create", "--rootfs", missing, "x1"}, "no such file or directory"},
		{"rootfs not dir", []string{"create", "--rootfs", notDir, "x2"}, "not a directory"},
		{"rootfs no layout", []string{"create", "--rootfs", emptyDir, "x3"}, "not a root filesystem"},
		{"rootfs relative", []string{"create", "--rootfs", "rel/dir", "x4"}, "not an absolute path"},
		{"rootfs host root", []string{"create", "--rootfs", "/", "x5"}, "host's root"},
		{"volume missing", []string{"create", "-v", missing + ":/x", "x6"}, "volume source"},
		{"volume malformed", []string{"create", "-v", "/tmp", "x7"}, "want SRC:DST"},
		{"volume option", []string{"create", "-v", "/tmp:/x:rx", "x8"}, "not ro, rw, kernelfs or idmap"},
		{"volume relative", []string{"create", "-v", "tmp:/x", "x9"}, "absolute"},
		{"bad hostname", []string{"create", "--hostname", "a b", "x10"}, "hostname"},
		{"top unknown", []string{"top", "nosuchpod"}, "no such pod"},
		{"top bad name", []string{"top", "../x"}, "must match"},
		{"inspect unknown", []string{"inspect", "nosuchpod"}, "no such pod"},
		{"rm unknown", []string{"rm", "nosuchpod"}, "no such pod"},
		{"rm nothing", []string{"rm"}, "name pods, or give --all"},
		{"ps unknown", []string{"ps", "nosuchpod"}, "no such pod"},
		{"ps format", []string{"ps", "--format", "yaml"}, "want table or json"},
		{"unknown command", []string{"frobnicate"}, "unknown command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := mountsUnder(t, e.root)
			wantFailure(t, e.run(tc.args...), tc.want)
			if after := mountsUnder(t, e.root); len(after) != len(before) {
				t.Errorf("mounts changed: %v -> %v", before, after)
			}
			if names := stateEntries(e.root); len(names) != 1 || names[0] != existing {
				t.Errorf("state root holds %v, want only %s", stateEntries(e.root), existing)
			}
			if _, err := os.Lstat(outside); err == nil {
				t.Errorf("%s was created outside the state root", outside)
			}
		})
	}
	for _, n := range []string{"x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10"} {
		e.use(n)
	}
}

func TestNotRoot(t *testing.T) {
	e := newEnv(t)
	// What rootless podsb cannot do; the rest is TestRootless's.
	for _, args := range [][]string{{"run", "x", "--", "true"}, {"start", "x"}, {"stop", "x", "y"}, {"logs", "x"}, {"image", "ls"}, {"network", "prune"}} {
		cmd := exec.Command(e.bin, append([]string{"--root", e.root}, args...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		wantFailure(t, e.runCmd(cmd), "needs root")
	}
	// A root's state root is closed to other users.
	cmd := exec.Command(e.bin, "--root", e.root, "ps")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	wantFailure(t, e.runCmd(cmd), "permission denied")
}

func TestConcurrentCreateSameName(t *testing.T) {
	e := newEnv(t)
	name := e.name()
	const n = 8
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.run("create", name)
		}()
	}
	wg.Wait()
	wins := 0
	for _, r := range results {
		switch r.code {
		case 0:
			wins++
		case 125:
			if !strings.Contains(r.stderr, "already exists") {
				t.Errorf("loser's error: %q", r.stderr)
			}
		default:
			t.Errorf("exit %d: %q", r.code, r.stderr)
		}
	}
	if wins != 1 {
		t.Fatalf("%d creates won, want 1", wins)
	}
	d := e.inspect(name)
	if d.Status != "running" || !alive(d.Pid, d.StartTime) {
		t.Errorf("winner not running: %+v", d.State)
	}
	if r := e.inPod(name, "hostname"); strings.TrimSpace(r.stdout) != name {
		t.Errorf("winner's pod broken: %+v", r)
	}
}

// Several failures print one line each.
func TestBadInputOneLinePerError(t *testing.T) {
	e := newEnv(t)
	r := e.run("rm", "nosuch1", "nosuch2")
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	if r.code != 125 || len(lines) != 2 || lines[0] != "podsb: no such pod: nosuch1" || lines[1] != "podsb: no such pod: nosuch2" {
		t.Errorf("%+v", r)
	}
}
