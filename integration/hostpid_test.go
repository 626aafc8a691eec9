package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/podsb/podsb/sandbox"
)

// The library's host PID (Config.HostPID, PIDMode.Host): the container is
// in the caller's PID namespace and the caller's child (not pause's), the
// caller records its exit, exec into it joins that namespace, and removing
// the pod kills it. Bad input: PIDMode.Host in a pod made without
// HostPID, or with another PID mode, is ErrInvalid and makes nothing.
func TestHostPIDContainer(t *testing.T) {
	e := newEnv(t)
	name, plainName := e.name(), e.name()
	ctx := context.Background()
	pod, err := sandbox.Create(ctx, sandbox.Config{Root: e.root, Name: name, HostPID: true})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := sandbox.Create(ctx, sandbox.Config{Root: e.root, Name: plainName})
	if err != nil {
		t.Fatal(err)
	}
	run := func(p *sandbox.Pod, cname string, pid sandbox.PIDMode, args ...string) (*sandbox.Process, error) {
		return p.Run(ctx, sandbox.ContainerConfig{Name: cname, PID: pid, ExecConfig: sandbox.ExecConfig{Args: args, Detach: true}})
	}
	for _, tc := range []struct {
		p    *sandbox.Pod
		mode sandbox.PIDMode
	}{
		{plain, sandbox.PIDMode{Host: true}},
		{pod, sandbox.PIDMode{Host: true, Own: true}},
		{pod, sandbox.PIDMode{Host: true, Target: "x"}},
	} {
		if _, err := run(tc.p, "bad", tc.mode, "true"); !errors.Is(err, sandbox.ErrInvalid) {
			t.Errorf("run with %+v in pod %s: %v, want ErrInvalid", tc.mode, tc.p.Name(), err)
		}
		if cs, err := tc.p.Containers(); err != nil || len(cs) != 0 {
			t.Errorf("containers after a refused run: %v %v", cs, err)
		}
	}

	if _, err := run(pod, "sleeper", sandbox.PIDMode{Host: true}, "sleep", "1000"); err != nil {
		t.Fatal(err)
	}
	cs, err := pod.Container("sleeper")
	if err != nil {
		t.Fatal(err)
	}
	if !cs.HostPID || cs.PodPID != 0 {
		t.Errorf("state: hostPID %v, pod PID %d", cs.HostPID, cs.PodPID)
	}
	if nsIno(t, fmt.Sprintf("/proc/%d/ns/pid", cs.Pid)) != nsIno(t, "/proc/self/ns/pid") {
		t.Error("the container is not in the host's PID namespace")
	}
	if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cs.Pid)); !bytes.Contains(st, []byte(fmt.Sprintf("PPid:\t%d\n", os.Getpid()))) {
		t.Errorf("the container's parent is not the caller %d:\n%s", os.Getpid(), st)
	}
	if got := execOut(t, e, name, "sleeper", "cat", fmt.Sprintf("/proc/%d/cmdline", os.Getpid())); got == "" {
		t.Error("exec in a host-PID container does not see the caller's process")
	}

	if _, err := run(pod, "exiter", sandbox.PIDMode{Host: true}, "sh", "-c", "exit 3"); err != nil {
		t.Fatal(err)
	}
	var ex sandbox.ContainerState
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if ex, err = pod.Container("exiter"); err == nil && ex.Exit != nil {
			break
		}
	}
	if ex.Exit == nil || ex.Exit.Code != 3 {
		t.Errorf("exit of a host-PID container: %+v", ex.Exit)
	}
	if err := pod.StopContainer(ctx, "sleeper", 0, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if cs, err := pod.Container("sleeper"); err != nil || cs.Exit == nil || cs.Exit.Signal != "SIGTERM" {
		t.Errorf("stopped host-PID container: %+v %v", cs.Exit, err)
	}

	if _, err := run(pod, "left", sandbox.PIDMode{Host: true}, "sleep", "1000"); err != nil {
		t.Fatal(err)
	}
	left, err := pod.Container("left")
	if err != nil {
		t.Fatal(err)
	}
	if err := pod.Remove(ctx, sandbox.RemoveOptions{Timeout: time.Second}); err != nil {
		t.Fatal(err)
	}
	if procAlive(left.Pid) {
		t.Errorf("after the pod's removal its host-PID container %d lives", left.Pid)
	}
	if err := plain.Remove(ctx, sandbox.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
}
