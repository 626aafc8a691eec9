package integration

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

type crictlContainerStatus struct {
	Status struct {
		ID       string `json:"id"`
		State    string `json:"state"`
		ExitCode int    `json:"exitCode"`
		Reason   string `json:"reason"`
		LogPath  string `json:"logPath"`
	} `json:"status"`
}

func (c *criEnv) inspectc(id string) crictlContainerStatus {
	c.t.Helper()
	var st crictlContainerStatus
	if err := json.Unmarshal([]byte(c.crictlMust("inspect", id)), &st); err != nil {
		c.t.Fatalf("inspect %s: %v", id, err)
	}
	return st
}

// waitState waits until crictl inspect says the container is in state.
func (c *criEnv) waitState(id, state string) crictlContainerStatus {
	c.t.Helper()
	var st crictlContainerStatus
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if st = c.inspectc(id); st.Status.State == state {
			return st
		}
	}
	c.t.Fatalf("container %s: %s, want %s", id, st.Status.State, state)
	return st
}

// TestCRICrictlContainers is the acceptance list, with the real
// crictl: runp, pull, create, start, exec -s, exec -it, ps, logs, stop,
// rm, stopp and rmp, with a restart of the server in the middle.
func TestCRICrictlContainers(t *testing.T) {
	c := newCRIEnv(t)
	host := serveImages(t, map[string]v1.Image{"busybox:1": ociImage(t, []string{"sh", "-c", "echo started; exec sleep 1000"}, busyboxLayer(t))})
	ref := host + "/busybox:1"
	c.crictlMust("pull", ref)

	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	os.Mkdir(logs, 0o755)
	podJSON := filepath.Join(dir, "pod.json")
	os.WriteFile(podJSON, []byte(`{"metadata": {"name": "app", "namespace": "default", "uid": "5b1e", "attempt": 0},
		"log_directory": "`+logs+`", "linux": {}}`), 0o644)
	ctrJSON := filepath.Join(dir, "ctr.json")
	os.WriteFile(ctrJSON, []byte(`{"metadata": {"name": "main"}, "image": {"image": "`+ref+`"}, "log_path": "main/0.log",
		"envs": [{"key": "GREETING", "value": "hello"}], "linux": {}}`), 0o644)
	pod := strings.TrimSpace(c.crictlMust("runp", podJSON))
	c.use(pod)
	ctr := strings.TrimSpace(c.crictlMust("create", pod, ctrJSON, podJSON))
	if len(ctr) != 64 {
		t.Fatalf("create: container ID %q", ctr)
	}
	if st := c.inspectc(ctr); st.Status.State != "CONTAINER_CREATED" || st.Status.LogPath != filepath.Join(logs, "main/0.log") {
		t.Errorf("after create: %+v", st.Status)
	}
	c.crictlMust("start", ctr)
	c.waitState(ctr, "CONTAINER_RUNNING")
	if out := c.crictlMust("ps"); !strings.Contains(out, ctr[:13]) || !strings.Contains(out, "Running") || !strings.Contains(out, "main") {
		t.Errorf("crictl ps:\n%s", out)
	}

	// exec -s: output and exit code.
	// The container's environment (the config's over the image's) is the
	// exec's too.
	if out := c.crictlMust("exec", "-s", ctr, "sh", "-c", "echo $GREETING from $(hostname)"); strings.TrimSpace(out) != "hello from "+pod[:12] {
		t.Errorf("exec -s: %q", out)
	}
	// crictl 1.37 runs each exec in a goroutine and exits 1 whatever the
	// code: the code itself reaches it (TestCRIExecSync checks the value).
	if r := c.crictlRun("exec", "-s", ctr, "sh", "-c", "exit 7"); r.code == 0 {
		t.Errorf("exec -s exit 7: exit %d: %s", r.code, r.stderr)
	}
	// exec -it, on a terminal of the test's.
	ep := "unix://" + c.sock
	cmd := exec.Command(c.crictl, "--runtime-endpoint", ep, "--image-endpoint", ep, "exec", "-it", ctr, "sh", "-c", "tty >/dev/null && echo on-a-tty; read x; echo got-$x")
	ptmx, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&out, ptmx); close(done) }()
	time.Sleep(500 * time.Millisecond)
	ptmx.Write([]byte("ping\r"))
	werr := cmd.Wait()
	ptmx.Close()
	<-done
	if werr != nil || !strings.Contains(out.String(), "on-a-tty") || !strings.Contains(out.String(), "got-ping") {
		t.Errorf("exec -it: %v: %q", werr, out.String())
	}

	// logs, across a restart of the server.
	c.stopServer()
	c.startServer()
	if st := c.inspectc(ctr); st.Status.State != "CONTAINER_RUNNING" {
		t.Errorf("after restart: %+v", st.Status)
	}
	if out := c.crictlMust("logs", ctr); strings.TrimSpace(out) != "started" {
		t.Errorf("crictl logs: %q", out)
	}

	c.crictlMust("stop", "--timeout", "5", ctr)
	if st := c.waitState(ctr, "CONTAINER_EXITED"); st.Status.ExitCode != 128+15 {
		t.Errorf("after stop: %+v", st.Status)
	}
	if out := c.crictlMust("ps", "-a", "--state", "Exited", "-q"); strings.TrimSpace(out) != ctr {
		t.Errorf("crictl ps -a --state Exited: %q", out)
	}
	c.crictlMust("rm", ctr)
	if out := c.crictlMust("ps", "-a", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("crictl ps -a after rm: %q", out)
	}

	// A container that exits by itself, 3, and one left running for stopp.
	os.WriteFile(ctrJSON, []byte(`{"metadata": {"name": "once"}, "image": {"image": "`+ref+`"}, "log_path": "once/0.log",
		"command": ["sh", "-c", "echo out; echo err >&2; exit 3"], "linux": {}}`), 0o644)
	once := strings.TrimSpace(c.crictlMust("create", pod, ctrJSON, podJSON))
	c.crictlMust("start", once)
	if st := c.waitState(once, "CONTAINER_EXITED"); st.Status.ExitCode != 3 || st.Status.Reason != "Error" {
		t.Errorf("once: %+v", st.Status)
	}
	if r := c.crictlRun("logs", once); r.code != 0 || !strings.Contains(r.stdout, "out") || !strings.Contains(r.stderr, "err") {
		t.Errorf("crictl logs once: exit %d: %q %q", r.code, r.stdout, r.stderr)
	}
	c.crictlMust("stopp", pod)
	c.crictlMust("rmp", pod)
	if out := c.crictlMust("ps", "-a", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("crictl ps -a after rmp: %q", out)
	}

	// Bad input: an unknown pod, an unknown container.
	if r := c.crictlRun("create", strings.Repeat("f", 64), ctrJSON, podJSON); r.code == 0 || !strings.Contains(r.stderr, "NotFound") {
		t.Errorf("create in an unknown pod: exit %d: %s", r.code, r.stderr)
	}
	if r := c.crictlRun("start", "nosuchcontainer"); r.code == 0 || !strings.Contains(r.stderr, "NotFound") {
		t.Errorf("start of an unknown container: exit %d: %s", r.code, r.stderr)
	}
}

// nodeLoggers returns the PIDs of the node loggers serving the state
// directory (found by their command line, wherever they were reparented).
func (c *criEnv) nodeLoggers() []int {
	want := "--control\x00" + filepath.Join(c.state, "logger.sock") + "\x00"
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && bytes.Contains(b, []byte(want)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// oneNodeLogger waits until one node logger serves the state directory,
// other than not, and returns its PID.
func (c *criEnv) oneNodeLogger(not int) int {
	c.t.Helper()
	var pids []int
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if pids = c.nodeLoggers(); len(pids) == 1 && pids[0] != not {
			return pids[0]
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("node loggers %v, want one other than %d", pids, not)
		}
	}
}

// TestCRILoggerKilled: a container's output goes on to its log when the
// node logger is killed with SIGKILL (podsb cri replaces it, with the
// outputs it holds), when podsb cri is killed (the node logger goes on),
// and when the node logger is then killed (the restarted podsb cri took
// the outputs back from it); once the pods are removed and the server
// stopped, no node logger is left.
func TestCRILoggerKilled(t *testing.T) {
	c := newCRIEnv(t)
	host := serveImages(t, map[string]v1.Image{"busybox:1": ociImage(t, []string{"sh", "-c", "i=0; while :; do echo line $i; i=$((i+1)); usleep 20000; done"}, busyboxLayer(t))})
	ref := host + "/busybox:1"
	c.crictlMust("pull", ref)
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	os.Mkdir(logs, 0o755)
	podJSON := filepath.Join(dir, "pod.json")
	os.WriteFile(podJSON, []byte(`{"metadata": {"name": "lk", "namespace": "default", "uid": "lk1"}, "log_directory": "`+logs+`", "linux": {}}`), 0o644)
	ctrJSON := filepath.Join(dir, "ctr.json")
	os.WriteFile(ctrJSON, []byte(`{"metadata": {"name": "talker"}, "image": {"image": "`+ref+`"}, "log_path": "talker.log", "linux": {}}`), 0o644)
	pod := strings.TrimSpace(c.crictlMust("runp", podJSON))
	c.use(pod)
	ctr := strings.TrimSpace(c.crictlMust("create", pod, ctrJSON, podJSON))
	c.crictlMust("start", ctr)
	logPath := filepath.Join(logs, "talker.log")
	// lastLine is the highest line number in the log.
	lastLine := func() int {
		b, _ := os.ReadFile(logPath)
		n := -1
		for _, l := range strings.Split(string(b), "\n") {
			if i := strings.Index(l, " F line "); i >= 0 {
				if v, err := strconv.Atoi(l[i+len(" F line "):]); err == nil && v > n {
					n = v
				}
			}
		}
		return n
	}
	goesOn := func(what string) {
		t.Helper()
		n := lastLine()
		waitFor(t, "the log to go on "+what, func() bool { return lastLine() > n+5 })
	}
	goesOn("at the start")
	pid := c.oneNodeLogger(0)

	syscall.Kill(pid, syscall.SIGKILL)
	pid = c.oneNodeLogger(pid)
	goesOn("after the node logger was killed")

	c.srv.Process.Kill()
	c.srv.Wait()
	c.srv = nil
	goesOn("after podsb cri was killed")
	c.startServer()
	goesOn("after podsb cri restarted")
	syscall.Kill(pid, syscall.SIGKILL)
	c.oneNodeLogger(pid)
	goesOn("after the node logger was killed under the restarted server")
	if out := c.crictlMust("logs", "--tail", "1", ctr); !strings.HasPrefix(out, "line ") {
		t.Errorf("crictl logs --tail 1: %q", out)
	}
	// Every line is in the log once, in order, but those the killed node
	// loggers had read and not yet written.
	b, _ := os.ReadFile(logPath)
	prev := -1
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		i := strings.Index(l, " F line ")
		v, err := strconv.Atoi(l[i+len(" F line "):])
		if i < 0 || err != nil || v <= prev {
			t.Fatalf("log line %q after line %d", l, prev)
		}
		prev = v
	}

	c.crictlMust("stopp", pod)
	c.crictlMust("rmp", pod)
	c.stopServer()
	waitFor(t, "no node logger left", func() bool { return len(c.nodeLoggers()) == 0 })
}
