package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/setup"
)

// TestRootlessFastExec: exec into a rootless pod runs on the fast path
// once it has joined the pod's user namespace (one Go start, not two):
// its launcher is one thread while the command runs, SIGTERM is
// forwarded, and the forms the parity tests use give what Go gives. A
// record whose handle inodes are not pause's namespaces', or that names
// a pause that is gone, is not run: Go does the exec (or says the pod is
// not running).
func TestRootlessFastExec(t *testing.T) {
	requireFastPath(t)
	e := newRootlessEnv(t)
	name := e.name()
	e.must("create", "--network", "none", name)
	d := e.inspect(name)
	threads := func(env ...string) int {
		t.Helper()
		cmd := e.cmd("exec", name, "--", "sleep", "5")
		cmd.Env = append(cmd.Env, env...)
		n := runningThreads(t, cmd)
		if err := cmd.Wait(); err == nil || cmd.ProcessState.ExitCode() != 128+15 {
			t.Errorf("%v: forwarded SIGTERM: %v", env, err)
		}
		return n
	}
	if n := threads(); n != 1 {
		t.Errorf("rootless exec: the launcher has %d threads, want 1 (the fast path)", n)
	}
	if n := threads("PODSB_FASTEXEC=0"); n < 2 {
		t.Errorf("PODSB_FASTEXEC=0: the launcher has %d threads", n)
	}
	for _, args := range [][]string{
		{"sh", "-c", "cat /proc/self/uid_map; id -u; pwd; hostname; echo $HOME; cat /proc/1/comm"},
		{"sh", "-c", "exit 7"},
		{"nosuch"},
		{"/etc/passwd"},
		{"sh", "-c", "echo out; echo err >&2; exit 3"},
	} {
		fast := e.run(append([]string{"exec", name, "--"}, args...)...)
		cmd := e.cmd(append([]string{"exec", name, "--"}, args...)...)
		cmd.Env = append(cmd.Env, "PODSB_FASTEXEC=0")
		slow := runResult(t, cmd)
		if fast != slow {
			t.Errorf("%q: fast path %+v, Go %+v", args, fast, slow)
		}
	}
	// -i: stdin reaches the command, on either path.
	for _, env := range []string{"PODSB_FASTEXEC=1", "PODSB_FASTEXEC=0"} {
		cmd := e.cmd("exec", "-i", name, "--", "sh", "-c", "cat; exit 4")
		cmd.Env = append(cmd.Env, env)
		cmd.Stdin = strings.NewReader("in\n")
		if r := runResult(t, cmd); r.stdout != "in\n" || r.code != 4 {
			t.Errorf("%s exec -i: %+v", env, r)
		}
	}
	// A record with a wrong inode: the C part refuses it, Go runs.
	path := filepath.Join(e.root, name, setup.JoinFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	j, err := setup.DecodeJoin(raw)
	if err != nil || !j.ProcNS || len(j.Namespaces) != 5 {
		t.Fatalf("rootless join record: %+v, %v", j, err)
	}
	for i := range j.Namespaces {
		if j.Namespaces[i].Type == unix.CLONE_NEWUSER || j.Namespaces[i].Inode == 0 {
			t.Errorf("rootless join record: namespace %+v", j.Namespaces[i])
		}
	}
	j.Namespaces[1].Inode++
	forged, _ := j.Encode()
	if err := os.WriteFile(path, forged, 0o600); err != nil {
		t.Fatal(err)
	}
	if n := threads(); n < 2 {
		t.Errorf("a record with a wrong inode: the launcher has %d threads", n)
	}
	if out := strings.TrimSpace(e.must("exec", name, "--", "hostname")); out != name {
		t.Errorf("hostname after the refused record: %q", out)
	}
	os.WriteFile(path, raw, 0o600)
	// Pause gone: not running, from Go.
	unix.Kill(d.Pid, unix.SIGKILL)
	if err := waitDead(d.Pid, d.StartTime, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	wantFailure(t, e.run("exec", name, "--", "true"), "not running")
}

// runningThreads starts cmd and returns how many threads it has once it
// has a child (its command), then sends it SIGTERM; the caller waits.
func runningThreads(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	threads := 0
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		task := filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "task")
		ents, _ := os.ReadDir(task)
		kids := ""
		for _, t := range ents {
			b, _ := os.ReadFile(filepath.Join(task, t.Name(), "children"))
			kids += string(b)
		}
		if len(strings.Fields(kids)) > 0 {
			threads = len(ents)
			break
		}
	}
	cmd.Process.Signal(unix.SIGTERM)
	return threads
}
