package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The CRI server out of processes (a pids cgroup's pids.max on
// podsb-cri): RunPodSandbox is refused with ResourceExhausted and a clear
// message before anything is made, rather than the server aborting for
// want of a thread; the pods made before keep working, and once there is
// room again a pod is made.
func TestCRIOutOfPIDs(t *testing.T) {
	c := newCRIEnv(t)
	dir := t.TempDir()
	podJSON := func(name string) string {
		p := filepath.Join(dir, name+".json")
		os.WriteFile(p, []byte(fmt.Sprintf(`{"metadata": {"name": %q, "namespace": "default", "uid": "u-%s"}, "linux": {}}`, name, name)), 0o644)
		return p
	}
	before := strings.TrimSpace(c.crictlMust("runp", podJSON("before")))
	c.use(before)
	cg := pidsCgroup(t)
	pid := strconv.Itoa(c.srv.Process.Pid) // podsb cri executes podsb-cri
	parent := filepath.Join(filepath.Dir(cg), "cgroup.procs")
	if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(pid), 0o644); err != nil {
		t.Fatal(err)
	}
	moveBack := func() {
		if err := os.WriteFile(parent, []byte(pid), 0o644); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(moveBack) // before the cgroup's removal
	b, err := os.ReadFile(filepath.Join(cg, "pids.current"))
	if err != nil {
		t.Fatal(err)
	}
	inUse, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	// Room for fewer tasks than a pod's init and the threads that make
	// it (sandbox.CheckTasks asks 4 of a server).
	max := inUse + 3
	if err := os.WriteFile(filepath.Join(cg, "pids.max"), []byte(strconv.Itoa(max)), 0o644); err != nil {
		t.Fatal(err)
	}
	r := c.crictlRun("runp", podJSON("refused"))
	want := "code = ResourceExhausted desc = run pod sandbox refused: create "
	why := fmt.Sprintf(": out of processes: pids cgroup %s allows %d (pids.max)", cg, max)
	if r.code == 0 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, why) {
		t.Errorf("runp with pids.max %d: exit %d, %q; want %q...%q", max, r.code, r.stderr, want, why)
	}
	if out := strings.Fields(c.crictlMust("pods", "-q")); len(out) != 1 || out[0] != before {
		t.Errorf("crictl pods after a refused runp: %q, want %s alone", out, before)
	}
	if st := c.inspectp(before).Status.State; st != "SANDBOX_READY" {
		t.Errorf("pod made before: %s", st)
	}
	moveBack()
	after := strings.TrimSpace(c.crictlMust("runp", podJSON("after")))
	c.use(after)
	for _, id := range []string{before, after} {
		c.crictlMust("stopp", id)
		c.crictlMust("rmp", id)
	}
}
