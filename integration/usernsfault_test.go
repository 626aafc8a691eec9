package integration

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/sandbox"
)

// killedStart runs podsb start of name and SIGKILLs it after delay, unless
// it ends first (then done, and its result). The start's children (the
// new init) are remembered for the leak checks.
func (e *env) killedStart(t *testing.T, name string, delay time.Duration) (done bool, r result) {
	t.Helper()
	cmd := exec.Command(e.bin, "--root", e.root, "start", name)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return true, result{out.String(), errb.String(), code}
	case <-time.After(delay):
	}
	kids := childrenOf(cmd.Process.Pid)
	cmd.Process.Signal(unix.SIGKILL)
	<-exited
	e.mu.Lock()
	for pid, st := range kids {
		e.pids[pid] = st
	}
	e.mu.Unlock()
	return false, result{}
}

// TestUserNSStartKilledAtRandom: podsb start of a stopped --userns auto
// pod (with an address, a published port, a volume, a hostname and a
// sysctl, as TestUserNSStart) SIGKILLed after a random delay (some finish
// first). Then, in turn: gc (which keeps a pod started whole, and removes
// one left half-made), rm -f, or a second start, which makes the pod run
// with its maps, address, hostname and range record as before (a pause
// that the killed start left half-made is replaced; before the fix the
// start said "pod is running"), or says it runs if the killed start had
// finished. Whatever is removed leaves nothing: no state, mount, process,
// range record, /run/netns entry, veth, lease or NAT rule. A start of a
// pod whose create was killed says so in one line.
func TestUserNSStartKilledAtRandom(t *testing.T) {
	e, net := netEnv(t)
	vol := t.TempDir()
	os.Chmod(vol, 0o777)
	args := append(net, "--userns", "auto", "--hostname", "h", "--sysctl", "net.ipv4.ip_unprivileged_port_start=80", "-v", vol+":/vol")
	stop := func(name string) {
		t.Helper()
		d := e.inspect(name)
		syscall.Kill(d.Pid, syscall.SIGKILL)
		if err := waitDead(d.Pid, d.StartTime, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// A whole start sets the range of the delays: most kills land in it.
	first, _ := e.create(args...)
	stop(first)
	t0 := time.Now()
	e.must("start", first)
	span := time.Since(t0) * 5 / 4
	e.must("rm", "-f", first)

	outcomes := map[string]int{}
	for i := range 18 {
		port := 24000 + rand.IntN(4000)
		name, d := e.create(append(args, "-p", fmt.Sprintf("127.0.0.1:%d:80", port))...)
		record := sandbox.UserNSRecord(e.root, name)
		rec, err := os.ReadFile(record)
		if err != nil {
			t.Fatal(err)
		}
		maps := e.must("exec", name, "--", "cat", "/proc/self/uid_map", "/proc/self/gid_map")
		stop(name)
		done, r := e.killedStart(t, name, time.Duration(rand.Int64N(int64(span))))
		if done && r.code != 0 {
			t.Fatalf("round %d: start %s (not killed): exit %d: %s", i, name, r.code, r.stderr)
		}
		status := "gone"
		if r := e.run("inspect", name); r.code == 0 {
			status = string(e.inspect(name).Status)
		}
		rules := func() map[string]bool { return nftPodRules(t, e.bridge) }
		switch i % 3 {
		case 0:
			e.must("gc")
			if r := e.run("inspect", name); r.code == 0 {
				if a := e.inspect(name); a.Status != "running" {
					t.Errorf("round %d: %s %s after gc (was %s)", i, name, a.Status, status)
				}
				outcomes["gc kept it running, left "+status]++
				checkUserNSPod(t, e, name, d, rec, maps)
				e.must("rm", "-f", name)
			} else {
				outcomes["gc removed it, left "+status]++
			}
		case 1:
			e.must("rm", "-f", name)
			outcomes["rm -f, left "+status]++
		case 2:
			r := e.run("start", name)
			switch {
			case r.code == 0:
				outcomes["started again, left "+status]++
				checkUserNSPod(t, e, name, d, rec, maps)
			case status == "running":
				// The killed start had finished.
				outcomes["was running, left "+status]++
				wantFailure(t, r, name+": pod is running")
				checkUserNSPod(t, e, name, d, rec, maps)
			default:
				t.Errorf("round %d: start after a start killed with the pod %s: exit %d: %s", i, status, r.code, r.stderr)
			}
			e.must("rm", "-f", name)
		}
		checkPodGone(t, e, name, rules())
		if _, err := os.Lstat(record); err == nil {
			t.Errorf("round %d: range record %s left", i, record)
		}
		if m := mountsUnder(t, filepath.Join(e.root, name)); len(m) > 0 {
			t.Errorf("round %d: mounts left %v", i, m)
		}
		e.mu.Lock()
		for pid, st := range e.pids {
			if waitDead(pid, st, 2*time.Second) != nil {
				b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
				c, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
				t.Errorf("round %d (pod %s, left %s): process %d left: %q %.200q", i, name, status, pid, c, b)
				delete(e.pids, pid)
			}
		}
		e.mu.Unlock()
	}
	t.Logf("outcomes: %v", outcomes)

	// A start killed after its pause was made, before its last state
	// write, as a record still creating with pause alive: start replaces
	// that pause and runs the pod whole.
	name, d := e.create(args...)
	rec, _ := os.ReadFile(sandbox.UserNSRecord(e.root, name))
	maps := e.must("exec", name, "--", "cat", "/proc/self/uid_map", "/proc/self/gid_map")
	path := filepath.Join(e.root, name, "state.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	st["status"] = "creating"
	forged, _ := json.Marshal(st)
	if err := os.WriteFile(path, forged, 0o600); err != nil {
		t.Fatal(err)
	}
	if st := e.inspect(name).Status; st != "creating" {
		t.Fatalf("forged record: %s", st)
	}
	e.must("start", name)
	if a := e.inspect(name); a.Pid == d.Pid || alive(d.Pid, d.StartTime) {
		t.Errorf("start of a half-started pod: pause %d, the old %d alive %v", a.Pid, d.Pid, alive(d.Pid, d.StartTime))
	}
	checkUserNSPod(t, e, name, d, rec, maps)
	e.must("rm", "-f", name)

	// A create killed before it finished made no whole pod: start says
	// so, and rm -f removes it, its range record too.
	for _, step := range []string{"first state write", "pin namespaces", "register with ip netns"} {
		name := e.name()
		e.killCreateAt(t, step, name, args...)
		wantFailure(t, e.run("start", name), "pod "+name+" was left half-made by a create that died: remove it (podsb rm -f)")
		e.must("rm", "-f", name)
		checkPodGone(t, e, name, nftPodRules(t, e.bridge))
		if _, err := os.Lstat(sandbox.UserNSRecord(e.root, name)); err == nil {
			t.Errorf("create killed after %s: range record left", step)
		}
	}
}

// checkUserNSPod checks that a restarted userns pod runs as it did: its
// maps from inside, its range record unchanged, an exec, a working
// address.
func checkUserNSPod(t *testing.T, e *env, name string, d inspectDoc, rec []byte, maps string) {
	t.Helper()
	a := e.inspect(name)
	if a.Status != "running" {
		t.Errorf("%s: %s", name, a.Status)
		return
	}
	if out := e.must("exec", name, "--", "cat", "/proc/self/uid_map", "/proc/self/gid_map"); out != maps {
		t.Errorf("%s: maps %q, want %q", name, out, maps)
	}
	if got, err := os.ReadFile(sandbox.UserNSRecord(e.root, name)); err != nil || string(got) != string(rec) {
		t.Errorf("%s: range record %q (%v), want %q", name, got, err, rec)
	}
	if a.Network == nil || d.Network == nil || a.Network.Addr != d.Network.Addr {
		t.Errorf("%s: network %+v, want %+v", name, a.Network, d.Network)
	}
	if out := strings.TrimSpace(e.must("exec", name, "--", "hostname")); out != "h" {
		t.Errorf("%s: hostname %q", name, out)
	}
}
