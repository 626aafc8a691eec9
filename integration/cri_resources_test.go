package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// podCgroupDirs are the directories of the cgroup of the CRI pod id, one a
// cgroup v1 controller (or the one of v2): found by the pod's ID, which no
// other test's pod has.
func podCgroupDirs(t *testing.T, id string) []string {
	t.Helper()
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/podsb-*-" + id)
	more, _ := filepath.Glob("/sys/fs/cgroup/podsb-*-" + id)
	return append(dirs, more...)
}

// cgroupFile reads a file of the container ctr's cgroup in pod, in
// controller's hierarchy.
func cgroupFile(t *testing.T, pod, ctr, controller, file string) string {
	t.Helper()
	dirs, _ := filepath.Glob("/sys/fs/cgroup/" + controller + "/podsb-*-" + pod + "/c-" + ctr)
	if len(dirs) != 1 {
		t.Fatalf("cgroup of container %s in %s: %v", ctr, controller, dirs)
	}
	b, err := os.ReadFile(filepath.Join(dirs[0], file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

type crictlStats struct {
	Stats []struct {
		Attributes struct {
			ID string `json:"id"`
		} `json:"attributes"`
		CPU struct {
			UsageCoreNanoSeconds struct {
				Value string `json:"value"`
			} `json:"usageCoreNanoSeconds"`
		} `json:"cpu"`
		Memory struct {
			WorkingSetBytes struct {
				Value string `json:"value"`
			} `json:"workingSetBytes"`
		} `json:"memory"`
		WritableLayer struct {
			UsedBytes struct {
				Value string `json:"value"`
			} `json:"usedBytes"`
			InodesUsed struct {
				Value string `json:"value"`
			} `json:"inodesUsed"`
		} `json:"writableLayer"`
	} `json:"stats"`
}

func atou(t *testing.T, s string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}

// TestCRIResources: a container's linux.resources land in its own cgroup
// below its pod's, UpdateContainerResources changes them, stats come from
// the cgroup and the writable layer, an OOM-killed container reports
// OOMKilled and 137, bad resources are refused naming the field, and
// removing the container and the pod leaves no cgroup.
func TestCRIResources(t *testing.T) {
	if _, err := os.Stat("/sys/fs/cgroup/cpu"); err != nil {
		t.Skip("cgroup v1 layout expected (the files checked are v1's)")
	}
	c := newCRIEnv(t)
	host := serveImages(t, map[string]v1.Image{"busybox:1": ociImage(t, []string{"sh", "-c", "exec sleep 1000"}, busyboxLayer(t))})
	ref := host + "/busybox:1"
	c.crictlMust("pull", ref)

	dir := t.TempDir()
	podJSON := filepath.Join(dir, "pod.json")
	os.WriteFile(podJSON, []byte(`{"metadata": {"name": "res", "namespace": "default", "uid": "7e5", "attempt": 0}, "log_directory": "`+dir+`", "linux": {}}`), 0o644)
	ctrJSON := func(name, resources string, cmd ...string) string {
		f := filepath.Join(dir, name+".json")
		b, _ := json.Marshal(cmd)
		os.WriteFile(f, []byte(`{"metadata": {"name": "`+name+`"}, "image": {"image": "`+ref+`"}, "log_path": "`+name+`.log",
			"command": `+string(b)+`, "linux": {"resources": `+resources+`}}`), 0o644)
		return f
	}
	pod := strings.TrimSpace(c.crictlMust("runp", podJSON))
	c.use(pod)

	t.Run("limits", func(t *testing.T) {
		ctr := strings.TrimSpace(c.crictlMust("create", pod, ctrJSON("main", `{"cpu_shares": 512, "cpu_quota": 20000, "cpu_period": 100000,
			"memory_limit_in_bytes": 67108864, "memory_swap_limit_in_bytes": 67108864, "oom_score_adj": 500}`, "sh", "-c", "exec sleep 1000"), podJSON))
		c.crictlMust("start", ctr)
		c.waitState(ctr, "CONTAINER_RUNNING")
		for _, f := range []struct{ ctl, file, want string }{
			{"cpu", "cpu.shares", "512"}, {"cpu", "cpu.cfs_quota_us", "20000"}, {"cpu", "cpu.cfs_period_us", "100000"},
			{"memory", "memory.limit_in_bytes", "67108864"}, {"memory", "memory.memsw.limit_in_bytes", "67108864"},
		} {
			if got := cgroupFile(t, pod, ctr, f.ctl, f.file); got != f.want {
				t.Errorf("%s: %s, want %s", f.file, got, f.want)
			}
		}
		// Every process of the container is in it: its command, and what
		// exec runs in it.
		procs := strings.Fields(cgroupFile(t, pod, ctr, "memory", "cgroup.procs"))
		if len(procs) != 1 {
			t.Fatalf("cgroup.procs: %v, want the container's command alone", procs)
		}
		if b, _ := os.ReadFile("/proc/" + procs[0] + "/oom_score_adj"); strings.TrimSpace(string(b)) != "500" {
			t.Errorf("the command's oom_score_adj: %q, want 500", b)
		}
		if out := c.crictlMust("exec", "-s", ctr, "sh", "-c", "cat /proc/self/oom_score_adj; cat /proc/self/cgroup"); !strings.HasPrefix(out, "500\n") || !strings.Contains(out, "/c-"+ctr) {
			t.Errorf("exec in the container:\n%s", out)
		}

		c.crictlMust("update", "--cpu-share", "256", "--cpu-quota", "50000", "--memory", "134217728", ctr)
		for _, f := range []struct{ ctl, file, want string }{
			{"cpu", "cpu.shares", "256"}, {"cpu", "cpu.cfs_quota_us", "50000"}, {"memory", "memory.limit_in_bytes", "134217728"},
		} {
			if got := cgroupFile(t, pod, ctr, f.ctl, f.file); got != f.want {
				t.Errorf("after update: %s: %s, want %s", f.file, got, f.want)
			}
		}
		if out := c.crictlMust("inspect", ctr); !strings.Contains(out, `"memoryLimitInBytes": "134217728"`) {
			t.Errorf("inspect after update does not show the new memory limit:\n%s", out)
		}

		// Stats: CPU used, memory in use, a 512 KiB file in the writable
		// layer.
		c.crictlMust("exec", "-s", ctr, "sh", "-c", "dd if=/dev/zero of=/big bs=1024 count=512 2>/dev/null; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done")
		var st crictlStats
		if err := json.Unmarshal([]byte(c.crictlMust("stats", "-o", "json", "--id", ctr)), &st); err != nil || len(st.Stats) != 1 {
			t.Fatalf("crictl stats: %v %+v", err, st)
		}
		s := st.Stats[0]
		if cpu := atou(t, s.CPU.UsageCoreNanoSeconds.Value); cpu == 0 || cpu > uint64(time.Hour) {
			t.Errorf("cpu usage %d ns", cpu)
		}
		if ws := atou(t, s.Memory.WorkingSetBytes.Value); ws == 0 || ws > 128<<20 {
			t.Errorf("working set %d bytes", ws)
		}
		if used := atou(t, s.WritableLayer.UsedBytes.Value); used < 512<<10 || used > 16<<20 {
			t.Errorf("writable layer %d bytes, want the 512 KiB file", used)
		}
		if out := c.crictlMust("statsp", "-o", "json", "--id", pod); !strings.Contains(out, `"network"`) || !strings.Contains(out, `"workingSetBytes"`) {
			t.Errorf("crictl statsp:\n%s", out)
		}

		c.crictlMust("stop", ctr)
		c.crictlMust("rm", ctr)
		if dirs, _ := filepath.Glob("/sys/fs/cgroup/*/podsb-*-" + pod + "/c-" + ctr); len(dirs) != 0 {
			t.Errorf("cgroup left after rm: %v", dirs)
		}
	})

	t.Run("oom", func(t *testing.T) {
		ctr := strings.TrimSpace(c.crictlMust("create", pod, ctrJSON("oom", `{"memory_limit_in_bytes": 15728640, "memory_swap_limit_in_bytes": 15728640}`,
			"sh", "-c", "dd if=/dev/zero of=/dev/null bs=20M"), podJSON))
		c.crictlMust("start", ctr)
		st := c.waitState(ctr, "CONTAINER_EXITED")
		if st.Status.Reason != "OOMKilled" || st.Status.ExitCode != 137 {
			t.Errorf("OOM-killed container: reason %q, exit code %d; want OOMKilled, 137", st.Status.Reason, st.Status.ExitCode)
		}
		c.crictlMust("rm", ctr)
	})

	t.Run("failed start", func(t *testing.T) {
		// The start's undo removes the cgroup it made.
		ctr := strings.TrimSpace(c.crictlMust("create", pod, ctrJSON("nocmd", `{"memory_limit_in_bytes": 67108864}`, "no-such-command"), podJSON))
		if r := c.crictlRun("start", ctr); r.code == 0 {
			t.Fatalf("start of a missing command succeeded")
		}
		if dirs, _ := filepath.Glob("/sys/fs/cgroup/*/podsb-*-" + pod + "/c-" + ctr); len(dirs) != 0 {
			t.Errorf("cgroup left by a failed start: %v", dirs)
		}
		c.crictlMust("rm", ctr)
	})

	t.Run("bad", func(t *testing.T) {
		for _, b := range []struct{ res, field string }{
			{`{"cpu_shares": -1}`, "linux.resources.cpu_shares"},
			{`{"cpu_quota": -5}`, "linux.resources.cpu_quota"},
			{`{"cpu_period": 10}`, "linux.resources.cpu_period"},
			{`{"memory_limit_in_bytes": -1}`, "linux.resources.memory_limit_in_bytes"},
			{`{"memory_limit_in_bytes": 1024}`, "linux.resources.memory_limit_in_bytes"},
			{`{"memory_limit_in_bytes": 67108864, "memory_swap_limit_in_bytes": 1048576}`, "linux.resources.memory_swap_limit_in_bytes"},
			{`{"oom_score_adj": 1001}`, "linux.resources.oom_score_adj"},
			{`{"cpuset_cpus": "0-x"}`, "cpuset cpus"},
		} {
			r := c.crictlRun("create", pod, ctrJSON("bad", b.res, "true"), podJSON)
			if r.code == 0 || !strings.Contains(r.stderr, b.field) || !strings.Contains(r.stderr, "InvalidArgument") {
				t.Errorf("create with %s: exit %d: %s; want InvalidArgument naming %s", b.res, r.code, r.stderr, b.field)
			}
		}
		if out := c.crictlMust("ps", "-a", "-q", "--name", "bad"); strings.TrimSpace(out) != "" {
			t.Errorf("refused creates left containers: %s", out)
		}
	})

	c.crictlMust("stopp", pod)
	c.crictlMust("rmp", pod)
	if dirs := podCgroupDirs(t, pod); len(dirs) != 0 {
		t.Errorf("cgroups left after rmp: %v", dirs)
	}
}

// TestCRICgroupParent: a pod with linux.cgroup_parent (kubelet's cgroupfs
// driver) has its cgroup, holding pause and its containers' cgroups, in
// that parent, which podsb neither makes nor removes; a missing, relative
// or systemd parent is refused and leaves no pod.
func TestCRICgroupParent(t *testing.T) {
	if _, err := os.Stat("/sys/fs/cgroup/cpu"); err != nil {
		t.Skip("cgroup v1 layout expected (the files checked are v1's)")
	}
	c := newCRIEnv(t)
	host := serveImages(t, map[string]v1.Image{"busybox:1": ociImage(t, []string{"sh", "-c", "exec sleep 1000"}, busyboxLayer(t))})
	ref := host + "/busybox:1"
	c.crictlMust("pull", ref)

	// The parent, made in every hierarchy as kubelet makes it.
	parent := "/kp-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	ents, _ := os.ReadDir("/sys/fs/cgroup")
	var parents []string
	for _, e := range ents {
		d := filepath.Join("/sys/fs/cgroup", e.Name(), parent)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		parents = append(parents, d)
	}
	t.Cleanup(func() {
		for _, d := range parents {
			if err := os.Remove(d); err != nil {
				t.Errorf("remove the test's parent cgroup: %v", err)
			}
		}
	})

	dir := t.TempDir()
	podJSON := func(name, parent string) string {
		f := filepath.Join(dir, name+".json")
		os.WriteFile(f, []byte(`{"metadata": {"name": "`+name+`", "namespace": "default", "uid": "`+name+`", "attempt": 0},
			"log_directory": "`+dir+`", "linux": {"cgroup_parent": "`+parent+`"}}`), 0o644)
		return f
	}
	for _, b := range []struct{ parent, want string }{
		{"/no-such-parent-cgroup", "InvalidArgument"},
		{"kp", "InvalidArgument"},
		{"/kubepods.slice", "Unimplemented"},
	} {
		r := c.crictlRun("runp", podJSON("bad", b.parent))
		if r.code == 0 || !strings.Contains(r.stderr, b.want) || !strings.Contains(r.stderr, "cgroup") {
			t.Errorf("runp with cgroup_parent %q: exit %d: %s; want %s naming the cgroup parent", b.parent, r.code, r.stderr, b.want)
		}
	}
	if out := c.crictlMust("pods", "-q", "--name", "bad"); strings.TrimSpace(out) != "" {
		t.Errorf("refused runp left pods: %s", out)
	}

	pj := podJSON("inparent", parent)
	pod := strings.TrimSpace(c.crictlMust("runp", pj))
	c.use(pod)
	podDirs, _ := filepath.Glob("/sys/fs/cgroup/memory" + parent + "/podsb-*-" + pod)
	if len(podDirs) != 1 {
		t.Fatalf("pod cgroup in %s: %v", parent, podDirs)
	}
	if b, _ := os.ReadFile(filepath.Join(podDirs[0], "cgroup.procs")); len(strings.Fields(string(b))) != 1 {
		t.Errorf("pod cgroup's processes: %q, want pause", b)
	}
	f := filepath.Join(dir, "ctr.json")
	os.WriteFile(f, []byte(`{"metadata": {"name": "main"}, "image": {"image": "`+ref+`"}, "linux": {"resources": {"memory_limit_in_bytes": 33554432}}}`), 0o644)
	ctr := strings.TrimSpace(c.crictlMust("create", pod, f, pj))
	c.crictlMust("start", ctr)
	c.waitState(ctr, "CONTAINER_RUNNING")
	if b, err := os.ReadFile(filepath.Join(podDirs[0], "c-"+ctr, "memory.limit_in_bytes")); err != nil || strings.TrimSpace(string(b)) != "33554432" {
		t.Errorf("container cgroup below the pod's: %q %v", b, err)
	}
	c.crictlMust("stopp", pod)
	c.crictlMust("rmp", pod)
	for _, d := range parents {
		if ents, _ := os.ReadDir(d); slicesHasDir(ents) {
			t.Errorf("cgroup left in the parent %s after rmp", d)
		}
	}
}

func slicesHasDir(ents []os.DirEntry) bool {
	for _, e := range ents {
		if e.IsDir() {
			return true
		}
	}
	return false
}
