package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// cgroupDir returns the directory of a pod's cgroup in a v1 controller's
// hierarchy (this machine's layout; CI runs on the same).
func cgroupDir(t *testing.T, d inspectDoc, controller string) string {
	t.Helper()
	if d.Cgroup == "" {
		t.Fatalf("pod has no cgroup")
	}
	return filepath.Join("/sys/fs/cgroup", controller, d.Cgroup)
}

func readInt(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// Limits hold every process of the pod, exec's and run's included; a fork
// bomb in a pod with --pids-limit cannot go past it; rm removes the cgroup.
func TestResourceLimits(t *testing.T) {
	e := newEnv(t)
	pod, d := e.create("--pids-limit", "100", "--memory", "64m", "--cpus", "0.5")
	if got := readInt(t, filepath.Join(cgroupDir(t, d, "pids"), "pids.max")); got != 100 {
		t.Errorf("pids.max %d", got)
	}
	if got := readInt(t, filepath.Join(cgroupDir(t, d, "memory"), "memory.limit_in_bytes")); got != 64<<20 {
		t.Errorf("memory limit %d", got)
	}
	if got := readInt(t, filepath.Join(cgroupDir(t, d, "cpu"), "cpu.cfs_quota_us")); got != 50000 {
		t.Errorf("cpu quota %d", got)
	}
	// exec's process is in the pod's cgroup, run's in its container's,
	// below the pod's (so the pod's limits hold it too).
	for _, c := range []struct {
		args []string
		want string
	}{{[]string{"exec", pod}, "pids:" + d.Cgroup + "\n"}, {[]string{"run", "--name", "lim", pod}, "pids:" + d.Cgroup + "/c-lim\n"}} {
		out := e.must(append(c.args, "--", "cat", "/proc/self/cgroup")...)
		if !strings.Contains(out, c.want) {
			t.Errorf("%s's process is not in %s:\n%s", c.args[0], c.want, out)
		}
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", d.Pid))
	if !strings.Contains(string(b), "pids:"+d.Cgroup+"\n") {
		t.Errorf("pause is not in the pod's cgroup:\n%s", b)
	}
	// A bounded fork bomb: 300 forks against a limit of 100. The host
	// keeps working: it can still start processes of its own.
	e.run("exec", "-d", pod, "--", "sh", "-c", "for i in $(seq 300); do sleep 30 & done; wait")
	// Wait (the pod has half a CPU) until the forks stop short of the
	// limit (the sleeps outlast the wait; rm kills them).
	var n int64
	for start := time.Now(); time.Since(start) < 20*time.Second; time.Sleep(50 * time.Millisecond) {
		if n = readInt(t, filepath.Join(cgroupDir(t, d, "pids"), "pids.current")); n >= 90 {
			break
		}
	}
	if n > 100 || n < 90 {
		t.Errorf("pids.current %d: want the limit reached, not passed", n)
	}
	if n := len(podHostPIDs(t, d)); n > 100 {
		t.Errorf("%d processes in the pod", n)
	}
	if r := e.runCmd(cmdOf("true")); r.code != 0 {
		t.Errorf("the host cannot start a process")
	}
	dirs := []string{cgroupDir(t, d, "pids"), cgroupDir(t, d, "memory"), cgroupDir(t, d, "cpu")}
	e.must("rm", pod)
	for _, dir := range dirs {
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("cgroup %s left after rm", dir)
		}
	}
	// Issue 11 (item 12): each bad value is one clear error, exit 125.
	for _, bad := range []struct{ flag, value, want string }{
		{"--pids-limit", "-1", "want 1 to 4194304 processes"},
		{"--pids-limit", "0", "want 1 to 4194304 processes"},
		{"--memory", "lots", "want a positive number of bytes"},
		{"--memory", "1k", "want at least 4 MiB"},
		{"--memory", "", "want a positive number of bytes"},
		{"--memory", "99999999999g", "too large"},
		{"--cpus", "-2", "want a decimal number of CPUs"},
		{"--cpus", "NaN", "want a decimal number of CPUs"},
		{"--cpus", "inf", "want a decimal number of CPUs"},
		{"--cpus", "0", "want 0.01 to"},
		{"--cpus", "1000000000000000000000000000000", "want 0.01 to"},
	} {
		wantFailure(t, e.run("create", bad.flag+"="+bad.value, e.name()), bad.flag+" ")
		wantFailure(t, e.run("create", bad.flag+"="+bad.value, e.name()), bad.want)
	}
	// The smallest limits work: a pod of pause alone.
	small, d := e.create("--pids-limit", "1", "--memory", "4m", "--cpus", "0.01")
	if got := readInt(t, filepath.Join(cgroupDir(t, d, "pids"), "pids.max")); got != 1 {
		t.Errorf("pids.max %d", got)
	}
	// An exec joins the cgroup after its fork (a move the limit allows),
	// but cannot fork there.
	e.must("exec", small, "--", "true")
	if r := e.run("exec", small, "--", "sh", "-c", "/bin/true & wait $!"); r.code == 0 {
		t.Errorf("a fork in a pod limited to 1 process: %+v", r)
	}
}
