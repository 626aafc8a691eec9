package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
		want := fmt.Sprintf("podsb: create %s: subnet %s: no free address", name, subnet)
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

// filesNeeded returns the limit of open files podsb's command cmd needs,
// started with stdin, stdout and stderr open: its own (create, start, run,
// exec: sandbox.OpenFilesNeeded besides the descriptors open when podsb
// starts, which include the Go runtime's), as podsb says when it refuses
// it under every command's 16; or those 16.
func (e *env) filesNeeded(t *testing.T, cmd string) int {
	t.Helper()
	own := int(sandbox.OpenFilesNeeded(cmd))
	if own == 0 {
		return 16
	}
	r := e.runCmd(exec.Command("prlimit", "--nofile=16", "--", e.bin, "--root", e.root, cmd))
	var n int
	prefix := "podsb: the limit of open files (RLIMIT_NOFILE) is 16: podsb " + cmd + " needs at least "
	if !strings.HasPrefix(r.stderr, prefix) {
		t.Fatalf("%s with 16 files: %q, want %q...", cmd, r.stderr, prefix)
	}
	if _, err := fmt.Sscanf(r.stderr[len(prefix):], "%d\n", &n); err != nil || n < own+3 || n > own+8 {
		t.Fatalf("%s with 16 files: %q: want %d and the few open at start", cmd, r.stderr, own)
	}
	return n
}

// filesRefused is the line podsb refuses cmd, which needs need, with
// under a limit of n open files. Below every command's 16 it is refused before podsb knows the command.
func filesRefused(cmd string, n, need int) string {
	what := "podsb"
	if n < 16 {
		need = 16
	} else if sandbox.OpenFilesNeeded(cmd) > 0 {
		what += " " + cmd
	}
	return fmt.Sprintf("podsb: the limit of open files (RLIMIT_NOFILE) is %d: %s needs at least %d\n", n, what, need)
}

// A low limit of open files (RLIMIT_NOFILE, set with prlimit on podsb
// alone): each command either works or fails with one line and leaves
// nothing half made; the pods already made keep working. A limit too low
// for the command (or for the Go runtime itself) is refused before
// anything is opened.
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
	need := map[string]int{}
	for _, c := range []string{"create", "exec", "run", "ps", "gc", "rm"} {
		need[c] = e.filesNeeded(t, c)
	}
	oneLine := func(r result, what string) {
		t.Helper()
		if r.code != 125 || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "podsb: ") {
			t.Errorf("%s: exit %d, %q: want 125 and one line", what, r.code, r.stderr)
		}
	}
	for _, n := range []int{3, 15, 16, 19, 20, 21, 27, 28, 35, 36} {
		name := e.name()
		r := limited(n, append(append([]string{"create"}, args...), name)...)
		if r.code == 0 {
			e.inspect(name)
			e.must("exec", name, "--", "true")
		} else {
			oneLine(r, fmt.Sprintf("create with %d files", n))
			// Refused below its need; out of files above it, a create
			// names the pod.
			if n < need["create"] {
				if want := filesRefused("create", n, need["create"]); r.stderr != want {
					t.Errorf("create with %d files: %q, want %q", n, r.stderr, want)
				}
			} else if prefix := "podsb: create " + name + ": "; !strings.HasPrefix(r.stderr, prefix) || !strings.Contains(r.stderr, "too many open files") {
				t.Errorf("create with %d files: %q: want %q...too many open files", n, r.stderr, prefix)
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
			// Refused below the command's need (exec's fast path, in C,
			// works with fewer); above it the pod is named, and not
			// taken for a directory podsb did not make.
			if n < need[c.args[0]] {
				if want := filesRefused(c.args[0], n, need[c.args[0]]); r.stderr != want {
					t.Errorf("%v with %d files: %q, want %q", c.args, n, r.stderr, want)
				}
			} else if want := "podsb: " + c.args[0] + " " + c.pod + ": "; c.pod != "" && !strings.HasPrefix(r.stderr, want) {
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
	// A start likewise: refused with one line and the pod left stopped,
	// or it works.
	stopped, d := e.create()
	killPause(t, d)
	if err := os.WriteFile(filepath.Join(cg, "pids.max"), []byte(strconv.Itoa(inUse+6)), 0o644); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`echo $$ > %s/cgroup.procs && exec "$@"`, cg)
	r := e.runCmd(exec.Command("sh", "-c", script, "sh", e.bin, "--root", e.root, "start", stopped))
	if r.code == 0 {
		limited = append(limited, stopped)
	} else {
		want := fmt.Sprintf("podsb: start %s: out of processes: pids cgroup %s allows %d (pids.max)", stopped, cg, inUse+6)
		if r.code != 125 || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, want) {
			t.Errorf("start with pids.max %d: exit %d, %q: want 125 and one line %q...", inUse+6, r.code, r.stderr, want)
		}
		if st := e.inspect(stopped).Status; st != "stopped" {
			t.Errorf("refused start left the pod %s", st)
		}
		e.must("start", stopped)
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

// Each of create, start, run and exec at the boundary of its need of open
// files (sandbox.OpenFilesNeeded), in its largest form measured (a pod
// with a user namespace of its own; exec -d, and exec in Go, not on its
// fast path): with one file fewer it is refused with one line before it
// makes anything; with the need it works. Files podsb inherits open count
// against it.
func TestOpenFilesBoundary(t *testing.T) {
	e := newEnv(t)
	pod, _ := e.create("--userns", "auto")
	limited := func(n int, env []string, extra []*os.File, a ...string) result {
		cmd := exec.Command("prlimit", append([]string{"--nofile=" + strconv.Itoa(n), "--", e.bin, "--root", e.root}, a...)...)
		cmd.Env = append(os.Environ(), env...)
		cmd.ExtraFiles = extra
		return e.runCmd(cmd)
	}
	logs := func() int {
		ents, _ := os.ReadDir(filepath.Join(e.root, pod, "logs"))
		return len(ents)
	}
	noFast := []string{"PODSB_FASTEXEC=0"}
	for _, c := range []struct {
		name string
		env  []string
		args func() []string // a fresh command line
		made func() int      // what it makes: pods, containers, logs
	}{
		{"create", nil, func() []string { return []string{"create", "--network", "none", "--userns", "auto", e.name()} },
			func() int { return len(e.podList(t)) }},
		{"start", nil, func() []string {
			n, d := e.create("--userns", "auto")
			killPause(t, d)
			return []string{"start", n}
		}, func() int { return e.running(t) }},
		{"run", nil, func() []string { return []string{"run", "-d", pod, "--", "true"} },
			func() int { return len(e.containers(t)) }},
		{"exec", noFast, func() []string { return []string{"exec", "-d", pod, "--", "true"} }, logs},
		{"exec", noFast, func() []string { return []string{"exec", pod, "--", "true"} }, logs},
	} {
		need := e.filesNeeded(t, c.name)
		a := c.args()
		before := c.made()
		r := limited(need-1, c.env, nil, a...)
		if want := filesRefused(c.name, need-1, need); r.code != 125 || r.stderr != want {
			t.Errorf("%v with %d files: exit %d, %q; want 125, %q", a, need-1, r.code, r.stderr, want)
		}
		if after := c.made(); after != before {
			t.Errorf("%v with %d files, refused, made something: %d, was %d", a, need-1, after, before)
		}
		// One inherited file more: refused at the need, saying why.
		f, err := os.Open("/dev/null")
		if err != nil {
			t.Fatal(err)
		}
		r = limited(need, c.env, []*os.File{f}, a...)
		f.Close()
		if want := filesRefused(c.name, need, need+1); r.code != 125 || r.stderr != want {
			t.Errorf("%v with %d files and one inherited: exit %d, %q; want 125, %q", a, need, r.code, r.stderr, filesRefused(c.name, need, need+1))
		}
		if r := limited(need, c.env, nil, a...); r.code != 0 {
			t.Errorf("%v with %d files: exit %d, %q; want it to work", a, need, r.code, r.stderr)
		}
	}
	e.must("exec", pod, "--", "true")
	if out := e.must("gc"); out != "" {
		t.Errorf("gc removed %q", out)
	}
}

// podList returns the pods of the env's root, as ps lists them.
func (e *env) podList(t *testing.T) []psRow {
	t.Helper()
	var docs []psRow
	if err := json.Unmarshal([]byte(e.must("ps", "--format", "json")), &docs); err != nil {
		t.Fatal(err)
	}
	return docs
}

type psRow struct {
	Name   string `json:"name"`
	Status string `json:"status"`
}

// running counts the running pods of the env's root.
func (e *env) running(t *testing.T) int {
	n := 0
	for _, d := range e.podList(t) {
		if d.Status == "running" {
			n++
		}
	}
	return n
}

// A failure of the system in an operation on a pod is one line that
// names the operation and the pod once (sandbox.Error), with the exit
// status of before: out of processes in the pod (its pids limit), its
// init failing, a container's start failing, the address pool full
// (TestFullAddressPool).
func TestSystemErrorMessages(t *testing.T) {
	e := newEnv(t)
	tight, _ := e.create("--pids-limit", "1")
	pod, _ := e.create()
	bad := e.name()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"exec", "-d", tight, "--", "true"}, "podsb: exec " + tight + ": fork: resource temporarily unavailable\n"},
		{[]string{"create", "--sysctl", "net.ipv4.nosuch=1", bad}, "podsb: create " + bad + ": pod init: write /proc/sys/net/ipv4/nosuch: no such file or directory\n"},
		{[]string{"run", "--name", "c1", "-w", "/nonexistent", pod, "--", "true"}, "podsb: run " + pod + ": container c1: chdir /nonexistent: no such file or directory\n"},
	} {
		r := e.run(c.args...)
		if r.code != 125 || r.stderr != c.want {
			t.Errorf("%v: exit %d, %q; want 125, %q", c.args, r.code, r.stderr, c.want)
		}
	}
	checkPodGone(t, e, bad, nil)
	e.must("exec", tight, "--", "true")
	e.must("exec", pod, "--", "true")
}
