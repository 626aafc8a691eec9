package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/podsb/podsb/sandbox"
)

// execOut runs args in a container of the pod with podsb exec and returns
// its output, without the NULs of /proc/PID/cmdline.
func execOut(t *testing.T, e *env, pod, container string, args ...string) string {
	t.Helper()
	out := e.must(append([]string{"exec", "--container", container, pod, "--"}, args...)...)
	return strings.TrimSpace(strings.ReplaceAll(out, "\x00", " "))
}

// A container with a PID namespace of its own: its command is PID 1
// there (and its /proc is that namespace's), exec joins it, pause is its
// parent and records its exit. A container that joins its PID namespace
// (Target) sees its processes. Removing them leaves no handle.
func TestContainerPIDNamespace(t *testing.T) {
	e := newEnv(t)
	name := e.name()
	pod, err := sandbox.Create(context.Background(), sandbox.Config{Root: e.root, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	doc := e.inspect(name)
	run := func(cname string, pid sandbox.PIDMode, args ...string) (*sandbox.Process, error) {
		return pod.Run(context.Background(), sandbox.ContainerConfig{Name: cname, PID: pid,
			ExecConfig: sandbox.ExecConfig{Args: args, Detach: true}})
	}
	if _, err := run("own", sandbox.PIDMode{Own: true}, "sh", "-c", "echo $$ > /tmp/pid; exec sleep 1000"); err != nil {
		t.Fatal(err)
	}
	cs, err := pod.Container("own")
	if err != nil {
		t.Fatal(err)
	}
	if got := execOut(t, e, name, "own", "cat", "/proc/1/cmdline"); got != "sleep 1000" {
		t.Errorf("PID 1 in the container: %q, want sleep 1000", got)
	}
	if got := execOut(t, e, name, "own", "cat", "/tmp/pid"); got != "1" {
		t.Errorf("the command's PID in its namespace: %s, want 1", got)
	}
	if ns := nsIno(t, fmt.Sprintf("/proc/%d/ns/pid", cs.Pid)); ns == nsIno(t, fmt.Sprintf("/proc/%d/ns/pid", doc.Pid)) {
		t.Error("the container is in the pod's PID namespace")
	}
	if got := execOut(t, e, name, "own", "readlink", "/proc/self/ns/pid"); got != fmt.Sprintf("pid:[%d]", nsIno(t, fmt.Sprintf("/proc/%d/ns/pid", cs.Pid))) {
		t.Errorf("exec's PID namespace: %s, not the container's", got)
	}
	// Its parent is pause.
	if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cs.Pid)); !bytes.Contains(st, []byte(fmt.Sprintf("PPid:\t%d\n", doc.Pid))) {
		t.Errorf("the container's parent is not pause %d:\n%s", doc.Pid, st)
	}
	// A container in its PID namespace sees its process; one in the pod's
	// does not.
	if _, err := run("peer", sandbox.PIDMode{Target: "own"}, "sleep", "1001"); err != nil {
		t.Fatal(err)
	}
	if got := execOut(t, e, name, "peer", "cat", "/proc/1/cmdline"); got != "sleep 1000" {
		t.Errorf("PID 1 in the target's namespace: %q", got)
	}
	if _, err := run("plain", sandbox.PIDMode{}, "sleep", "1002"); err != nil {
		t.Fatal(err)
	}
	if got := execOut(t, e, name, "plain", "cat", "/proc/1/cmdline"); strings.Contains(got, "sleep") {
		t.Errorf("PID 1 in the pod's namespace: %q, want pause", got)
	}
	// Its exit is pause's to record.
	if err := pod.SignalContainer("own", 9); err != nil {
		t.Fatal(err)
	}
	var st sandbox.ContainerState
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if st, _ = pod.Container("own"); st.Exit != nil {
			break
		}
	}
	if st.Exit == nil || st.Exit.Code != 137 {
		t.Errorf("exit of the container: %+v", st.Exit)
	}

	// Refused, with nothing left.
	for _, tc := range []struct {
		pid    sandbox.PIDMode
		detach bool
		msg    string
	}{
		{sandbox.PIDMode{Target: "nosuch"}, true, `PID namespace target "nosuch": no such container`},
		{sandbox.PIDMode{Target: "own"}, true, "PID namespace target own: not running"},
		{sandbox.PIDMode{Target: "bad"}, true, "PID namespace target: the container itself"},
		{sandbox.PIDMode{Own: true, Target: "plain"}, true, "its own and container plain's"},
		{sandbox.PIDMode{Own: true}, false, "needs a detached container"},
	} {
		cname := "bad"
		_, err := pod.Run(context.Background(), sandbox.ContainerConfig{Name: cname, PID: tc.pid,
			ExecConfig: sandbox.ExecConfig{Args: []string{"true"}, Detach: tc.detach}})
		if !errors.Is(err, sandbox.ErrInvalid) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("run with %+v: %v, want ErrInvalid and %q", tc.pid, err, tc.msg)
		}
		if _, err := os.Lstat(e.root + "/" + name + "/containers/" + cname); err == nil {
			t.Errorf("run with %+v left its directory", tc.pid)
		}
	}
	for _, c := range []string{"peer", "plain"} {
		pod.SignalContainer(c, 9)
	}
	for _, c := range []string{"own", "peer", "plain"} {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if err := pod.RemoveContainer(context.Background(), c, true); err == nil {
				break
			}
		}
	}
	if ents, _ := os.ReadDir(e.root + "/" + name + "/ns"); len(ents) != len(sandbox.NamespaceTypes) {
		var names []string
		for _, en := range ents {
			names = append(names, en.Name())
		}
		t.Errorf("the pod's ns directory after its containers' removal: %v", names)
	}
}
