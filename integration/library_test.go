package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podsb/podsb/internal/testenv"
	"github.com/podsb/podsb/rootfs"
	"github.com/podsb/podsb/sandbox"
)

// The Go API, driven from a test binary, with no set-up: the pod's init is
// the pause program embedded in package reaper.
func TestLibraryLifecycle(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	root := t.TempDir()

	pod, err := sandbox.Create(ctx, sandbox.Config{Root: root, Hostname: "lib"})
	if err != nil {
		t.Fatal(err)
	}
	name := pod.Name()
	st := pod.State()
	t.Cleanup(func() {
		checkNoLeaks(t, root, map[string]bool{name: true}, map[int]uint64{st.Pid: st.StartTime})
	})
	if err := sandbox.ValidateName(name); err != nil || len(name) != 12 {
		t.Errorf("generated name %q: %v", name, err)
	}
	if st.Status != specs.StateRunning || pod.PID() != st.Pid || st.Hostname != "lib" {
		t.Errorf("state: %+v", st)
	}

	procs, err := pod.Processes()
	if err != nil || len(procs) != 1 || procs[0].PID != 1 || procs[0].HostPID != st.Pid || procs[0].Command != "pause" {
		t.Errorf("processes: %+v %v", procs, err)
	}
	loaded, err := sandbox.Load(root, name)
	if err != nil || loaded.PID() != st.Pid {
		t.Errorf("load: %v %v", loaded, err)
	}
	pods, err := sandbox.List(root)
	if err != nil || len(pods) != 1 || pods[0].Name() != name {
		t.Errorf("list: %v %v", pods, err)
	}
	if _, err := sandbox.Create(ctx, sandbox.Config{Root: root, Name: name}); !errors.Is(err, sandbox.ErrExists) {
		t.Errorf("second create: %v, want ErrExists", err)
	}
	if _, err := sandbox.Load(root, "nosuch"); !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("load unknown: %v, want ErrNotFound", err)
	}
	if _, err := sandbox.Create(ctx, sandbox.Config{Root: root, Name: "../x"}); !errors.Is(err, sandbox.ErrInvalid) {
		t.Errorf("bad name: %v, want ErrInvalid", err)
	}

	if err := loaded.Remove(ctx, sandbox.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	// pause was this process's child: Remove reaped it, so no zombie stays.
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", st.Pid)); err == nil {
		t.Errorf("pause %d not reaped", st.Pid)
	}
	if err := pod.Remove(ctx, sandbox.RemoveOptions{}); !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("second remove: %v, want ErrNotFound", err)
	}
}

// A container from image layers through the Go API: a pod, a run, a wait.
func TestLibraryImageRoot(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	root, layer := t.TempDir(), t.TempDir()
	baseLayer(t, layer)

	pod, err := sandbox.Create(ctx, sandbox.Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	st := pod.State()
	t.Cleanup(func() { checkNoLeaks(t, root, map[string]bool{pod.Name(): true}, map[int]uint64{st.Pid: st.StartTime}) })
	defer pod.Remove(ctx, sandbox.RemoveOptions{Force: true})

	var out syncBuffer
	img := &rootfs.ImageRoot{Layers: []string{layer}, Config: rootfs.ImageConfig{Cmd: []string{"cat", "/kept"}}}
	p, err := pod.Run(ctx, sandbox.ContainerConfig{Image: img, ExecConfig: sandbox.ExecConfig{Stdout: &out}})
	if err != nil {
		t.Fatal(err)
	}
	if status, err := p.Wait(); status != 0 || err != nil || out.String() != "base\n" {
		t.Errorf("run: %d %v %q", status, err, out.String())
	}
}
