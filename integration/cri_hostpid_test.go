package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// podsb cri: a pod whose namespace_options.pid is NODE (host PID). Its
// containers run in the host's PID namespace and see the host's processes
// (this test's own among them) in their /proc; the exit codes of one that
// exits and of one that is stopped are recorded; stopping the pod kills a
// container still running there (pause's exit does not), and nothing is
// left after rmp. A container that asks for the host's PID namespace in a
// pod that does not is InvalidArgument naming namespace_options.pid, and
// leaves no container.
func TestCRIHostPID(t *testing.T) {
	c := newCRIEnv(t)
	dir := t.TempDir()
	write := fileWriter(t, dir)
	apps := layer(t, tarFile{name: "bin/sleep", link: "busybox"}, tarFile{name: "bin/cat", link: "busybox"})
	host := serveImages(t, map[string]v1.Image{"busybox:1": ociImage(t, []string{"sleep", "1000"}, busyboxLayer(t), apps)})
	ref := host + "/busybox:1"
	c.crictlMust("pull", ref)

	podJSON := write("pod.json", `{"metadata": {"name": "hostpid", "namespace": "default", "uid": "hp1"},
		"linux": {"security_context": {"namespace_options": {"pid": 2}}}}`)
	pod := strings.TrimSpace(c.crictlMust("runp", podJSON))
	c.use(pod)
	var st struct {
		Status struct {
			Linux struct {
				Namespaces struct {
					Options struct {
						Pid string `json:"pid"`
					} `json:"options"`
				} `json:"namespaces"`
			} `json:"linux"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(c.crictlMust("inspectp", pod)), &st); err != nil {
		t.Fatal(err)
	}
	if p := st.Status.Linux.Namespaces.Options.Pid; p != "NODE" {
		t.Errorf("inspectp: pid namespace option %q, want NODE", p)
	}

	ctr := func(name string, cmd ...string) string {
		t.Helper()
		args, _ := json.Marshal(cmd)
		f := write(name+".json", fmt.Sprintf(`{"metadata": {"name": %q}, "image": {"image": %q}, "command": %s,
			"linux": {"security_context": {"namespace_options": {"pid": 2}}}}`, name, ref, args))
		id := strings.TrimSpace(c.crictlMust("create", pod, f, podJSON))
		c.crictlMust("start", id)
		return id
	}
	hostPIDOf := func(id string) int {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(c.root, pod, "containers", id, "state.json"))
		var cs struct {
			Pid     int  `json:"pid"`
			HostPID bool `json:"hostPID"`
		}
		if err != nil || json.Unmarshal(b, &cs) != nil || cs.Pid <= 0 || !cs.HostPID {
			t.Fatalf("container %s: state %s, %v", id, b, err)
		}
		return cs.Pid
	}

	sleeper := ctr("sleeper", "sleep", "1000")
	c.waitState(sleeper, "CONTAINER_RUNNING")
	pid := hostPIDOf(sleeper)
	if nsIno(t, fmt.Sprintf("/proc/%d/ns/pid", pid)) != nsIno(t, "/proc/self/ns/pid") {
		t.Error("the container is not in the host's PID namespace")
	}
	// Its /proc is the host's: this test's process is there, and so is the
	// container's own process under its host PID.
	self := strconv.Itoa(os.Getpid())
	if out, ok := c.execOut(sleeper, "cat", "/proc/"+self+"/stat", "/proc/"+strconv.Itoa(pid)+"/cmdline"); !ok ||
		!strings.HasPrefix(out, self+" (") || !strings.Contains(out, "sleep") {
		t.Errorf("exec in a host-PID container: /proc of the test and of the container: %q", out)
	}

	exiter := ctr("exiter", "sh", "-c", "exit 7")
	if s := c.waitState(exiter, "CONTAINER_EXITED"); s.Status.ExitCode != 7 {
		t.Errorf("exit 7 in a host-PID container: exit code %d (%s)", s.Status.ExitCode, s.Status.Reason)
	}
	c.crictlMust("stop", "--timeout", "5", sleeper)
	if s := c.inspectc(sleeper); s.Status.State != "CONTAINER_EXITED" || s.Status.ExitCode != 128+15 {
		t.Errorf("stopped host-PID container: %s, exit code %d", s.Status.State, s.Status.ExitCode)
	}
	if procAlive(pid) {
		t.Errorf("stopped host-PID container: process %d lives", pid)
	}
	c.crictlMust("rm", sleeper, exiter)

	// Bad input: the host's PID namespace in a pod that is not in it.
	plainJSON := write("plain.json", `{"metadata": {"name": "plain", "namespace": "default", "uid": "pl1"}}`)
	plain := strings.TrimSpace(c.crictlMust("runp", plainJSON))
	c.use(plain)
	bad := write("bad.json", fmt.Sprintf(`{"metadata": {"name": "bad"}, "image": {"image": %q},
		"linux": {"security_context": {"namespace_options": {"pid": 2}}}}`, ref))
	if r := c.crictlRun("create", plain, bad, plainJSON); r.code == 0 || !strings.Contains(r.stderr, "InvalidArgument") ||
		!strings.Contains(r.stderr, "namespace_options.pid: NODE") {
		t.Errorf("create with pid NODE in a pod that is not: exit %d: %s", r.code, r.stderr)
	}
	if out := strings.TrimSpace(c.crictlMust("ps", "-a", "-q")); out != "" {
		t.Errorf("containers after a refused create: %q", out)
	}
	c.crictlMust("stopp", plain)
	c.crictlMust("rmp", plain)

	// The pod's stop ends its host-PID containers, which pause's exit
	// does not.
	left := ctr("left", "sh", "-c", "sleep 1000 & exec sleep 1000")
	c.waitState(left, "CONTAINER_RUNNING")
	lpid := hostPIDOf(left)
	var child int
	for deadline := time.Now().Add(10 * time.Second); child == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", lpid, lpid))
		child, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if child == 0 {
		t.Fatalf("container %s: its background sleep did not start", left)
	}
	c.crictlMust("stopp", pod)
	if procAlive(lpid) || procAlive(child) {
		t.Errorf("after stopp: the container's processes %d, %d live", lpid, child)
	}
	if s := c.inspectc(left); s.Status.State != "CONTAINER_EXITED" {
		t.Errorf("after stopp: container %s", s.Status.State)
	}
	c.crictlMust("rmp", pod)
	if out := strings.TrimSpace(c.crictlMust("pods", "-q")); out != "" {
		t.Errorf("pods after rmp: %q", out)
	}
}

// procAlive tells whether pid names a process that is not a zombie.
func procAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || (s[i+2] != 'Z' && s[i+2] != 'X')
}
