package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podsb/podsb/internal/testenv"
	"github.com/podsb/podsb/sandbox"
)

// libPod creates a pod with the Go API in a fresh state root, removed and
// checked for leaks at the end.
func libPod(t *testing.T) (*sandbox.Pod, string) {
	t.Helper()
	testenv.RequireRoot(t)
	ctx := context.Background()
	root := t.TempDir()
	pod, err := sandbox.Create(ctx, sandbox.Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	st := pod.State()
	pids := map[int]uint64{st.Pid: st.StartTime}
	t.Cleanup(func() {
		if p, err := sandbox.Load(root, pod.Name()); err == nil {
			if st := p.State(); st.Pid != 0 {
				pids[st.Pid] = st.StartTime
			}
			if err := p.Remove(ctx, sandbox.RemoveOptions{Force: true}); err != nil {
				t.Errorf("remove: %v", err)
			}
		}
		checkNoLeaks(t, root, map[string]bool{pod.Name(): true}, pids)
	})
	return pod, root
}

// runDetached runs a detached container and returns its state once it
// has stopped.
func runDetached(t *testing.T, pod *sandbox.Pod, name string, args ...string) sandbox.ContainerState {
	t.Helper()
	if _, err := pod.Run(context.Background(), sandbox.ContainerConfig{Name: name, ExecConfig: sandbox.ExecConfig{Args: args, Detach: true}}); err != nil {
		t.Fatalf("run %s: %v", name, err)
	}
	return awaitStopped(t, pod, name)
}

// awaitStopped waits until the container is stopped and pause has
// recorded its exit (or 10 s have passed).
func awaitStopped(t *testing.T, pod *sandbox.Pod, name string) sandbox.ContainerState {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		cs, err := pod.Container(name)
		if err != nil {
			t.Fatalf("container %s: %v", name, err)
		}
		if cs.Status == specs.StateStopped && cs.Exit != nil || time.Now().After(deadline) {
			return cs
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func wantExit(t *testing.T, cs sandbox.ContainerState, code int, signal string, after time.Time) {
	t.Helper()
	if cs.Status != specs.StateStopped || cs.Exit == nil {
		t.Fatalf("container %s: %s, exit %+v; want stopped with an exit", cs.Name, cs.Status, cs.Exit)
	}
	e := cs.Exit
	if e.Code != code || e.Signal != signal {
		t.Errorf("container %s: exit %d %q, want %d %q", cs.Name, e.Code, e.Signal, code, signal)
	}
	if e.Finished.Before(after.Add(-time.Second)) || e.Finished.After(time.Now().Add(time.Second)) {
		t.Errorf("container %s: finished %v, not between %v and now", cs.Name, e.Finished, after)
	}
}

// pause records the exit of a detached container, which it reaps: 0, 3,
// and killed by SIGKILL (137). Without pause's record (pause.c's reap),
// Exit stays nil and this fails.
func TestContainerExitRecorded(t *testing.T) {
	pod, _ := libPod(t)
	start := time.Now()
	wantExit(t, runDetached(t, pod, "zero", "true"), 0, "", start)
	wantExit(t, runDetached(t, pod, "three", "sh", "-c", "exit 3"), 3, "", start)
	wantExit(t, runDetached(t, pod, "killed", "sh", "-c", "kill -KILL $$"), 137, "SIGKILL", start)
	// pause removed each name once it wrote the record.
	if names := dirNames(t, filepath.Join(pod.Dir(), "exits")); len(names) != 0 {
		t.Errorf("exits/ holds %v after the containers ended", names)
	}
	cs, err := pod.Containers()
	if err != nil || len(cs) != 3 {
		t.Fatalf("containers: %v %v", cs, err)
	}
	for _, c := range cs {
		if c.Exit == nil {
			t.Errorf("Containers: %s has no exit", c.Name)
		}
	}
}

// An orphan that is no container (a detached exec's child, adopted by
// pause) leaves no file in exits/; its PID, reused by a later container,
// does not mix their exits; two containers that ended keep their own.
func TestContainerExitNotConfused(t *testing.T) {
	pod, _ := libPod(t)
	ctx := context.Background()
	exits := filepath.Join(pod.Dir(), "exits")
	if _, err := pod.Exec(ctx, sandbox.ExecConfig{Args: []string{"sh", "-c", "sleep 0.1 & exit 7"}, Detach: true}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if names := dirNames(t, exits); len(names) != 0 {
		t.Errorf("an orphan made %v in exits/", names)
	}
	start := time.Now()
	a := runDetached(t, pod, "a", "sh", "-c", "exit 5")
	b := runDetached(t, pod, "b", "sh", "-c", "exit 6")
	wantExit(t, a, 5, "", start)
	wantExit(t, b, 6, "", start)
	// Both again, later: nothing changed.
	for name, code := range map[string]int{"a": 5, "b": 6} {
		cs, err := pod.Container(name)
		if err != nil {
			t.Fatal(err)
		}
		wantExit(t, cs, code, "", start)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// A stopped pod's containers died with it: no exit is reported. Start
// runs a new pause, which records the exits of the containers run then.
func TestContainerExitStopStart(t *testing.T) {
	pod, _ := libPod(t)
	ctx := context.Background()
	if _, err := pod.Run(ctx, sandbox.ContainerConfig{Name: "long", ExecConfig: sandbox.ExecConfig{Args: []string{"sleep", "100"}, Detach: true}}); err != nil {
		t.Fatal(err)
	}
	long, _ := pod.Container("long")
	if err := pod.Stop(ctx, sandbox.RemoveOptions{Timeout: -1}); err != nil {
		t.Fatal(err)
	}
	cs, err := pod.Container("long")
	if err != nil || cs.Status != specs.StateStopped || cs.Exit != nil {
		t.Errorf("container of a stopped pod: %+v %v, want stopped with no exit", cs, err)
	}
	if err := pod.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if names := dirNames(t, filepath.Join(pod.Dir(), "exits")); len(names) != 0 {
		t.Errorf("exits/ after Start holds %v (the old pause's processes)", names)
	}
	// The new pause's PIDs count from 2 again: the old container's PID
	// is a new one's.
	start := time.Now()
	after := runDetached(t, pod, "after", "sh", "-c", "exit 4")
	wantExit(t, after, 4, "", start)
	if after.PodPID != long.PodPID {
		t.Logf("PID %d of before not reused (now %d)", long.PodPID, after.PodPID)
	}
	if cs, _ := pod.Container("long"); cs.Exit != nil {
		t.Errorf("old container got exit %+v", cs.Exit)
	}
	// A stopped pod's container is removed like any other.
	if err := pod.Stop(ctx, sandbox.RemoveOptions{Timeout: -1}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"long", "after"} {
		if err := pod.RemoveContainer(ctx, name, false); err != nil {
			t.Errorf("remove %s of a stopped pod: %v", name, err)
		}
	}
	if names := dirNames(t, filepath.Join(pod.Dir(), "containers")); len(names) != 0 {
		t.Errorf("containers/ holds %v", names)
	}
}

// A PID of an exited container, reused by the next one (ns_last_pid set
// in the pod's PID namespace), names the new container's exit only: each
// keeps its own.
func TestContainerExitPIDReused(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	root := t.TempDir()
	priv := sandbox.Security{Privileged: true}
	pod, err := sandbox.Create(ctx, sandbox.Config{Root: root, Security: priv})
	if err != nil {
		t.Fatal(err)
	}
	st := pod.State()
	t.Cleanup(func() {
		pod.Remove(ctx, sandbox.RemoveOptions{Force: true})
		checkNoLeaks(t, root, map[string]bool{pod.Name(): true}, map[int]uint64{st.Pid: st.StartTime})
	})
	start := time.Now()
	a := runDetached(t, pod, "a", "sh", "-c", "exit 5")
	wantExit(t, a, 5, "", start)
	// The next fork in the pod is Run's init, then the process it spawns:
	// that one gets a's PID.
	set := fmt.Sprintf("echo %d > /proc/sys/kernel/ns_last_pid", a.PodPID-2)
	p, err := pod.Exec(ctx, sandbox.ExecConfig{Args: []string{"sh", "-c", set}, Security: priv})
	if err != nil {
		t.Fatal(err)
	}
	if code, err := p.Wait(); code != 0 || err != nil {
		t.Fatalf("%s: %d %v", set, code, err)
	}
	b := runDetached(t, pod, "b", "sh", "-c", "exit 6")
	if b.PodPID != a.PodPID {
		t.Fatalf("b has PID %d, not a's %d", b.PodPID, a.PodPID)
	}
	wantExit(t, b, 6, "", start)
	a, _ = pod.Container("a")
	wantExit(t, a, 5, "", start)
}

// A pod made by a podsb that did not record exits has no exits directory
// (here: removed) and its pause nothing at fd 3 that finds the names: its
// detached containers run, stop and are removed as before, with no exit;
// Start gives it the directory, and exits are recorded from then on.
func TestContainerExitOldPod(t *testing.T) {
	pod, _ := libPod(t)
	ctx := context.Background()
	if err := os.Remove(filepath.Join(pod.Dir(), "exits")); err != nil {
		t.Fatal(err)
	}
	if _, err := pod.Run(ctx, sandbox.ContainerConfig{Name: "old", ExecConfig: sandbox.ExecConfig{Args: []string{"sh", "-c", "exit 3"}, Detach: true}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	cs, _ := pod.Container("old")
	for cs.Status != specs.StateStopped && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		cs, _ = pod.Container("old")
	}
	if cs.Status != specs.StateStopped || cs.Exit != nil {
		t.Errorf("container of an old pod: %s, exit %+v; want stopped, no exit", cs.Status, cs.Exit)
	}
	if err := pod.StopContainer(ctx, "old", 0, time.Second); err != nil {
		t.Error(err)
	}
	if err := pod.RemoveContainer(ctx, "old", false); err != nil {
		t.Error(err)
	}
	if err := pod.Stop(ctx, sandbox.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pod.Start(ctx); err != nil {
		t.Fatal(err)
	}
	wantExit(t, runDetached(t, pod, "new", "sh", "-c", "exit 5"), 5, "", time.Now().Add(-time.Minute))
}
