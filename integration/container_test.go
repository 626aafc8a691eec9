package integration

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The Kubernetes example podsb grows from: a pod with a published port, a
// reverse proxy (nginx) in one container forwarding to 127.0.0.1, a backend
// with a root of its own in another; a request to the host's 127.0.0.1
// reaches the backend through the proxy.
func TestContainersProxyExample(t *testing.T) {
	e, nargs := netEnv(t)
	hostPort := 20000 + rand.IntN(20000)
	pod, _ := e.create(append(nargs, "-p", fmt.Sprintf("%d:80", hostPort))...)

	backendRoot := dirRoot(t)
	os.MkdirAll(filepath.Join(backendRoot, "srv"), 0o755)
	os.WriteFile(filepath.Join(backendRoot, "srv", "index.html"), []byte("served by the backend's own root\n"), 0o644)
	e.must("run", "-d", "--name", "backend", "--rootfs", backendRoot, "-v", "/usr:/usr:ro", pod, "--",
		"python3", "-m", "http.server", "8081", "--bind", "127.0.0.1", "--directory", "/srv")

	conf := filepath.Join(t.TempDir(), "nginx.conf")
	os.WriteFile(conf, []byte(proxyNginxConf(8081)), 0o644)
	e.must("run", "-d", "--name", "proxy", "-v", conf+":/etc/nginx/nginx.conf:ro", pod, "--",
		"nginx", "-e", "stderr", "-c", "/etc/nginx/nginx.conf")

	url := fmt.Sprintf("http://127.0.0.1:%d/index.html", hostPort)
	var body string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if body = string(b); resp.StatusCode == 200 {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if body != "served by the backend's own root\n" {
		t.Errorf("GET %s: %q\nproxy log: %s\nbackend log: %s", url, body, e.run("logs", pod, "proxy").stdout, e.run("logs", pod, "backend").stdout)
	}
	// Both containers show in ps --containers and top; pause adopted their
	// main processes.
	ps := e.must("ps", "--containers")
	if !strings.Contains(ps, "backend") || !strings.Contains(ps, "proxy") {
		t.Errorf("ps --containers:\n%s", ps)
	}
	top := e.must("top", pod)
	for _, want := range []string{"backend", "proxy", "nginx", "python3"} {
		if !strings.Contains(top, want) {
			t.Errorf("top lacks %s:\n%s", want, top)
		}
	}
	for _, line := range strings.Split(top, "\n") {
		if f := strings.Fields(line); len(f) > 5 && (strings.HasPrefix(f[6], "nginx") || strings.HasPrefix(f[6], "python3")) && f[2] != "1" {
			t.Errorf("container's main process not adopted by pause: %s", line)
		}
	}
}

// Each container has a root and mount namespace of its own; the PID,
// network, IPC and UTS namespaces are the pod's; pause is PID 1.
func TestContainerRootsAndNamespaces(t *testing.T) {
	e := newEnv(t)
	pod, _ := e.create()
	e.must("run", "-d", "--name", "a", pod, "--", "sleep", "100")
	e.must("run", "-d", "--name", "b", pod, "--", "sleep", "100")
	e.must("exec", "--container", "a", pod, "--", "sh", "-c", "echo in-a > /root/file")
	for _, where := range [][]string{{"--container", "b"}, {}} {
		args := append(append([]string{"exec"}, where...), pod, "--", "sh", "-c", "cat /root/file 2>/dev/null || echo absent")
		if out := e.must(args...); out != "absent\n" {
			t.Errorf("%v sees a's file: %q", where, out)
		}
	}
	if out := e.must("exec", "--container", "a", pod, "--", "cat", "/root/file"); out != "in-a\n" {
		t.Errorf("a lost its file: %q", out)
	}
	hostOf := map[string]int{}
	for _, line := range strings.Split(e.must("top", pod), "\n") {
		if f := strings.Fields(line); len(f) > 6 && (f[5] == "a" || f[5] == "b") {
			var pid int
			fmt.Sscan(f[1], &pid)
			hostOf[f[5]] = pid
		}
	}
	if len(hostOf) != 2 {
		t.Fatalf("containers' processes: %v", hostOf)
	}
	for _, ns := range []string{"pid", "net", "ipc", "uts"} {
		want := nsIno(t, filepath.Join(e.root, pod, "ns", ns))
		for c, pid := range hostOf {
			if got := nsIno(t, fmt.Sprintf("/proc/%d/ns/%s", pid, ns)); got != want {
				t.Errorf("container %s: %s namespace %d, pod's %d", c, ns, got, want)
			}
		}
	}
	mntA, mntB := nsIno(t, fmt.Sprintf("/proc/%d/ns/mnt", hostOf["a"])), nsIno(t, fmt.Sprintf("/proc/%d/ns/mnt", hostOf["b"]))
	if mntA == mntB || mntA == nsIno(t, filepath.Join(e.root, pod, "ns", "mnt")) || mntA != nsIno(t, filepath.Join(e.root, pod, "ns", "mnt-a")) {
		t.Errorf("mount namespaces: a %d b %d pod %d", mntA, mntB, nsIno(t, filepath.Join(e.root, pod, "ns", "mnt")))
	}
	if out := e.must("exec", "--container", "b", pod, "--", "sh", "-c", "cat /proc/1/comm; hostname"); out != "pause\n"+pod+"\n" {
		t.Errorf("in b: %q", out)
	}
}

// A container's exit status, signals and orphans behave as exec's.
func TestContainerRunSemantics(t *testing.T) {
	e := newEnv(t)
	pod, d := e.create()
	if r := e.run("run", pod, "--", "sh", "-c", "echo out; echo err >&2; exit 3"); r.code != 3 || r.stdout != "out\n" || r.stderr != "err\n" {
		t.Errorf("exit 3: %+v", r)
	}
	if r := e.run("run", pod, "--", "no-such-command"); r.code != 127 || !strings.Contains(r.stderr, "command not found") {
		t.Errorf("not found: %+v", r)
	}
	if r := e.run("run", "-u", "nobody", "-w", "/tmp", "-e", "X=y", pod, "--", "sh", "-c", "id -u; pwd; echo $X"); r.stdout != "65534\n/tmp\ny\n" {
		t.Errorf("user, dir, env: %+v", r)
	}
	// Orphans of a container go to pause, which reaps them.
	e.must("run", pod, "--", "sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do (sleep 0.2 &); done")
	deadline := time.Now().Add(3 * time.Second)
	for len(podHostPIDs(t, d)) > 1 {
		if time.Now().After(deadline) {
			t.Fatalf("orphans left:\n%s", e.must("top", pod))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// kill and logs.
	name := strings.TrimSpace(e.must("run", "-d", pod, "--", "sh", "-c", "trap 'echo bye; exit 0' TERM; echo hi; while :; do sleep 0.05; done"))
	time.Sleep(200 * time.Millisecond)
	e.must("kill", pod, name)
	if out := e.must("logs", "-f", pod, name); out != "hi\nbye\n" {
		t.Errorf("logs of %s: %q", name, out)
	}
}

func TestContainerErrors(t *testing.T) {
	e := newEnv(t)
	pod, d := e.create()
	e.must("run", "-d", "--name", "one", pod, "--", "sleep", "100")
	before, _ := os.ReadDir(filepath.Join(e.root, pod, "containers"))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--name", "one", pod, "--", "true"}, "already exists"},
		{[]string{"run", "--name", "../x", pod, "--", "true"}, "container name \"../x\": must match"},
		{[]string{"run", "--name", "5", pod, "--", "true"}, "container name \"5\": must not be a number"},
		{[]string{"exec", "--container", "5", pod, "--", "true"}, "must not be a number"},
		{[]string{"run", "--rootfs", "/nonexistent", pod, "--", "true"}, "no such file or directory"},
		{[]string{"run", "nosuchpod", "--", "true"}, "no such pod"},
		{[]string{"run", pod}, "requires at least 2 arg"},
		{[]string{"logs", pod, "nosuch"}, "no such container nosuch"},
		{[]string{"kill", pod, "nosuch"}, "no such container nosuch"},
		{[]string{"kill", pod, "one", "NOSIG"}, "not a signal"},
		{[]string{"exec", "--container", "nosuch", pod, "--", "true"}, "no such container nosuch"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			wantFailure(t, e.run(tc.args...), tc.want)
			after, _ := os.ReadDir(filepath.Join(e.root, pod, "containers"))
			if len(after) != len(before) {
				t.Errorf("containers now %v, were %v", after, before)
			}
		})
	}
	// A container whose command exited is not joined.
	e.must("run", "--name", "done", pod, "--", "true")
	wantFailure(t, e.run("exec", "--container", "done", pod, "--", "true"), "container done in pod "+pod+" is not running")
	// podsb logs POD counts detached commands' logs only: with one
	// container's log and one command's, it is the command's.
	pid := strings.TrimSpace(e.must("exec", "-d", pod, "--", "echo", "from-exec"))
	time.Sleep(100 * time.Millisecond)
	if out := e.must("logs", pod); out != "from-exec\n" {
		t.Errorf("logs %s (PID %s): %q", pod, pid, out)
	}
	// A stopped pod runs nothing.
	killPause(t, d)
	wantFailure(t, e.run("run", pod, "--", "true"), "is not running")
}

// run shares exec's terminal and signal handling.
func TestContainerTTYAndSignals(t *testing.T) {
	e := newEnv(t)
	pod, _ := e.create()
	line := fmt.Sprintf("%s --root %s run -t %s -- sh -c 'tty; test -t 0 && echo terminal'", e.bin, e.root, pod)
	r := e.runCmd(cmdOf("script", "-qec", line, "/dev/null"))
	out := strings.ReplaceAll(r.stdout, "\r", "")
	if r.code != 0 || !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, "terminal") {
		t.Errorf("run -t: %+v", r)
	}
	var buf syncBuffer
	cmd := cmdOf(e.bin, "--root", e.root, "run", pod, "--", "sh", "-c", "trap 'echo got TERM; exit 9' TERM; echo ready; while :; do sleep 0.05; done")
	cmd.Stdout = &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for !strings.Contains(buf.String(), "ready") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(unix.SIGTERM)
	cmd.Wait()
	if cmd.ProcessState.ExitCode() != 9 || !strings.Contains(buf.String(), "got TERM") {
		t.Errorf("signal forwarding: exit %d, %q", cmd.ProcessState.ExitCode(), buf.String())
	}
}

// proxyNginxConf is the example's nginx.conf: in the foreground, one
// process, temporary files under /tmp, serving port 80 by proxying to
// 127.0.0.1:port.
func proxyNginxConf(port int) string {
	return fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid /tmp/nginx.pid;
error_log stderr;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path /tmp/client;
	proxy_temp_path /tmp/proxy;
	fastcgi_temp_path /tmp/fastcgi;
	uwsgi_temp_path /tmp/uwsgi;
	scgi_temp_path /tmp/scgi;
	server {
		listen 80;
		location / { proxy_pass http://127.0.0.1:%d; }
	}
}
`, port)
}
