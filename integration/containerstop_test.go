package integration

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/rootfs"
	"github.com/podsb/podsb/sandbox"
)

func runWith(t *testing.T, pod *sandbox.Pod, cc sandbox.ContainerConfig) *sandbox.Process {
	t.Helper()
	p, err := pod.Run(context.Background(), cc)
	if err != nil {
		t.Fatalf("run %s: %v", cc.Name, err)
	}
	return p
}

func detached(name string, args ...string) sandbox.ContainerConfig {
	return sandbox.ContainerConfig{Name: name, ExecConfig: sandbox.ExecConfig{Args: args, Detach: true}}
}

// StopContainer: a command that exits on SIGTERM is recorded with its own
// status when StopContainer returns; one that ignores SIGTERM gets SIGKILL
// after the timeout (137); stopping a stopped container succeeds.
func TestStopContainer(t *testing.T) {
	pod, _ := libPod(t)
	ctx := context.Background()
	start := time.Now()
	// Ready once the trap is set: its output says so in the log.
	runWith(t, pod, detached("polite", "sh", "-c", "trap 'exit 9' TERM; echo ready; while :; do sleep 0.05; done"))
	runWith(t, pod, detached("deaf", "sh", "-c", "trap '' TERM; echo ready; exec sleep 100"))
	for _, name := range []string{"polite", "deaf"} {
		awaitLog(t, pod, name, "ready")
	}
	if err := pod.StopContainer(ctx, "polite", 0, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	cs, _ := pod.Container("polite")
	wantExit(t, cs, 9, "", start) // recorded when StopContainer returned
	if err := pod.StopContainer(ctx, "deaf", unix.SIGTERM, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	cs, _ = pod.Container("deaf")
	wantExit(t, cs, 137, "SIGKILL", start)
	if err := pod.StopContainer(ctx, "deaf", 0, time.Second); err != nil {
		t.Errorf("stop a stopped container: %v", err)
	}
	if err := pod.StopContainer(ctx, "nosuch", 0, time.Second); !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("stop an unknown container: %v, want ErrNotFound", err)
	}
}

// awaitLog waits until the container's log holds want.
func awaitLog(t *testing.T, pod *sandbox.Pod, name, want string) {
	t.Helper()
	log := filepath.Join(pod.Dir(), "logs", name+".log")
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(log)
		if strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log of %s: %q, want %q", name, b, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// RemoveContainer refuses a running container unless forced, and leaves
// nothing of it: no mount, no directory, log, exit name, upper directory.
// A CRI ID (64 hex digits) is a container name.
func TestRemoveContainer(t *testing.T) {
	pod, root := libPod(t)
	ctx := context.Background()
	before := mountsUnder(t, root)
	layer, uppers := t.TempDir(), t.TempDir()
	baseLayer(t, layer)
	id := strings.Repeat("0123456789abcdef", 4)
	img := &rootfs.ImageRoot{Layers: []string{layer}, UpperParent: uppers, Config: rootfs.ImageConfig{Cmd: []string{"sleep", "100"}}}
	runWith(t, pod, sandbox.ContainerConfig{Name: id, Image: img, ExecConfig: sandbox.ExecConfig{Detach: true}})
	runWith(t, pod, detached("done", "true"))
	awaitStopped(t, pod, "done")

	if err := pod.RemoveContainer(ctx, id, false); !errors.Is(err, sandbox.ErrRunning) {
		t.Errorf("remove a running container: %v, want ErrRunning", err)
	}
	if cs, err := pod.Container(id); err != nil || cs.Status != specs.StateRunning {
		t.Errorf("after a refused remove: %+v %v", cs, err)
	}
	for _, name := range []string{id, "done"} {
		if err := pod.RemoveContainer(ctx, name, true); err != nil {
			t.Fatalf("remove %s: %v", name, err)
		}
		if _, err := pod.Container(name); !errors.Is(err, sandbox.ErrNotFound) {
			t.Errorf("container %s after remove: %v", name, err)
		}
	}
	if err := pod.RemoveContainer(ctx, "done", false); !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("second remove: %v, want ErrNotFound", err)
	}
	if after := mountsUnder(t, root); !slices.Equal(before, after) {
		t.Errorf("mounts before %v, after %v", before, after)
	}
	for _, dir := range []string{"containers", "logs", "exits"} {
		if names := dirNames(t, filepath.Join(pod.Dir(), dir)); len(names) != 0 {
			t.Errorf("%s/ holds %v", dir, names)
		}
	}
	if names := dirNames(t, uppers); len(names) != 0 {
		t.Errorf("upper directories left: %v", names)
	}
	for _, n := range dirNames(t, filepath.Join(pod.Dir(), "ns")) {
		if strings.HasPrefix(n, "mnt-") {
			t.Errorf("ns/%s left", n)
		}
	}
	procs, _ := pod.Processes()
	if len(procs) != 1 {
		t.Errorf("processes left: %+v", procs)
	}
}

// Detached with the caller's stdio: pipes get the output, no log file is
// made, and the exit is recorded.
func TestContainerStdioDetached(t *testing.T) {
	pod, _ := libPod(t)
	outR, outW, _ := os.Pipe()
	errR, errW, _ := os.Pipe()
	inR, inW, _ := os.Pipe()
	defer outR.Close()
	defer errR.Close()
	cc := detached("piped", "sh", "-c", "read line; echo out $line; echo err >&2; exit 2")
	cc.Stdio = [3]*os.File{inR, outW, errW}
	p := runWith(t, pod, cc)
	inR.Close()
	outW.Close()
	errW.Close()
	if p.LogPath() != "" {
		t.Errorf("log path %q, want none", p.LogPath())
	}
	inW.WriteString("in\n")
	inW.Close()
	out, _ := io.ReadAll(outR)
	errb, _ := io.ReadAll(errR)
	if string(out) != "out in\n" || string(errb) != "err\n" {
		t.Errorf("stdout %q, stderr %q", out, errb)
	}
	wantExit(t, awaitStopped(t, pod, "piped"), 2, "", time.Now().Add(-time.Minute))
	if _, err := os.Stat(filepath.Join(pod.Dir(), "logs", "piped.log")); err == nil {
		t.Errorf("a log file was made")
	}
	// Stdio without Detach is refused.
	bad := sandbox.ContainerConfig{Name: "bad", ExecConfig: sandbox.ExecConfig{Args: []string{"true"}}}
	bad.Stdio[1] = os.Stdout
	if _, err := pod.Run(context.Background(), bad); !errors.Is(err, sandbox.ErrInvalid) {
		t.Errorf("Stdio without Detach: %v, want ErrInvalid", err)
	}
}

// TTY with Detach: the command's stdio and controlling terminal is a
// terminal of the pod, and the caller gets its master side.
func TestContainerTTYDetached(t *testing.T) {
	pod, _ := libPod(t)
	// Field 7 of stat: the controlling terminal, 0 for none.
	cc := detached("term", "sh", "-c", "test -t 0 && test -t 1 && set -- $(cat /proc/$$/stat) && test $7 != 0 && echo on-a-terminal; read x; echo got $x")
	cc.TTY = true
	p := runWith(t, pod, cc)
	m := p.PTY()
	if m == nil {
		t.Fatal("no pty master")
	}
	defer m.Close()
	r := bufio.NewReader(m)
	line, err := r.ReadString('\n')
	if !strings.Contains(line, "on-a-terminal") {
		t.Fatalf("from the terminal: %q %v", line, err)
	}
	m.WriteString("x\n")
	var all string
	for !strings.Contains(all, "got x") {
		l, err := r.ReadString('\n')
		all += l
		if err != nil {
			break
		}
	}
	if !strings.Contains(all, "got x") {
		t.Errorf("from the terminal: %q", all)
	}
	wantExit(t, awaitStopped(t, pod, "term"), 0, "", time.Now().Add(-time.Minute))
}

// The CLI: ps --containers shows a stopped container's exit code; stop
// and rm POD/CONTAINER act on one container.
func TestContainerStopRmCLI(t *testing.T) {
	e := newEnv(t)
	pod, _ := e.create()
	e.must("run", "-d", "--name", "three", pod, "--", "sh", "-c", "exit 3")
	e.must("run", "-d", "--name", "long", pod, "--", "sleep", "100")
	var ps string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ps = e.must("ps", "--containers", "-a", pod)
		if containerRowField(ps, "three", 3) == "3" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.HasPrefix(ps, "POD ") || !strings.Contains(strings.SplitN(ps, "\n", 2)[0], "EXIT") ||
		containerRowField(ps, "three", 3) != "3" || containerRowField(ps, "long", 3) != "-" {
		t.Errorf("ps --containers -a:\n%s", ps)
	}
	if r := e.run("rm", pod+"/long"); r.code != 125 || !strings.Contains(r.stderr, "container long in pod "+pod+" is running") {
		t.Errorf("rm of a running container: %+v", r)
	}
	if out := e.must("stop", "-t", "5s", pod, "long"); out != "" {
		t.Errorf("stop printed %q", out)
	}
	ps = e.must("ps", "--containers", "-a", pod)
	if containerRowField(ps, "long", 2) != "stopped" || containerRowField(ps, "long", 3) != "143" {
		t.Errorf("after stop:\n%s", ps)
	}
	if r := e.run("stop", pod, "nosuch"); r.code != 125 || !strings.Contains(r.stderr, "no such container nosuch in pod "+pod) {
		t.Errorf("stop of an unknown container: %+v", r)
	}
	if out := e.must("rm", pod+"/long", pod+"/three"); out != pod+"/long\n"+pod+"/three\n" {
		t.Errorf("rm printed %q", out)
	}
	if r := e.run("rm", pod+"/long"); r.code != 125 || !strings.Contains(r.stderr, "no such container long in pod "+pod) {
		t.Errorf("second rm: %+v", r)
	}
	if r := e.run("rm", "-f", pod+"/long"); r.code != 0 {
		t.Errorf("rm -f of an unknown container: %+v", r)
	}
	if out := e.must("ps", "--containers", "-a", "-q", pod); out != "" {
		t.Errorf("containers left: %q", out)
	}
}

// containerRowField returns field i of the ps --containers row of name.
func containerRowField(ps, name string, i int) string {
	for _, line := range strings.Split(ps, "\n") {
		if f := strings.Fields(line); len(f) > i && f[1] == name {
			return f[i]
		}
	}
	return ""
}

// An attached container's terminal is its controlling terminal too, as
// exec -t's is.
func TestContainerTTYControlling(t *testing.T) {
	pod, _ := libPod(t)
	p := runWith(t, pod, sandbox.ContainerConfig{ExecConfig: sandbox.ExecConfig{TTY: true,
		Args: []string{"sh", "-c", "set -- $(cat /proc/$$/stat); echo ctty=$7"}}})
	out, _ := io.ReadAll(p.PTY()) // until the terminal is closed (EIO)
	p.PTY().Close()
	if code, err := p.Wait(); code != 0 || err != nil || !strings.Contains(string(out), "ctty=") || strings.Contains(string(out), "ctty=0\r") {
		t.Errorf("attached run -t: %d %v %q", code, err, out)
	}
}

// RemoveContainer ends every process of the container, not only its main
// one: a child it left behind (which lives on as pause's) would otherwise
// keep the container's cgroup busy, and the remove failed (critest's image
// identifier spec hit it).
func TestRemoveContainerKillsLeftProcesses(t *testing.T) {
	pod, _ := libPod(t)
	ctx := context.Background()
	runWith(t, pod, detached("parent", "sh", "-c", "sleep 1000 & exec sleep 999"))
	cs, err := pod.Container("parent")
	if err != nil {
		t.Fatal(err)
	}
	procs := filepath.Join("/sys/fs/cgroup/pids", cs.Cgroup, "cgroup.procs")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, err := os.ReadFile(procs)
		if err != nil {
			t.Fatal(err)
		}
		if len(strings.Fields(string(b))) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container's cgroup holds %q, want 2 processes", b)
		}
	}
	if err := pod.RemoveContainer(ctx, "parent", true); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(procs)); err == nil {
		t.Errorf("cgroup %s left", cs.Cgroup)
	}
}
