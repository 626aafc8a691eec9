package integration

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/sandbox"
)

// env is one test's podsb: the built binary and a state root of the test's
// own. Its cleanup removes every pod and fails the test on anything leaked.
type env struct {
	t    testing.TB
	bin  string
	root string

	mu     sync.Mutex
	names  map[string]bool // pod names this test used
	pids   map[int]uint64  // pause PIDs seen, with their start times
	bridge string          // the test's bridge, if it made one (netEnv)
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{t: t, bin: podsbBinary(t), root: t.TempDir(), names: map[string]bool{}, pids: map[int]uint64{}}
	t.Cleanup(e.cleanup)
	return e
}

// name returns a pod name unique to this run, remembered for leak checks.
func (e *env) name() string {
	var b [4]byte
	rand.Read(b[:])
	n := "t" + hex.EncodeToString(b[:])
	e.use(n)
	return n
}

func (e *env) use(name string) {
	e.mu.Lock()
	e.names[name] = true
	e.mu.Unlock()
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs podsb with --root set to the env's root. A create that asks for
// no network option gets --network none: the default bridge, podsb0, is the
// host's default root's, not a test's (network tests use bridges of their
// own, see netEnv).
func (e *env) run(args ...string) result {
	e.t.Helper()
	if len(args) > 0 && args[0] == "create" && !hasNetworkFlag(args) {
		args = append([]string{"create", "--network", "none"}, args[1:]...)
	}
	return e.runCmd(exec.Command(e.bin, append([]string{"--root", e.root}, args...)...))
}

func hasNetworkFlag(args []string) bool {
	for _, a := range args {
		for _, f := range []string{"--network", "--bridge", "--subnet", "--ip", "-p", "--publish"} {
			if a == f || strings.HasPrefix(a, f+"=") {
				return true
			}
		}
	}
	return false
}

func (e *env) runCmd(cmd *exec.Cmd) result {
	e.t.Helper()
	return runResult(e.t, cmd)
}

// must runs podsb and fails the test unless it exits 0; it returns stdout.
func (e *env) must(args ...string) string {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 0 {
		e.t.Fatalf("podsb %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// create makes a pod and returns its name and inspect document.
func (e *env) create(args ...string) (string, inspectDoc) {
	e.t.Helper()
	name := e.name()
	e.must(append([]string{"create"}, append(args, name)...)...)
	return name, e.inspect(name)
}

type inspectDoc struct {
	sandbox.State
	Mounts []struct {
		Destination string   `json:"destination"`
		Type        string   `json:"type"`
		Source      string   `json:"source"`
		Options     []string `json:"options"`
	} `json:"mounts"`
}

func (e *env) inspect(name string) inspectDoc {
	e.t.Helper()
	var docs []inspectDoc
	if err := json.Unmarshal([]byte(e.must("inspect", name)), &docs); err != nil || len(docs) != 1 {
		e.t.Fatalf("inspect %s: %v %v", name, docs, err)
	}
	d := docs[0]
	if d.Pid > 0 {
		e.mu.Lock()
		e.pids[d.Pid] = d.StartTime
		e.mu.Unlock()
	}
	return d
}

// inPod runs a command in all of the pod's namespaces through its persisted
// handles, with util-linux nsenter.
func (e *env) inPod(name string, args ...string) result {
	e.t.Helper()
	ns := filepath.Join(e.root, name, "ns")
	a := []string{"--pid=" + ns + "/pid", "--uts=" + ns + "/uts", "--ipc=" + ns + "/ipc", "--net=" + ns + "/net", "--mount=" + ns + "/mnt", "--"}
	return e.runCmd(exec.Command("nsenter", append(a, args...)...))
}

func (e *env) cleanup() {
	t := e.t
	if r := e.run("rm", "-f", "--all"); r.code != 0 {
		t.Errorf("cleanup: podsb rm -f --all: exit %d: %s", r.code, r.stderr)
	}
	checkNoLeaks(t, e.root, e.names, e.pids)
	checkNoNetworkLeaks(t, e.root, e.bridge, e.names)
}

// checkNoLeaks fails t if anything of the given pods is left on the host:
// a mount under root, an entry in /run/netns, a live pause process, a file
// in the state root.
func checkNoLeaks(t testing.TB, root string, names map[string]bool, pids map[int]uint64) {
	t.Helper()
	for _, m := range mountsUnder(t, root) {
		t.Errorf("leaked mount %s", m)
	}
	for n := range names {
		if _, err := os.Lstat(filepath.Join(sandbox.NetNSDir, n)); err == nil {
			t.Errorf("leaked %s/%s", sandbox.NetNSDir, n)
		}
	}
	for pid, start := range pids {
		if waitDead(pid, start, 2*time.Second) != nil {
			t.Errorf("leaked process %d", pid)
		}
	}
	for _, n := range stateEntries(root) {
		t.Errorf("leaked state %s", filepath.Join(root, n))
	}
	// Cgroups of the state root's pods: /podsb-HASH-NAME in every
	// hierarchy (v1) or at the top of the unified one.
	sum := sha256.Sum256([]byte(root))
	pattern := "podsb-" + hex.EncodeToString(sum[:4]) + "-*"
	for _, glob := range []string{"/sys/fs/cgroup/*/" + pattern, "/sys/fs/cgroup/" + pattern} {
		leaked, _ := filepath.Glob(glob)
		for _, cg := range leaked {
			t.Errorf("leaked cgroup %s", cg)
		}
	}
}

// stateEntries lists what the state root holds.
func stateEntries(root string) []string {
	ents, _ := os.ReadDir(root)
	var names []string
	for _, en := range ents {
		names = append(names, en.Name())
	}
	return names
}

// mountsUnder lists the host's mount points at or below dir.
func mountsUnder(t testing.TB, dir string) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append(out, f[4])
		}
	}
	return out
}

// alive tells whether pid still runs as the process that started at start
// (a zombie is dead).
func alive(pid int, start uint64) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	st, _ := strconv.ParseUint(f[19], 10, 64)
	return st == start && f[0] != "Z" && f[0] != "X"
}

func waitDead(pid int, start uint64, d time.Duration) error {
	deadline := time.Now().Add(d)
	for alive(pid, start) {
		if time.Now().After(deadline) {
			return errors.New("still alive")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// nsIno returns the inode of a namespace file.
func nsIno(t testing.TB, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return st.Ino
}
