package integration

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/podsb/podsb/sandbox"
)

// runSteps are the steps of a container's start (sandbox's containerStart,
// ContainerConfig.Trace) after which TestRunKilledAnywhere kills podsb run.
var runSteps = []string{
	"container directory", "root, user, environment", "pod devices", "program, stdio",
	"fork init", "cgroup", "init: mounts, pivot_root", "pin mount namespace",
	"exit record", "first state write", "go-ahead, exec", "final state write",
}

// podProcs returns the host PIDs of the processes in the pod's PID
// namespace other than pause, with their names.
func podProcs(t *testing.T, root, pod string, pause int) map[int]string {
	t.Helper()
	ino := nsIno(t, filepath.Join(root, pod, "ns", "pid"))
	out := map[int]string{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == pause {
			continue
		}
		if l, err := os.Readlink("/proc/" + e.Name() + "/ns/pid"); err != nil || l != fmt.Sprintf("pid:[%d]", ino) {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
		if s := string(b); strings.Contains(s, ") Z ") || s == "" {
			continue
		}
		comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
		out[pid] = strings.TrimSpace(string(comm))
	}
	return out
}

type containerRow struct {
	Pod string `json:"pod"`
	sandbox.ContainerState
}

func (e *env) containers(t *testing.T) map[string]containerRow {
	t.Helper()
	var rows []containerRow
	if err := json.Unmarshal([]byte(e.must("ps", "-a", "--containers", "--format", "json")), &rows); err != nil {
		t.Fatal(err)
	}
	out := map[string]containerRow{}
	for _, r := range rows {
		out[r.Name] = r
	}
	return out
}

// A run killed with SIGKILL after any step of the container's start
// leaves either a running container whose record names its process (kill
// and exec --container reach it), or nothing: no process in the pod, no
// container listed, and, once gc ran or the name was run again, no
// directory, pinned mount namespace, mount or log.
func TestRunKilledAnywhere(t *testing.T) {
	for _, detach := range []bool{true, false} {
		for _, step := range runSteps {
			for _, cleanup := range []string{"gc", "run again"} {
				t.Run(fmt.Sprintf("detach=%v/%s/%s", detach, step, cleanup), func(t *testing.T) {
					e := newEnv(t)
					pod, d := e.create()
					args := []string{"run", "--name", "c1"}
					if detach {
						args = append(args, "-d")
					}
					e.killAt(t, step, append(args, pod, "--", "sleep", "1000")...)
					// What waits for podsb sees it gone and exits; an
					// attached command dies with it (PR_SET_PDEATHSIG).
					var procs map[int]string
					deadline := time.Now().Add(3 * time.Second)
					for {
						procs = podProcs(t, e.root, pod, d.Pid)
						settled := true
						for _, comm := range procs {
							settled = settled && comm == "sleep" && detach
						}
						if settled || time.Now().After(deadline) {
							break
						}
						time.Sleep(10 * time.Millisecond)
					}
					row, listed := e.containers(t)["c1"]
					if len(procs) > 0 {
						// Running: recorded, and reachable by name.
						if len(procs) != 1 || !listed || row.Status != "running" || procs[row.Pid] != "sleep" {
							t.Fatalf("processes %v in the pod; c1 listed %v as %+v", procs, listed, row)
						}
						if out := e.must("exec", "--container", "c1", pod, "--", "cat", "/proc/1/comm"); out != "pause\n" {
							t.Errorf("exec --container: %q", out)
						}
						e.must("kill", pod, "c1", "KILL")
						if err := waitDead(row.Pid, row.StartTime, 3*time.Second); err != nil {
							t.Fatal("c1 survived kill")
						}
						// Its exit is recorded, though the run died. (Killed
						// before its record said running, it is taken for a
						// dead start once dead, and no longer listed.)
						if row, ok := e.containers(t)["c1"]; detach && ok && (row.Exit == nil || row.Exit.Code != 137) {
							t.Errorf("c1 killed: exit %+v, want 137", row.Exit)
						}
						return
					}
					if listed && !(row.Status == "stopped" && !detach && step == "final state write") {
						// Only an attached command that ran and died with
						// podsb leaves a record: stopped, as any that ran.
						t.Fatalf("no process in the pod, but c1 listed as %+v", row)
					}
					if listed {
						return
					}
					wantFailure(t, e.run("kill", pod, "c1"), "no such container")
					if cleanup == "gc" {
						e.must("gc")
					} else {
						e.must("run", "-d", "--name", "c1", pod, "--", "true")
					}
					cdir := filepath.Join(e.root, pod, "containers", "c1")
					if m := mountsUnder(t, cdir); len(m) > 0 {
						t.Errorf("mounts left: %v", m)
					}
					if cleanup == "gc" {
						for _, p := range []string{cdir, filepath.Join(e.root, pod, "ns", "mnt-c1"), filepath.Join(e.root, pod, "logs", "c1.log")} {
							if _, err := os.Lstat(p); err == nil {
								t.Errorf("%s left after gc", p)
							}
						}
						if ents, _ := os.ReadDir(filepath.Join(e.root, pod, "exits")); len(ents) > 0 {
							t.Errorf("exits/ holds %v after gc", ents)
						}
						e.must("run", "-d", "--name", "c1", pod, "--", "true")
					}
				})
			}
		}
	}
}

// An rm killed after any of its steps before the last leaves a stopped
// pod; start brings it back on the bridge as its state says: eth0 with its
// address, reachable from the host at that address and at its published
// port.
func TestStartAfterKilledRm(t *testing.T) {
	for _, step := range []string{"stop pause", "release network", "remove cgroup"} {
		t.Run(step, func(t *testing.T) {
			e, nargs := netEnv(t)
			port := 20000 + rand.IntN(20000)
			name, _ := e.create(append(nargs, "-p", fmt.Sprintf("%d:80", port))...)
			ip := e.podIP(name)
			e.killAt(t, step, "rm", "-f", name)
			if st := e.inspect(name).Status; st != "stopped" {
				t.Fatalf("after rm killed: %s", st)
			}
			e.must("start", name)
			if d := e.inspect(name); d.Status != "running" || e.podIP(name) != ip {
				t.Fatalf("after start: %s, %s", d.Status, e.podIP(name))
			}
			// The pod's own view: eth0 up with its address.
			if out := e.must("exec", name, "--", "cat", "/proc/net/fib_trie"); !strings.Contains(out, ip) {
				t.Errorf("the pod has not its address %s:\n%s", ip, out)
			}
			// Traffic to the pod's address only through the test's bridge,
			// never out of the host.
			if out, err := exec.Command("ip", "route", "get", ip).CombinedOutput(); err != nil || !strings.Contains(string(out), "dev "+e.bridge+" ") {
				t.Fatalf("the route to %s is not the bridge %s: %s", ip, e.bridge, out)
			}
			e.pyServer(name, "tcp", 80)
			if got := dial(t, "tcp", ip+":80"); got != "hello from "+name {
				t.Errorf("pod at %s:80 from the host: %q", ip, got)
			}
			if got := dial(t, "tcp", fmt.Sprintf("127.0.0.1:%d", port)); got != "hello from "+name {
				t.Errorf("published port after start: %q", got)
			}
			e.must("rm", "-f", name)
		})
	}
}

// execSteps are the steps of a detached exec's start (ExecConfig.Trace).
var execSteps = []string{"log file", "fork spawner", "spawn", "log named by PID"}

// An exec -d killed after any step of its start leaves either its command
// running with its log named by its PID (podsb logs reaches it), or no
// process, and after gc no log but, killed just before the go-ahead, an
// empty one named by the PID the command would have had.
func TestExecDetachKilledAnywhere(t *testing.T) {
	for _, step := range execSteps {
		t.Run(step, func(t *testing.T) {
			e := newEnv(t)
			pod, d := e.create()
			e.killAt(t, step, "exec", "-d", pod, "--", "sleep", "1000")
			var procs map[int]string
			deadline := time.Now().Add(3 * time.Second)
			for {
				procs = podProcs(t, e.root, pod, d.Pid)
				settled := true
				for _, comm := range procs {
					settled = settled && comm == "sleep"
				}
				if settled || time.Now().After(deadline) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			logs := filepath.Join(e.root, pod, "logs")
			if len(procs) > 0 {
				for pid := range procs {
					b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
					var podPID string
					for _, l := range strings.Split(string(b), "\n") {
						if f := strings.Fields(l); len(f) > 0 && f[0] == "NSpid:" {
							podPID = f[len(f)-1]
						}
					}
					if _, err := os.Stat(filepath.Join(logs, podPID+".log")); err != nil || len(procs) != 1 {
						t.Fatalf("processes %v in the pod; the log of %s: %v", procs, podPID, err)
					}
					e.must("logs", pod, podPID)
				}
				return
			}
			e.must("gc")
			ents, _ := os.ReadDir(logs)
			for _, en := range ents {
				// Killed once the log had its PID's name, before the
				// go-ahead: that empty log stays, as any command's.
				if fi, err := en.Info(); step == "log named by PID" && err == nil && fi.Size() == 0 && strings.HasSuffix(en.Name(), ".log") {
					continue
				}
				t.Errorf("left in logs/: %s", en.Name())
			}
		})
	}
}

// Runs of one name at once, over what a dead start of that name left: one
// wins, the others say already exists; none removes another's container.
func TestRunSameNameConcurrently(t *testing.T) {
	e := newEnv(t)
	pod, _ := e.create()
	e.killAt(t, "first state write", "run", "-d", "--name", "c1", pod, "--", "sleep", "1000")
	results := make(chan result, 8)
	for range 8 {
		go func() { results <- e.run("run", "-d", "--name", "c1", pod, "--", "sleep", "1000") }()
	}
	won := 0
	for range 8 {
		r := <-results
		switch {
		case r.code == 0:
			won++
		case r.code != 125 || !strings.Contains(r.stderr, "already exists"):
			t.Errorf("run: exit %d: %q", r.code, r.stderr)
		}
	}
	c, ok := e.containers(t)["c1"]
	if won != 1 || !ok || c.Status != "running" {
		t.Fatalf("%d runs won; c1 %+v", won, c)
	}
	e.must("kill", pod, "c1", "KILL")
}
