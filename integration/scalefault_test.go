package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
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

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/sandbox"
)

// Faults at scale (issue 16): a run of creates killed at random points, a
// full address pool and a low limit of open files. Each leaves the pods
// already made working, and nothing that gc or rm -f --all cannot remove.

// killedCreate runs podsb create NAME with args, SIGKILLs it after delay
// unless it has finished, and returns whether it finished on its own. The
// processes podsb had started (a pause) are remembered for the leak checks.
func (e *env) killedCreate(t *testing.T, name string, delay time.Duration, args ...string) (done bool, err error) {
	cmd := exec.Command(e.bin, append(append([]string{"--root", e.root, "create"}, args...), name)...)
	if err := cmd.Start(); err != nil {
		return false, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			return false, fmt.Errorf("create %s: %v", name, err)
		}
		return true, nil
	case <-time.After(delay):
	}
	kids := childrenOf(cmd.Process.Pid)
	cmd.Process.Signal(unix.SIGKILL)
	err = <-exited
	e.mu.Lock()
	for pid, st := range kids {
		e.pids[pid] = st
	}
	e.mu.Unlock()
	return err == nil, nil
}

// nftPodRules returns the pod names that tag rules of the bridge's table.
func nftPodRules(t *testing.T, bridge string) map[string]bool {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	tb := &nftables.Table{Name: "podsb_" + bridge, Family: nftables.TableFamilyIPv4}
	for _, ch := range []string{"prerouting", "output"} {
		rules, _ := c.GetRules(tb, &nftables.Chain{Name: ch, Table: tb})
		for _, r := range rules {
			if len(r.UserData) > 0 {
				out[string(r.UserData)] = true
			}
		}
	}
	return out
}

// checkPodGone fails t if anything of pod name is left: its state, its
// /run/netns entry, its veth, its lease or its NAT rules.
func checkPodGone(t *testing.T, e *env, name string, rules map[string]bool) {
	t.Helper()
	if _, err := os.Lstat(filepath.Join(e.root, name)); err == nil {
		t.Errorf("%s: state left", name)
	}
	if _, err := os.Lstat(filepath.Join(sandbox.NetNSDir, name)); err == nil {
		t.Errorf("%s: %s entry left", name, sandbox.NetNSDir)
	}
	if _, err := netlink.LinkByName(vethOf(e.root, name)); err == nil {
		t.Errorf("%s: veth %s left", name, vethOf(e.root, name))
	}
	leases, _ := os.ReadDir(filepath.Join(e.root, ".network", "leases"))
	for _, l := range leases {
		if b, _ := os.ReadFile(filepath.Join(e.root, ".network", "leases", l.Name())); string(b) == name {
			t.Errorf("%s: lease %s left", name, l.Name())
		}
	}
	if rules[name] {
		t.Errorf("%s: NAT rules left", name)
	}
}

// Creates of the real binary, two at a time, each SIGKILLed after a random
// delay (some finish first): gc keeps every pod that was made whole and
// working, and removes everything of the others; a second run of killed
// creates is cleaned by rm -f --all alone. Every third pod publishes a
// port, so NAT rules are made and killed half-way too.
func TestCreatesKilledAtRandom(t *testing.T) {
	e, args := netEnv(t)
	// One whole create first: it makes the bridge, and its time sets the
	// range of the delays (the root's template is made by the second).
	t0 := time.Now()
	first := e.name()
	e.must(append(append([]string{"create"}, args...), first)...)
	span := 2 * time.Since(t0)
	var port int
	round := func(k int) (made, killed []string) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for w := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range k {
					name := e.name()
					a := args
					if (w+i)%3 == 0 {
						mu.Lock()
						port++
						a = append(append([]string{}, args...), "-p", fmt.Sprintf("127.0.0.1:%d:80", 23000+rand.IntN(2000)*2+port%2))
						mu.Unlock()
					}
					done, err := e.killedCreate(t, name, time.Duration(rand.Int64N(int64(span))), a...)
					mu.Lock()
					switch {
					case err != nil && strings.Contains(err.Error(), "exit status 125"):
						// A port taken by another pod: refused cleanly.
						killed = append(killed, name)
					case err != nil:
						t.Error(err)
					case done:
						made = append(made, name)
					default:
						killed = append(killed, name)
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return made, killed
	}

	made, killed := round(12)
	t.Logf("round 1: %d made whole, %d killed", len(made), len(killed))
	e.must("gc")
	rules := nftPodRules(t, e.bridge)
	for _, n := range append(made, first) {
		if d := e.inspect(n); d.Status != "running" {
			t.Errorf("%s: %s after gc", n, d.Status)
			continue
		}
		e.must("exec", n, "--", "true")
	}
	for _, n := range killed {
		// A create killed after its last step made a whole pod, which gc
		// leaves; anything less gc removes.
		if r := e.run("inspect", n); r.code == 0 {
			if d := e.inspect(n); d.Status == "running" {
				e.must("exec", n, "--", "true")
				continue
			}
			t.Errorf("%s: left after gc: %s", n, r.stdout)
			continue
		}
		checkPodGone(t, e, n, rules)
	}
	// The pods gc kept still reach each other.
	if len(made) > 0 {
		e.must("exec", made[0], "--", "ping", "-c1", "-W2", e.podIP(first))
	}

	made2, killed2 := round(8)
	t.Logf("round 2: %d made whole, %d killed", len(made2), len(killed2))
	for _, n := range append(append(append(made, made2...), killed...), killed2...) {
		if r := e.run("inspect", n); r.code == 0 {
			e.inspect(n) // remember its pause for the leak checks
		}
	}
	e.must("rm", "-f", "--all")
	checkNoLeaks(t, e.root, e.names, e.pids)
	checkNoNetworkLeaks(t, e.root, e.bridge, e.names)
	if left := nftPodRules(t, e.bridge); len(left) > 0 {
		t.Errorf("NAT rules left: %v", left)
	}
}

// vethOf is the host end of a pod's veth pair.
func vethOf(root, name string) string {
	sum := sha256.Sum256([]byte(root + "\x00" + name))
	return "pv" + hex.EncodeToString(sum[:])[:12]
}

// A full address pool: the create that finds no address fails with one
// clear line and leaves nothing; the pods that hold the pool keep
// working, and a freed address is taken again.
func TestFullAddressPool(t *testing.T) {
	e := newEnv(t)
	e.bridge = fmt.Sprintf("pt%06x", rand.IntN(1<<24))
	subnet := fmt.Sprintf("10.%d.%d.0/29", 200+rand.IntN(50), rand.IntN(256)) // 5 pod addresses
	args := []string{"--network", "bridge", "--bridge", e.bridge, "--subnet", subnet}
	var pods []string
	for range 5 {
		n, _ := e.create(args...)
		pods = append(pods, n)
	}
	for range 2 {
		name := e.name()
		r := e.run(append(append([]string{"create"}, args...), name)...)
		want := fmt.Sprintf("podsb: subnet %s: no free address", subnet)
		if r.code != 125 || strings.TrimSpace(r.stderr) != want {
			t.Fatalf("create in a full pool: exit %d, %q; want 125, %q", r.code, r.stderr, want)
		}
		checkPodGone(t, e, name, nftPodRules(t, e.bridge))
	}
	for _, n := range pods {
		e.must("exec", n, "--", "ping", "-c1", "-W2", e.podIP(pods[0]))
	}
	ip := e.podIP(pods[2])
	e.must("rm", pods[2])
	n, _ := e.create(args...)
	if got := e.podIP(n); got != ip {
		t.Errorf("new pod has %s, want the freed %s", got, ip)
	}
}

// A low limit of open files (RLIMIT_NOFILE, set with prlimit on podsb
// alone): each command either works or fails with one line and leaves
// nothing half made; the pods already made keep working. A limit too low
// for the Go runtime itself is refused before anything is opened.
func TestOutOfFiles(t *testing.T) {
	e, args := netEnv(t)
	var pods []string
	for range 3 {
		n, _ := e.create(args...)
		pods = append(pods, n)
	}
	limited := func(n int, a ...string) result {
		return e.runCmd(exec.Command("prlimit", append([]string{"--nofile=" + strconv.Itoa(n), "--", e.bin, "--root", e.root}, a...)...))
	}
	oneLine := func(r result, what string) {
		t.Helper()
		if r.code != 125 || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "podsb: ") {
			t.Errorf("%s: exit %d, %q: want 125 and one line", what, r.code, r.stderr)
		}
	}
	for _, n := range []int{3, 5, 15, 16, 17, 18, 20, 22, 24, 26, 28} {
		name := e.name()
		r := limited(n, append(append([]string{"create"}, args...), name)...)
		if r.code == 0 {
			e.inspect(name)
			e.must("exec", name, "--", "true")
		} else {
			oneLine(r, fmt.Sprintf("create with %d files", n))
			// Out of files, a create names the pod.
			prefix, why := "podsb: create "+name+": ", "too many open files"
			if n < 16 {
				prefix, why = "podsb: ", fmt.Sprintf("the limit of open files (RLIMIT_NOFILE) is %d: podsb needs at least 16", n)
			}
			if !strings.HasPrefix(r.stderr, prefix) || !strings.Contains(r.stderr, why) {
				t.Errorf("create with %d files: %q: want %q...%q", n, r.stderr, prefix, why)
			}
			checkPodGone(t, e, name, nftPodRules(t, e.bridge))
		}
		// A run may leave its container (exited), removed with the pod.
		for _, c := range []struct {
			pod  string // named in a failure out of files
			args []string
		}{
			{pods[0], []string{"exec", pods[0], "--", "true"}},
			{pods[2], []string{"run", pods[2], "--", "true"}},
			{"", []string{"ps"}},
			{"", []string{"gc"}},
			{pods[1], []string{"rm", "-f", pods[1]}},
		} {
			r := limited(n, c.args...)
			if r.code == 0 {
				continue
			}
			oneLine(r, fmt.Sprintf("%v with %d files", c.args, n))
			// The pod is named, and not taken for a directory podsb
			// did not make.
			if want := "podsb: " + c.args[0] + " " + c.pod + ": "; c.pod != "" && n >= 16 && !strings.HasPrefix(r.stderr, want) {
				t.Errorf("%v with %d files: %q does not start with %q", c.args, n, r.stderr, want)
			}
		}
		if r := e.run("inspect", pods[1]); r.code == 0 {
			e.inspect(pods[1])
		} else {
			// Removed with the low limit: make it again.
			pods[1], _ = e.create(args...)
		}
		for _, p := range pods {
			e.must("exec", p, "--", "ping", "-c1", "-W2", e.podIP(pods[0]))
		}
	}
}

// rm of several bridged pods deletes their veth pairs in one request at
// the end (a device group): nothing is left when it returns. Killed at a
// step or at a random point, what it left (veths in the group, leases of
// pods already gone) is removed by gc or by rm -f --all (even with no pod
// left to remove), and new pods work.
func TestRmAllBatch(t *testing.T) {
	for _, cleanup := range []string{"whole", "step/gc", "step/rm", "batch/gc", "batch/rm", "random/gc", "random/rm"} {
		t.Run(cleanup, func(t *testing.T) {
			e, args := netEnv(t)
			var pods []string
			for i := range 6 {
				a := args
				if i == 2 {
					a = append(append([]string{}, args...), "-p", fmt.Sprintf("127.0.0.1:%d:80", 25000+rand.IntN(5000)))
				}
				n, _ := e.create(a...)
				pods = append(pods, n)
			}
			kept, _ := e.create(args...) // not named to the rm under test
			switch {
			case cleanup == "whole":
				t0 := time.Now()
				if out := e.must(append([]string{"rm"}, pods...)...); strings.Count(out, "\n") != len(pods) {
					t.Errorf("rm printed %q", out)
				}
				t.Logf("rm of %d bridged pods: %v", len(pods), time.Since(t0))
			case strings.HasPrefix(cleanup, "step"):
				e.killAt(t, "release network", append([]string{"rm"}, pods...)...)
			case strings.HasPrefix(cleanup, "batch"):
				// Every pod removed, the batch not yet deleted.
				e.killAt(t, "remove: before the batch", append([]string{"rm"}, pods...)...)
			default:
				cmd := exec.Command(e.bin, append([]string{"--root", e.root, "rm"}, pods...)...)
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Duration(rand.IntN(60)) * time.Millisecond)
				cmd.Process.Signal(unix.SIGKILL)
				cmd.Wait()
			}
			if strings.HasSuffix(cleanup, "gc") {
				e.must("gc")
				for _, n := range pods {
					if r := e.run("inspect", n); r.code == 0 {
						e.must("rm", "-f", n) // not reached by the killed rm
					}
				}
			} else if strings.HasSuffix(cleanup, "rm") {
				// Even when the killed rm had removed every pod but
				// not yet released their leases, rm -f --all does.
				e.must("rm", "-f", "--all")
				kept = ""
			}
			rules := nftPodRules(t, e.bridge)
			for _, n := range pods {
				checkPodGone(t, e, n, rules)
			}
			// The kept pod works, and new pods work and reach each other.
			if kept != "" {
				e.must("exec", kept, "--", "true")
			}
			var fresh []string
			for range pods {
				n, _ := e.create(args...)
				fresh = append(fresh, n)
			}
			for _, n := range fresh {
				e.must("exec", n, "--", "ping", "-c1", "-W2", e.podIP(fresh[0]))
			}
			e.must("rm", "-f", "--all")
			checkNoLeaks(t, e.root, e.names, e.pids)
			checkNoNetworkLeaks(t, e.root, e.bridge, e.names)
		})
	}
}

// pidsCgroup makes a pids cgroup of the test's own (v1's pids hierarchy,
// else the unified one) and returns its directory; Cleanup removes it.
func pidsCgroup(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("podsb-test-pids-%08x", rand.Uint32())
	for _, base := range []string{"/sys/fs/cgroup/pids", "/sys/fs/cgroup"} {
		dir := filepath.Join(base, name)
		if os.Mkdir(dir, 0o755) != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "pids.max")); err != nil {
			os.Remove(dir)
			continue
		}
		t.Cleanup(func() {
			// The pods made in it are removed first; their pause may
			// take a moment to leave.
			for range 50 {
				if os.Remove(dir) == nil || errors.Is(os.Remove(dir), os.ErrNotExist) {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Errorf("cgroup %s left", dir)
		})
		return dir
	}
	t.Fatal("no pids cgroup controller")
	return ""
}

// Out of processes (a pids cgroup's pids.max on podsb): a create either
// works, or is refused with one line before anything is made; the Go
// runtime never aborts for want of a thread (it cannot survive one it
// fails to start: a stack dump and a half-made pod). The pods already made
// keep working, and nothing is left for gc.
func TestOutOfPIDs(t *testing.T) {
	e := newEnv(t)
	var pods []string
	for range 2 {
		n, _ := e.create()
		pods = append(pods, n)
	}
	cg := pidsCgroup(t)
	var limited []string
	for _, max := range []int{5, 6, 8, 12, 16, 16, 16} {
		if err := os.WriteFile(filepath.Join(cg, "pids.max"), []byte(strconv.Itoa(max)), 0o644); err != nil {
			t.Fatal(err)
		}
		name := e.name()
		script := fmt.Sprintf(`echo $$ > %s/cgroup.procs && exec "$@"`, cg)
		r := e.runCmd(exec.Command("sh", "-c", script, "sh", e.bin, "--root", e.root, "create", "--network", "none", name))
		if r.code == 0 {
			e.inspect(name)
			limited = append(limited, name)
			continue
		}
		want := fmt.Sprintf("podsb: create %s: out of processes: pids cgroup %s allows %d (pids.max)", name, cg, max)
		if r.code != 125 || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, want) {
			t.Errorf("create with pids.max %d: exit %d, %q: want 125 and one line %q...", max, r.code, r.stderr, want)
		}
		checkPodGone(t, e, name, nil)
		for _, p := range pods {
			e.must("exec", p, "--", "true")
		}
	}
	if len(limited) == 0 {
		t.Error("no create worked in the cgroup, even with pids.max 16")
	}
	// A run and an exec in Go (-d) likewise (exec's fast path starts no
	// thread), given room for the Go runtime's own start (up to 5 tasks) above
	// the pods' pauses in the cgroup, or plenty.
	b, err := os.ReadFile(filepath.Join(cg, "pids.current"))
	if err != nil {
		t.Fatal(err)
	}
	inUse, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	for _, max := range []int{inUse + 6, inUse + 40} {
		if err := os.WriteFile(filepath.Join(cg, "pids.max"), []byte(strconv.Itoa(max)), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, c := range [][]string{{"run", pods[0], "--", "true"}, {"exec", "-d", pods[0], "--", "true"}} {
			script := fmt.Sprintf(`echo $$ > %s/cgroup.procs && exec "$@"`, cg)
			r := e.runCmd(exec.Command("sh", append([]string{"-c", script, "sh", e.bin, "--root", e.root}, c...)...))
			if r.code == 0 {
				continue
			}
			want := fmt.Sprintf("podsb: %s %s: out of processes: pids cgroup %s allows %d (pids.max)", c[0], pods[0], cg, max)
			if max > inUse+6 || r.code != 125 || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, want) {
				t.Errorf("%v with pids.max %d: exit %d, %q: want 125 and one line %q...", c, max, r.code, r.stderr, want)
			}
		}
	}
	// Nothing half-made: gc finds nothing to remove.
	if out := e.must("gc"); out != "" {
		t.Errorf("gc removed %q", out)
	}
	// The pods made in the cgroup hold its PIDs: remove them before it.
	for _, n := range limited {
		e.must("exec", n, "--", "true")
		e.must("rm", "-f", n)
	}
}

// Out of processes as a user other than root (RLIMIT_NPROC, which the
// kernel does not hold root to, counts every task of the user): a create
// either works or is refused with one line before anything is made,
// never a Go runtime abort; the pods made keep working.
func TestOutOfPIDsRootless(t *testing.T) {
	e := newRootlessEnv(t)
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Fatal(err)
	}
	var made []string
	for _, n := range []int{6, 8, 64} {
		name := e.name()
		c := e.cmd()
		c.Path, c.Args = prlimit, []string{"prlimit", fmt.Sprintf("--nproc=%d", n), "--", e.bin, "create", "--network", "none", name}
		r := runResult(t, c)
		if r.code == 0 {
			e.inspect(name)
			made = append(made, name)
			continue
		}
		want := fmt.Sprintf("podsb: create %s: out of processes: user %d may have %d (RLIMIT_NPROC)", name, rootlessUID, n)
		if r.code != 125 || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, want) {
			t.Errorf("create with RLIMIT_NPROC %d: exit %d, %q: want 125 and one line %q...", n, r.code, r.stderr, want)
		}
		if r := e.run("inspect", name); r.code == 0 {
			t.Errorf("create with RLIMIT_NPROC %d left %s", n, name)
		}
	}
	if len(made) == 0 {
		t.Error("no create worked, even with RLIMIT_NPROC 64")
	}
	for _, n := range made {
		e.must("exec", n, "--", "true")
	}
	if out := e.must("gc"); out != "" {
		t.Errorf("gc removed %q", out)
	}
}
