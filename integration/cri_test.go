package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

var (
	crictlOnce sync.Once
	crictlPath string
	crictlErr  error
)

// crictlBinary returns crictl v1.37.0: $PODSB_CRICTL, else the one make
// tools keeps in $PODSB_TOOLS_DIR (/var/cache/podsb-tools), built there
// first if it is missing (go install from the module proxy, once per
// machine; never in the main module's go.mod).
func crictlBinary(t *testing.T) string {
	t.Helper()
	crictlOnce.Do(func() {
		if p := os.Getenv("PODSB_CRICTL"); p != "" {
			crictlPath = p
			return
		}
		dir := os.Getenv("PODSB_TOOLS_DIR")
		if dir == "" {
			dir = "/var/cache/podsb-tools"
		}
		crictlPath = filepath.Join(dir, "crictl-v1.37.0")
		if _, err := os.Stat(crictlPath); err == nil {
			return
		}
		out, err := exec.Command("make", "-s", "-C", "..", "tools", "TOOLS_DIR="+dir).CombinedOutput()
		if err != nil {
			crictlErr = fmt.Errorf("make tools: %v: %s", err, out)
		}
	})
	if crictlErr != nil {
		t.Fatal(crictlErr)
	}
	return crictlPath
}

// criEnv is a podsb cri server of the test's own: its socket, state root
// (the env's), image root, record directory and bridge network.
type criEnv struct {
	*env
	crictl, sock, images, state, subnet string
	srv                                 *exec.Cmd
	log                                 *bytes.Buffer
	// args are more flags of podsb cri (newCRIEnvArgs).
	args []string
}

func newCRIEnv(t *testing.T) *criEnv { return newCRIEnvArgs(t) }

// newCRIEnvArgs is newCRIEnv with more flags of podsb cri.
func newCRIEnvArgs(t *testing.T, args ...string) *criEnv {
	e, netArgs := netEnv(t)
	dir := t.TempDir()
	c := &criEnv{env: e, crictl: crictlBinary(t), sock: filepath.Join(dir, "cri.sock"),
		images: filepath.Join(dir, "images"), state: filepath.Join(dir, "state"), subnet: netArgs[5], args: args}
	// Registered after the env's cleanup, so it runs first: the server
	// goes before the env checks for leaks.
	t.Cleanup(func() {
		if c.srv != nil {
			c.stopServer()
		}
		if t.Failed() {
			t.Logf("podsb cri's log:\n%s", c.log)
		}
	})
	c.startServer()
	return c
}

// startServer runs podsb cri, which executes podsb-cri, and waits for its
// socket.
func (c *criEnv) startServer() {
	c.t.Helper()
	if c.log == nil {
		c.log = &bytes.Buffer{}
	}
	c.srv = exec.Command(c.bin, "cri", "--listen", "unix://"+c.sock, "--root", c.root, "--image-root", c.images,
		"--state", c.state, "--bridge", c.bridge, "--subnet", c.subnet, "--stream-address", "127.0.0.1:0")
	c.srv.Args = append(c.srv.Args, c.args...)
	c.srv.Stderr = c.log
	if err := c.srv.Start(); err != nil {
		c.t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if r := c.crictlRun("version"); r.code == 0 {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("podsb cri did not serve %s: %s", c.sock, c.log)
		}
	}
}

// stopServer sends SIGTERM and expects a graceful exit.
func (c *criEnv) stopServer() {
	c.t.Helper()
	c.srv.Process.Signal(syscall.SIGTERM)
	err := c.srv.Wait()
	c.srv = nil
	if err != nil {
		c.t.Errorf("podsb cri after SIGTERM: %v", err)
	}
	if !strings.Contains(c.log.String(), "the pods keep running") {
		c.t.Errorf("podsb cri did not log its graceful stop")
	}
}

func (c *criEnv) crictlRun(args ...string) result {
	c.t.Helper()
	ep := "unix://" + c.sock
	a := append([]string{"--runtime-endpoint", ep, "--image-endpoint", ep, "--timeout", "30s"}, args...)
	return c.runCmd(exec.Command(c.crictl, a...))
}

// crictlMust runs crictl and fails the test unless it exits 0.
func (c *criEnv) crictlMust(args ...string) string {
	c.t.Helper()
	r := c.crictlRun(args...)
	if r.code != 0 {
		c.t.Fatalf("crictl %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

type crictlPodStatus struct {
	Status struct {
		ID       string `json:"id"`
		State    string `json:"state"`
		Metadata struct {
			Name    string `json:"name"`
			Attempt int    `json:"attempt"`
		} `json:"metadata"`
		Network *struct {
			IP string `json:"ip"`
		} `json:"network"`
		Labels map[string]string `json:"labels"`
	} `json:"status"`
}

func (c *criEnv) inspectp(id string) crictlPodStatus {
	c.t.Helper()
	var st crictlPodStatus
	if err := json.Unmarshal([]byte(c.crictlMust("inspectp", id)), &st); err != nil {
		c.t.Fatalf("inspectp %s: %v", id, err)
	}
	return st
}

// TestCRICrictl drives podsb cri with the real crictl: pods (run, list,
// inspect, stop, remove, across a restart of the server) and images (pull,
// list, remove), and bad input.
func TestCRICrictl(t *testing.T) {
	c := newCRIEnv(t)
	host := serveImages(t, map[string]v1.Image{"busybox:1": ociImage(t, []string{"sh"}, busyboxLayer(t))})

	if out := c.crictlMust("version"); !strings.Contains(out, "RuntimeName:  podsb") || !strings.Contains(out, "RuntimeApiVersion:  v1") {
		t.Errorf("crictl version: %s", out)
	}

	dir := t.TempDir()
	podJSON := filepath.Join(dir, "pod.json")
	os.WriteFile(podJSON, []byte(`{"metadata": {"name": "web", "namespace": "default", "uid": "8d1f8a2e", "attempt": 1},
		"hostname": "web-0", "log_directory": "/var/log/pods/web",
		"dns_config": {"servers": ["10.96.0.10"], "searches": ["default.svc.cluster.local"], "options": ["ndots:5"]},
		"labels": {"app": "web"}, "annotations": {"owner": "test"}, "linux": {}}`), 0o644)
	id := strings.TrimSpace(c.crictlMust("runp", podJSON))
	c.use(id)
	if len(id) != 64 {
		t.Fatalf("runp: pod ID %q", id)
	}
	// podsb sees the pod under the CRI ID as it is, with the config's
	// hostname and DNS.
	d := c.inspect(id)
	if d.Hostname != "web-0" || d.Network == nil {
		t.Errorf("podsb inspect: %+v", d.State)
	}
	if r := c.inPod(id, "cat", "/etc/resolv.conf"); !strings.Contains(r.stdout, "nameserver 10.96.0.10\nsearch default.svc.cluster.local\noptions ndots:5") {
		t.Errorf("pod's resolv.conf: %q %s", r.stdout, r.stderr)
	}
	if out := c.crictlMust("pods"); !strings.Contains(out, id[:13]) || !strings.Contains(out, "Ready") || !strings.Contains(out, "web") {
		t.Errorf("crictl pods:\n%s", out)
	}
	st := c.inspectp(id)
	if st.Status.ID != id || st.Status.State != "SANDBOX_READY" || st.Status.Network == nil || st.Status.Network.IP != d.Network.Addr.Addr().String() ||
		st.Status.Metadata.Name != "web" || st.Status.Metadata.Attempt != 1 || st.Status.Labels["app"] != "web" {
		t.Errorf("crictl inspectp: %+v", st)
	}
	if out := c.crictlMust("pods", "--label", "app=web", "-q"); strings.TrimSpace(out) != id {
		t.Errorf("crictl pods --label app=web: %q", out)
	}
	if out := c.crictlMust("pods", "--label", "app=db", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("crictl pods --label app=db: %q", out)
	}

	// A restart of the server keeps the pod, running, with the same ID.
	c.stopServer()
	if d2 := c.inspect(id); d2.Pid != d.Pid || d2.Status != "running" {
		t.Errorf("pod after the server stopped: %+v", d2.State)
	}
	c.startServer()
	if out := c.crictlMust("pods", "-q"); strings.TrimSpace(out) != id {
		t.Errorf("crictl pods -q after restart: %q", out)
	}
	if st := c.inspectp(id); st.Status.State != "SANDBOX_READY" {
		t.Errorf("after restart: %+v", st)
	}

	c.crictlMust("stopp", id[:12])
	if out := c.crictlMust("pods", "--state", "NotReady", "-q"); strings.TrimSpace(out) != id {
		t.Errorf("crictl pods --state NotReady after stopp: %q", out)
	}
	if st := c.inspectp(id); st.Status.State != "SANDBOX_NOTREADY" {
		t.Errorf("after stopp: %+v", st)
	}
	c.crictlMust("rmp", id)
	if out := c.crictlMust("pods", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("crictl pods after rmp: %q", out)
	}

	ref := host + "/busybox:1"
	if out := c.crictlMust("pull", ref); !strings.Contains(out, "sha256:") {
		t.Errorf("crictl pull: %s", out)
	}
	if out := c.crictlMust("images"); !strings.Contains(out, host+"/busybox") || !strings.Contains(out, "1") {
		t.Errorf("crictl images:\n%s", out)
	}
	if out := c.crictlMust("inspecti", ref); !strings.Contains(out, `"repoTags"`) {
		t.Errorf("crictl inspecti:\n%s", out)
	}
	c.crictlMust("rmi", ref)
	if out := c.crictlMust("images", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("crictl images after rmi: %q", out)
	}

	// Bad input: an unknown pod, a bad DNS server, an unknown PID mode. Nothing is left of the pods refused.
	if r := c.crictlRun("inspectp", "nosuchpod"); r.code == 0 || !strings.Contains(r.stderr, "NotFound") {
		t.Errorf("inspectp of an unknown pod: exit %d: %s", r.code, r.stderr)
	}
	// (crictl quotes the message: look for a part without quotes.)
	for _, tc := range []struct{ config, want string }{
		{`"dns_config": {"servers": ["dns.example"]}`, "InvalidArgument desc = dns config: server"},
		{`"linux": {"security_context": {"namespace_options": {"pid": 9}}}`, "InvalidArgument desc = pod sandbox config: namespace_options.pid: unknown mode"},
	} {
		bad := filepath.Join(dir, "bad.json")
		os.WriteFile(bad, []byte(`{"metadata": {"name": "bad", "namespace": "default", "uid": "1"}, `+tc.config+`}`), 0o644)
		if r := c.crictlRun("runp", bad); r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("runp with %s: exit %d: %s", tc.config, r.code, r.stderr)
		}
	}
	if out := c.crictlMust("pods", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("crictl pods after refused runp: %q", out)
	}
}

// podsb cri without podsb-cri next to it or in PATH says how to build it,
// in one line, and exits 125.
func TestCRIWithoutServerBinary(t *testing.T) {
	bin := podsbBinary(t)
	dir := t.TempDir()
	lone := filepath.Join(dir, "podsb")
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lone, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(lone, "cri", "--listen", "unix://"+filepath.Join(dir, "cri.sock"))
	cmd.Env = append(os.Environ(), "PATH="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 125 {
		t.Fatalf("podsb cri without podsb-cri: %v", err)
	}
	if msg := stderr.String(); strings.Count(msg, "\n") != 1 || !strings.Contains(msg, "needs the podsb-cri binary") || !strings.Contains(msg, "make build") {
		t.Errorf("message: %q", msg)
	}
	if _, err := os.Stat(filepath.Join(dir, "cri.sock")); err == nil {
		t.Error("a socket was made")
	}
}

// podsb cri killed (SIGKILL) while it runs a pod sandbox, at several
// moments: the next server lists the pod NOTREADY, or not at all, and
// removing what it lists leaves nothing.
func TestCRIKilledDuringRunp(t *testing.T) {
	c := newCRIEnv(t)
	dir := t.TempDir()
	// crictl takes about 80 ms to send its call, and the call about 25
	// ms (2026-12-05): the kills spread over that window. Whether a kill
	// lands inside the call varies from run to run; what must hold
	// holds for every moment.
	for i := range 12 {
		delay := time.Duration(60+6*i) * time.Millisecond
		podJSON := filepath.Join(dir, fmt.Sprintf("pod%d.json", i))
		os.WriteFile(podJSON, []byte(fmt.Sprintf(`{"metadata": {"name": "k%d", "namespace": "default", "uid": "u%d"}, "linux": {}}`, i, i)), 0o644)
		ep := "unix://" + c.sock
		runp := exec.Command(c.crictl, "--runtime-endpoint", ep, "--timeout", "10s", "runp", podJSON)
		if err := runp.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		c.srv.Process.Kill()
		c.srv.Wait()
		runp.Process.Kill() // it would wait for a server until its timeout
		runp.Wait()
		c.srv = nil
		c.startServer()
		out := c.crictlMust("pods", "-q")
		for _, id := range strings.Fields(out) {
			c.use(id)
			st := c.inspectp(id)
			if st.Status.State != "SANDBOX_NOTREADY" && st.Status.State != "SANDBOX_READY" {
				t.Errorf("delay %v: pod %s in state %s", delay, id, st.Status.State)
			}
			t.Logf("killed after %v: pod %s is %s", delay, id[:12], st.Status.State)
			c.crictlMust("rmp", "-f", id)
		}
		if out := c.crictlMust("pods", "-q"); strings.TrimSpace(out) != "" {
			t.Errorf("delay %v: left after rmp: %q", delay, out)
		}
		// The server keeps its bridge network while it runs (pruned at
		// its stop): the network's record may stay, but no lease and
		// no port of a pod.
		for _, sub := range []string{"leases", "ports"} {
			held, _ := os.ReadDir(filepath.Join(c.root, ".network", sub))
			if len(held) > 0 {
				t.Errorf("delay %v: %s still held: %v", delay, sub, held)
			}
		}
		if ents := slices.DeleteFunc(stateEntries(c.root), func(n string) bool { return n == ".network" }); len(ents) > 0 {
			out, _ := exec.Command("find", c.root, "-ls").CombinedOutput()
			t.Errorf("delay %v: state root holds %v:\n%s", delay, ents, out)
		}
	}
}

// TestCRIShutdownStuck: SIGTERM ends podsb cri even when its shutdown
// cannot finish (here its network's lock is held by someone else, so the
// pruning of the network waits): it gives up after its limit, logs it and
// exits, and a new server finds the pod as it was.
func TestCRIShutdownStuck(t *testing.T) {
	c := newCRIEnvArgs(t, "--grace", "1s")
	dir := t.TempDir()
	podJSON := filepath.Join(dir, "pod.json")
	os.WriteFile(podJSON, []byte(`{"metadata": {"name": "stuck", "namespace": "default", "uid": "u1"}, "linux": {}}`), 0o644)
	id := strings.TrimSpace(c.crictlMust("runp", podJSON))
	c.use(id)

	lock, err := os.Open(filepath.Join(c.root, ".network"))
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	c.srv.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { exited <- c.srv.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("podsb cri after SIGTERM: %v", err)
		}
	case <-time.After(time.Minute): // a hang, not a timing
		c.srv.Process.Kill()
		<-exited
		t.Errorf("podsb cri did not exit on SIGTERM while its shutdown was stuck")
	}
	lock.Close()
	c.srv = nil
	if !strings.Contains(c.log.String(), "shutdown did not finish") {
		t.Errorf("podsb cri did not log its stuck shutdown:\n%s", c.log)
	}
	c.startServer()
	if st := c.inspectp(id); st.Status.State != "SANDBOX_READY" {
		t.Errorf("pod after the restart: %s", st.Status.State)
	}
	c.crictlMust("rmp", "-f", id)
}
