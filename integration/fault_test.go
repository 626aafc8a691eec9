package integration

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// createSteps are the steps of create (sandbox.Create's trace) after which
// a create is killed in TestCreateKilledAnywhere.
var createSteps = []string{
	"state directory", "plan", "clone namespaces, exec init", "first state write",
	"init: mounts, pivot_root", "pin namespaces", "register with ip netns", "final state write",
}

var netSteps = []string{"reserve address and ports", "bridge, veth, address, route, NAT"}

// childrenOf returns the live children of pid, with their start times.
func childrenOf(pid int) map[int]uint64 {
	out := map[int]uint64{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		i := bytes.LastIndexByte(b, ')')
		if err != nil || i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 19 && f[1] == strconv.Itoa(pid) && f[0] != "Z" {
			st, _ := strconv.ParseUint(f[19], 10, 64)
			out[n] = st
		}
	}
	return out
}

// killAt runs podsb with args and PODSB_TEST_STOP_AFTER=step, waits until
// it stops after step, and SIGKILLs it there. The processes it had
// started by then (its children: a pause, a container's init) are added to
// e.pids, for the leak checks: only this test's own processes are
// counted, never the host's.
func (e *env) killAt(t *testing.T, step string, args ...string) {
	t.Helper()
	cmd := exec.Command(e.bin, append([]string{"--root", e.root}, args...)...)
	cmd.Env = append(os.Environ(), "PODSB_TEST_STOP_AFTER="+step)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	stopped := false
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if strings.Contains(sc.Text(), "stopped after "+step) {
			stopped = true
			break
		}
	}
	kids := childrenOf(cmd.Process.Pid)
	cmd.Process.Signal(unix.SIGKILL)
	cmd.Wait()
	if !stopped {
		t.Fatalf("podsb %v never reached %q: %s", args, step, strings.Join(lines, "\n"))
	}
	e.mu.Lock()
	for pid, st := range kids {
		e.pids[pid] = st
	}
	e.mu.Unlock()
}

// killCreateAt starts podsb create NAME, lets it stop after step, and
// SIGKILLs it there.
func (e *env) killCreateAt(t *testing.T, step, name string, args ...string) {
	t.Helper()
	e.killAt(t, step, append(append([]string{"create"}, args...), name)...)
}

// A create killed with SIGKILL at any step: rm -f NAME, or gc, leaves
// nothing, and a later create of the same name works.
func TestCreateKilledAnywhere(t *testing.T) {
	for _, network := range []bool{false, true} {
		steps := createSteps
		if network {
			steps = append(append([]string{}, createSteps...), netSteps...)
		}
		for _, step := range steps {
			for _, cleanup := range []string{"rm", "gc"} {
				t.Run(fmt.Sprintf("net=%v/%s/%s", network, step, cleanup), func(t *testing.T) {
					var e *env
					var args []string
					if network {
						e, args = netEnv(t)
					} else {
						e, args = newEnv(t), []string{"--network", "none"}
					}
					name := e.name()
					e.killCreateAt(t, step, name, args...)
					if b, err := os.ReadFile(filepath.Join(e.root, name, "state.json")); err == nil && strings.Contains(string(b), `"pid"`) {
						e.inspect(name) // remember pause for the leak checks
					}
					if cleanup == "rm" {
						e.must("rm", "-f", name)
					} else {
						e.must("gc")
						if step == createSteps[len(createSteps)-1] {
							// Killed after its last step, the pod was
							// made whole: gc must leave it running.
							if st := e.inspect(name).Status; st != "running" {
								t.Errorf("complete pod %s after gc", st)
							}
							e.must("rm", name)
						}
					}
					checkNoLeaks(t, e.root, e.names, e.pids)
					checkNoNetworkLeaks(t, e.root, e.bridge, e.names)
					e.must(append(append([]string{"create"}, args...), name)...)
					e.must("rm", name)
				})
			}
		}
	}
}

// After a reboot the state remains but the PID is another process's:
// podsb reports the pod stopped and never signals that process.
func TestRebootReusedPID(t *testing.T) {
	e := newEnv(t)
	name, d := e.create()
	// An unrelated process, and the pod's state pointing at it as after a
	// reboot (another boot ID).
	other := exec.Command("sleep", "100")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { other.Process.Kill(); other.Wait() }()
	path := filepath.Join(e.root, name, "state.json")
	b, _ := os.ReadFile(path)
	s := strings.Replace(string(b), fmt.Sprintf(`"pid": %d`, d.Pid), fmt.Sprintf(`"pid": %d`, other.Process.Pid), 1)
	s = strings.Replace(s, d.BootID, "00000000-0000-0000-0000-000000000000", 1)
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	// The join record of exec's C part names the same boot.
	jpath := filepath.Join(e.root, name, "join")
	j, err := os.ReadFile(jpath)
	if err != nil || !bytes.Contains(j, []byte(d.BootID)) {
		t.Fatalf("join record: %v", err)
	}
	j = bytes.Replace(j, []byte(d.BootID), []byte("00000000-0000-0000-0000-000000000000"), 1)
	if err := os.WriteFile(jpath, j, 0o600); err != nil {
		t.Fatal(err)
	}
	if st := e.inspect(name).Status; st != "stopped" {
		t.Errorf("status %s, want stopped", st)
	}
	wantFailure(t, e.run("exec", name, "--", "true"), "is not running")
	e.must("rm", name)
	if other.ProcessState != nil || unix.Kill(other.Process.Pid, 0) != nil {
		t.Fatalf("the unrelated process was signalled")
	}
	// The real pause of that pod still runs (as after a reboot it would
	// not); end it ourselves, by PID.
	unix.Kill(d.Pid, unix.SIGKILL)
	waitDead(d.Pid, d.StartTime, 2*time.Second)
	delete(e.pids, d.Pid)
}

// 50 creates, 50 removes and 200 execs at once: every call succeeds or
// fails cleanly, and nothing leaks.
func TestConcurrencyMix(t *testing.T) {
	e := newEnv(t)
	var existing []string
	for range 50 {
		n, _ := e.create()
		existing = append(existing, n)
	}
	fresh := make([]string, 50)
	for i := range fresh {
		fresh[i] = e.name()
	}
	var wg sync.WaitGroup
	errs := make(chan string, 300)
	run := func(args ...string) {
		defer wg.Done()
		r := e.run(args...)
		// An exec into a pod being removed fails cleanly (125), or its
		// command is killed with the pod (128+9).
		killed := args[0] == "exec" && r.code == 128+9
		if r.code != 0 && !killed && (r.code != 125 || strings.Count(r.stderr, "\n") != 1) {
			errs <- fmt.Sprintf("%v: %+v", args, r)
		}
	}
	for i := range 50 {
		wg.Add(2)
		go run("create", fresh[i])
		go run("rm", existing[i])
	}
	for i := range 200 {
		wg.Add(1)
		// Execs into pods being removed may fail, cleanly.
		go run("exec", existing[i%50], "--", "true")
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, n := range fresh {
		if d := e.inspect(n); d.Status != "running" {
			t.Errorf("%s: %s", n, d.Status)
		}
	}
	for _, n := range existing {
		if _, err := os.Stat(filepath.Join(e.root, n)); err == nil {
			t.Errorf("%s not removed", n)
		}
	}
}

// A pod whose pause was killed shows stopped, refuses exec clearly, and
// start brings it back in its network, IPC and UTS namespaces with a fresh
// PID namespace: same address, same published port, same hostname.
func TestStartAfterPauseKilled(t *testing.T) {
	e, nargs := netEnv(t)
	port := 20000 + rand.IntN(20000)
	name, d := e.create(append(nargs, "--hostname", "keepme", "-p", fmt.Sprintf("%d:80", port))...)
	ip := e.podIP(name)
	oldPid := nsIno(t, filepath.Join(e.root, name, "ns", "pid"))
	oldNet := nsIno(t, filepath.Join(e.root, name, "ns", "net"))
	wantFailure(t, e.run("start", name), "pod is running")
	killPause(t, d)
	if st := e.inspect(name).Status; st != "stopped" {
		t.Fatalf("status %s after pause died", st)
	}
	wantFailure(t, e.run("exec", name, "--", "true"), "is not running")
	e.must("start", name)
	d2 := e.inspect(name)
	if d2.Status != "running" || d2.Pid == d.Pid || e.podIP(name) != ip {
		t.Fatalf("after start: %+v", d2.State)
	}
	if nsIno(t, filepath.Join(e.root, name, "ns", "net")) != oldNet || nsIno(t, filepath.Join(e.root, name, "ns", "pid")) == oldPid {
		t.Errorf("namespaces: the network one must stay, the PID one be new")
	}
	if out := e.must("exec", name, "--", "sh", "-c", "hostname; cat /proc/1/comm"); out != "keepme\npause\n" {
		t.Errorf("in the restarted pod: %q", out)
	}
	e.pyServer(name, "tcp", 80)
	if got := dial(t, "tcp", fmt.Sprintf("127.0.0.1:%d", port)); got != "hello from "+name {
		t.Errorf("published port after start: %q", got)
	}
	wantFailure(t, e.run("start", "nosuchpod"), "no such pod")
}
