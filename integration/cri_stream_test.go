package integration

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/podsb/podsb/sandbox"
)

// podRuns reports whether a process of the pod has s in its command line.
func (c *criEnv) podRuns(id, s string) bool {
	c.t.Helper()
	pod, err := sandbox.Load(c.root, id)
	if err != nil {
		c.t.Fatal(err)
	}
	procs, err := pod.Processes()
	if err != nil {
		c.t.Fatal(err)
	}
	for _, p := range procs {
		if strings.Contains(p.Command, s) {
			return true
		}
	}
	return false
}

// waitFor polls cond until it holds, failing the test after 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s for %s", what)
		}
	}
}

// criPod runs a pod through crictl and a detached container in it with
// podsb run, named name: the CRI server's exec finds a container by its
// podsb name until it has container records of its own.
func (c *criEnv) criPod(name string, cmd ...string) string {
	c.t.Helper()
	dir := c.t.TempDir()
	podJSON := filepath.Join(dir, "pod.json")
	os.WriteFile(podJSON, []byte(`{"metadata": {"name": "stream", "namespace": "default", "uid": "s1"}, "linux": {}}`), 0o644)
	id := strings.TrimSpace(c.crictlMust("runp", podJSON))
	c.use(id)
	c.must(append([]string{"run", "-d", "--name", name, id, "--"}, cmd...)...)
	return id
}

// crictlCmd is crictl with the server's endpoints, to start by hand.
func (c *criEnv) crictlCmd(args ...string) *exec.Cmd {
	ep := "unix://" + c.sock
	return exec.Command(c.crictl, append([]string{"--runtime-endpoint", ep, "--image-endpoint", ep, "--timeout", "30s"}, args...)...)
}

// TestCRIExecSync drives ExecSync with crictl exec -s: output, exit code,
// and a timeout that kills the command and the processes it started.
func TestCRIExecSync(t *testing.T) {
	c := newCRIEnv(t)
	id := c.criPod("sync1", "sleep", "100000")

	if out := c.crictlMust("exec", "-s", "sync1", "sh", "-c", "echo out; echo err >&2"); !strings.Contains(out, "out\n") || !strings.Contains(out, "err\n") {
		t.Errorf("exec -s output: %q", out)
	}
	if r := c.crictlRun("exec", "-s", "sync1", "sh", "-c", "exit 4"); r.code == 0 || !strings.Contains(r.stderr, "exited with 4") {
		t.Errorf("exec -s of exit 4: exit %d: %s", r.code, r.stderr)
	}
	if r := c.crictlRun("exec", "-s", "--timeout", "1", "sync1", "sh", "-c", "sleep 1021 & sleep 1022"); r.code == 0 || !strings.Contains(r.stderr, "timed out") {
		t.Errorf("exec -s past its timeout: exit %d: %s", r.code, r.stderr)
	}
	for _, s := range []string{"sleep 1021", "sleep 1022"} {
		if c.podRuns(id, s) {
			t.Errorf("%q runs after its exec timed out", s)
		}
	}
	if !c.podRuns(id, "sleep 100000") {
		t.Error("the container's own process was killed with the exec")
	}
}

// TestCRIExecStream drives Exec's stream with crictl exec: output, exit
// code, stdin, a terminal with its size, a client killed in the middle.
func TestCRIExecStream(t *testing.T) {
	c := newCRIEnv(t)
	id := c.criPod("exec1", "sleep", "100000")

	r := c.crictlRun("exec", "exec1", "sh", "-c", "echo hi; echo err >&2; exit 3")
	// crictl exits 1 for any failed exec; the code is in its message.
	if r.stdout != "hi\n" || !strings.Contains(r.stderr, "err\n") || !strings.Contains(r.stderr, "command terminated with exit code 3") || r.code != 1 {
		t.Errorf("exec of exit 3: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	in := c.crictlCmd("exec", "-i", "exec1", "tr", "a-z", "A-Z")
	in.Stdin = strings.NewReader("hello\nworld\n")
	if r := c.runCmd(in); r.code != 0 || r.stdout != "HELLO\nWORLD\n" {
		t.Errorf("exec -i: exit %d, stdout %q: %s", r.code, r.stdout, r.stderr)
	}
	if r := c.crictlRun("exec", "exec1", "nosuch-command"); r.code == 0 || !strings.Contains(r.stderr, "command not found") || !strings.Contains(r.stderr, "exit code 127") {
		t.Errorf("exec of a missing command: exit %d: %s", r.code, r.stderr)
	}

	t.Run("terminal", func(t *testing.T) {
		cmd := c.crictlCmd("exec", "-it", "exec1", "sh", "-c", "read x; stty size; tty")
		term, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 33, Cols: 101})
		if err != nil {
			t.Fatal(err)
		}
		defer term.Close()
		var mu sync.Mutex
		var out bytes.Buffer
		go func() {
			b := make([]byte, 1024)
			for {
				n, err := term.Read(b)
				mu.Lock()
				out.Write(b[:n])
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
		output := func() string {
			mu.Lock()
			defer mu.Unlock()
			return out.String()
		}
		io.WriteString(term, "go\r")
		waitFor(t, "stty size", func() bool { return strings.Contains(output(), "/dev/pts/") })
		if err := cmd.Wait(); err != nil {
			t.Errorf("crictl exec -it: %v: %q", err, output())
		}
		if !strings.Contains(output(), "33 101") {
			t.Errorf("exec -it: %q, want the terminal's size 33 101", output())
		}
	})

	t.Run("client killed", func(t *testing.T) {
		cmd := c.crictlCmd("exec", "exec1", "sh", "-c", "sleep 1023 & sleep 1024")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the exec to start", func() bool { return c.podRuns(id, "sleep 1024") })
		cmd.Process.Kill()
		cmd.Wait()
		waitFor(t, "the exec's processes to end", func() bool { return !c.podRuns(id, "sleep 1023") && !c.podRuns(id, "sleep 1024") })
		if out := c.crictlMust("exec", "-s", "exec1", "echo", "still serving"); !strings.Contains(out, "still serving") {
			t.Errorf("exec -s after a client was killed: %q", out)
		}
	})
	t.Run("server stopped", func(t *testing.T) {
		cmd := c.crictlCmd("exec", "exec1", "sh", "-c", "sleep 1025 & sleep 1026")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the exec to start", func() bool { return c.podRuns(id, "sleep 1026") })
		c.stopServer() // SIGTERM: a graceful stop ends the streams
		if err := cmd.Wait(); err == nil {
			t.Error("crictl exec succeeded while its server stopped")
		}
		if c.podRuns(id, "sleep 1025") || c.podRuns(id, "sleep 1026") {
			t.Error("an exec's processes outlived the server")
		}
		if !c.podRuns(id, "sleep 100000") {
			t.Error("the container did not outlive the server")
		}
		c.startServer()
		if out := c.crictlMust("exec", "-s", "exec1", "echo", "back"); !strings.Contains(out, "back") {
			t.Errorf("exec -s after a restart: %q", out)
		}
	})
	c.stopServer() // its log is read after it stopped writing it
	if strings.Contains(c.log.String(), "panic") {
		t.Errorf("the server's log has a panic:\n%s", c.log)
	}
}

// TestCRIPortForward forwards a local port to busybox httpd on the pod's
// loopback with crictl port-forward.
func TestCRIPortForward(t *testing.T) {
	c := newCRIEnv(t)
	id := c.criPod("web", "sh", "-c", "mkdir -p /tmp/www && echo served from the pod > /tmp/www/index.html && exec busybox httpd -f -p 127.0.0.1:8080 -h /tmp/www")

	forward := func(remote int) (string, func()) {
		t.Helper()
		cmd := c.crictlCmd("port-forward", id, fmt.Sprintf(":%d", remote))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		stop := func() {
			cmd.Process.Kill()
			cmd.Wait()
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		m := regexp.MustCompile(`Forwarding from (127\.0\.0\.1:[0-9]+) ->`).FindStringSubmatch(line)
		if m == nil {
			stop()
			t.Fatalf("crictl port-forward: %q %v: %s", line, err, stderr.String())
		}
		go io.Copy(io.Discard, out)
		return m[1], stop
	}
	get := func(addr string) (string, error) {
		resp, err := http.Get("http://" + addr + "/index.html")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}

	addr, stop := forward(8080)
	var body string
	// httpd starts in the background: until it listens, the forward's
	// connect is refused and the request fails.
	waitFor(t, "httpd through the forward", func() bool {
		b, err := get(addr)
		body = b
		return err == nil
	})
	if body != "served from the pod\n" {
		t.Errorf("GET through port-forward: %q", body)
	}
	for range 3 { // one stream per connection
		if b, err := get(addr); err != nil || b != body {
			t.Errorf("GET again: %q %v", b, err)
		}
	}
	stop()

	// A port nothing listens on: the connection ends, the server goes on.
	addr, stop = forward(8081)
	if _, err := get(addr); err == nil {
		t.Error("GET through a forward to a closed port worked")
	}
	stop()
	if r := c.crictlRun("pods", "-q"); r.code != 0 || strings.TrimSpace(r.stdout) != id {
		t.Errorf("crictl pods after the forwards: %q %s", r.stdout, r.stderr)
	}
	c.stopServer() // its log is read after it stopped writing it
	if !strings.Contains(c.log.String(), "port-forward failed") || !strings.Contains(c.log.String(), "connection refused") {
		t.Errorf("the server did not log the refused forward:\n%s", c.log)
	}
}

// TestCRIStreamBadInput: unknown containers and pods, and attach (not
// served yet), are refused with their gRPC code and a message that names
// them.
func TestCRIStreamBadInput(t *testing.T) {
	c := newCRIEnv(t)
	id := c.criPod("bad1", "sleep", "100000")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"exec", "-s", "nosuch", "true"}, `NotFound desc = container \"nosuch\": not found`},
		{[]string{"exec", "nosuch", "true"}, `NotFound desc = container \"nosuch\": not found`},
		{[]string{"port-forward", "nosuchpod", "80"}, `NotFound desc = pod sandbox \"nosuchpod\": not found`},
		// A container that podsb run, not the CRI, made: no log writer to attach to.
		{[]string{"attach", "bad1"}, `NotFound desc = container \"bad1\": not found`},
	} {
		if r := c.crictlRun(tc.args...); r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("crictl %s: exit %d: %s", strings.Join(tc.args, " "), r.code, r.stderr)
		}
	}
	// A stopped pod's container: no exec.
	c.crictlMust("stopp", id)
	if r := c.crictlRun("exec", "-s", "bad1", "true"); r.code == 0 || !strings.Contains(r.stderr, "FailedPrecondition") {
		t.Errorf("exec -s in a stopped pod: exit %d: %s", r.code, r.stderr)
	}
}
