package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/sandbox"
)

func TestExecExitCodes(t *testing.T) {
	e := newEnv(t)
	name, _ := e.create()
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"true"}, 0, ""},
		{[]string{"sh", "-c", "exit 3"}, 3, ""},
		{[]string{"/etc/hosts"}, 126, "not executable"},
		{[]string{"/etc"}, 126, "not executable"},
		{[]string{"no-such-command"}, 127, "command not found"},
		{[]string{"/no/such/path"}, 127, "command not found"},
		{[]string{"sh", "-c", "kill -9 $$"}, 128 + 9, ""},
		{[]string{"sh", "-c", "kill -TERM $$"}, 128 + 15, ""},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := e.run(append([]string{"exec", name, "--"}, tc.args...)...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.err) {
				t.Errorf("exit %d stderr %q, want %d and %q", r.code, r.stderr, tc.code, tc.err)
			}
		})
	}
}

func TestExecErrors(t *testing.T) {
	e := newEnv(t)
	name, d := e.create()
	wantFailure(t, e.run("exec", "nosuchpod", "--", "true"), "no such pod")
	wantFailure(t, e.run("exec", "../x", "--", "true"), "must match")
	wantFailure(t, e.run("exec", name), "requires at least 2 arg")
	wantFailure(t, e.run("exec", name, "--"), "no command")
	wantFailure(t, e.run("exec", "-t", "-d", name, "--", "true"), "cannot be used with -t or -i")
	wantFailure(t, e.run("exec", "-i", "-d", name, "--", "true"), "cannot be used with -t or -i")
	wantFailure(t, e.run("exec", "-w", "/nonexistent", name, "--", "true"), "not a directory in the pod")
	wantFailure(t, e.run("exec", "-u", "nosuchuser", name, "--", "true"), "nosuchuser")
	wantFailure(t, e.run("exec", "-w", "relative", name, "--", "true"), "not an absolute path")
	wantFailure(t, e.run("exec", "-e", "NOEQUALS", name, "--", "true"), "want KEY=VAL")
	// A pod whose pause died: a clear error, and the pod is unchanged.
	unix.Kill(d.Pid, unix.SIGKILL)
	waitDead(d.Pid, d.StartTime, 2*time.Second)
	before, _ := os.ReadFile(filepath.Join(e.root, name, "state.json"))
	wantFailure(t, e.run("exec", name, "--", "true"), "is not running")
	after, _ := os.ReadFile(filepath.Join(e.root, name, "state.json"))
	if !bytes.Equal(before, after) {
		t.Errorf("exec into a dead pod changed its state")
	}
}

func TestExecStdioEnvUserDir(t *testing.T) {
	e := newEnv(t)
	name, _ := e.create()
	// stdin round trip with -i; without -i stdin is /dev/null.
	cmd := exec.Command(e.bin, "--root", e.root, "exec", "-i", name, "--", "sh", "-c", "cat; echo err >&2")
	cmd.Stdin = strings.NewReader("line one\nline two\n")
	r := e.runCmd(cmd)
	if r.code != 0 || r.stdout != "line one\nline two\n" || r.stderr != "err\n" {
		t.Errorf("stdin round trip: %+v", r)
	}
	cmd = exec.Command(e.bin, "--root", e.root, "exec", name, "--", "cat")
	cmd.Stdin = strings.NewReader("ignored")
	if r := e.runCmd(cmd); r.code != 0 || r.stdout != "" {
		t.Errorf("stdin without -i: %+v", r)
	}
	// A clean environment: nothing of the caller's leaks in.
	cmd = exec.Command(e.bin, "--root", e.root, "exec", "-e", "FOO=bar", "-e", "PATH=/bin:/usr/bin", name, "--", "env")
	cmd.Env = append(os.Environ(), "PODSB_SECRET=leak")
	r = e.runCmd(cmd)
	env := strings.Fields(r.stdout)
	want := []string{"PATH=/bin:/usr/bin", "HOME=/root", "HOSTNAME=" + name, "FOO=bar"}
	for _, w := range want {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("env lacks %s: %v", w, env)
		}
	}
	if strings.Contains(r.stdout, "PODSB_SECRET") || len(env) > len(want)+1 { // +1: PWD set by no one? allow none
		t.Errorf("env: %v", env)
	}
	// User, group and working directory.
	if out := e.must("exec", "-u", "nobody", "-w", "/tmp", name, "--", "sh", "-c", "id -u; id -g; pwd"); out != "65534\n65534\n/tmp\n" {
		t.Errorf("-u nobody -w /tmp: %q", out)
	}
	if out := e.must("exec", "-u", "1234:5678", name, "--", "sh", "-c", "id -u; id -g"); out != "1234\n5678\n" {
		t.Errorf("-u 1234:5678: %q", out)
	}
}

// Only fds 0-2 reach the command, nothing of the host's filesystem or of
// podsb's state is reachable, and the launcher stays outside the pod.
func TestExecIsolation(t *testing.T) {
	e := newEnv(t)
	name, _ := e.create()
	leak, err := os.Open(e.root)
	if err != nil {
		t.Fatal(err)
	}
	defer leak.Close()
	cmd := exec.Command(e.bin, "--root", e.root, "exec", name, "--", "sh", "-c",
		"ls /proc/self/fd; readlink /proc/self/cwd /proc/self/root; test -e "+e.root+" && echo state-visible; cat /proc/1/comm; true")
	cmd.ExtraFiles = []*os.File{leak} // fd 3 of podsb, without close-on-exec
	r := e.runCmd(cmd)
	if r.code != 0 {
		t.Fatalf("%+v", r)
	}
	lines := strings.Fields(r.stdout)
	// ls lists 0 1 2 and the fd it opened for /proc/self/fd itself.
	if len(lines) < 4 || strings.Join(lines[:3], " ") != "0 1 2" || lines[4] != "/" || lines[5] != "/" || strings.Contains(r.stdout, "state-visible") || lines[6] != "pause" {
		t.Errorf("in the pod: %q", r.stdout)
	}
	if n, _ := strconv.Atoi(lines[3]); n != 3 {
		t.Errorf("fds of the command: %v", lines[:4])
	}
	// podsb exec itself is outside the pod's PID namespace.
	cmd = exec.Command(e.bin, "--root", e.root, "exec", name, "--", "sleep", "2")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if nsIno(t, fmt.Sprintf("/proc/%d/ns/pid", cmd.Process.Pid)) != nsIno(t, "/proc/self/ns/pid") {
		t.Errorf("podsb exec joined the pod's PID namespace")
	}
	cmd.Process.Kill()
	cmd.Wait()
}

func TestExecSignalsForwarded(t *testing.T) {
	e := newEnv(t)
	name, _ := e.create()
	for _, sig := range []syscall.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGUSR1, unix.SIGUSR2, unix.SIGQUIT} {
		t.Run(sig.String(), func(t *testing.T) {
			var out syncBuffer
			n := strconv.Itoa(int(sig))
			cmd := exec.Command(e.bin, "--root", e.root, "exec", name, "--", "sh", "-c",
				"trap 'echo got "+n+"; exit 7' "+n+"; echo ready; while :; do sleep 0.05; done")
			cmd.Stdout = &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(3 * time.Second)
			for !strings.Contains(out.String(), "ready") && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			cmd.Process.Signal(sig)
			err := cmd.Wait()
			if cmd.ProcessState.ExitCode() != 7 || !strings.Contains(out.String(), "got "+n) {
				t.Errorf("after %v: %v %q", sig, err, out.String())
			}
		})
	}
}

// If podsb exec is SIGKILLed, the command dies with it (PR_SET_PDEATHSIG)
// and nothing stays unreaped.
func TestExecKilledLauncherTakesCommand(t *testing.T) {
	e := newEnv(t)
	name, d := e.create()
	cmd := exec.Command(e.bin, "--root", e.root, "exec", name, "--", "sh", "-c", "sleep 100 & sleep 100")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for len(podHostPIDs(t, d)) < 4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(podHostPIDs(t, d)); n != 4 {
		t.Fatalf("pod has %d processes, want pause, sh and two sleeps", n)
	}
	cmd.Process.Kill()
	cmd.Wait()
	// sh dies with podsb exec at once. Its parent was outside the pod, so
	// the host's init reaps it (lazily, on some machines); its children are
	// orphans of the pod, adopted by pause.
	var procs string
	deadline = time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		procs = e.must("top", name)
		if !strings.Contains(procs, "sh -c") || strings.Contains(procs, "Z (zombie)") {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if strings.Contains(procs, "S (sleeping)   sh -c") {
		t.Fatalf("the command outlived podsb exec:\n%s", procs)
	}
	sleeps := 0
	for _, line := range strings.Split(procs, "\n") {
		if f := strings.Fields(line); len(f) > 2 && strings.HasSuffix(line, "sleep 100") {
			sleeps++
			if f[2] != "1" {
				t.Errorf("orphan not adopted by pause: %s", line)
			}
		}
	}
	if sleeps != 2 {
		t.Errorf("want both sleeps adopted by pause:\n%s", procs)
	}
	// Nothing stays unreaped: the zombie goes when the host's init reaps.
	deadline = time.Now().Add(30 * time.Second)
	for strings.Contains(e.must("top", name), "[sh]") {
		if time.Now().After(deadline) {
			t.Fatalf("the command's zombie was never reaped")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestExecDetachAdoptedByPauseAndLogs(t *testing.T) {
	e := newEnv(t)
	name, d := e.create()
	// The command lives until the test has looked at it: a fixed sleep
	// was too short on a loaded machine.
	out := e.must("exec", "-d", name, "--", "sh", "-c", "echo to-stdout; echo to-stderr >&2; while [ ! -e /tmp/go ]; do sleep 0.02; done; echo late")
	pid, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("exec -d printed %q", out)
	}
	// Inside the pod its parent is pause (PID 1); from the host, pause's
	// host PID.
	r := e.inPod(name, "cat", fmt.Sprintf("/proc/%d/status", pid))
	if !strings.Contains(r.stdout, "\nPPid:\t1\n") {
		t.Errorf("parent in the pod: %q %q", r.stdout, r.stderr)
	}
	var host int
	for _, p := range podHostPIDs(t, d) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid))
		if strings.Contains(string(b), fmt.Sprintf("NSpid:\t%d\t%d\n", p.pid, pid)) {
			host = p.pid
		}
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", host))
	if f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:])); len(f) < 2 || f[1] != strconv.Itoa(d.Pid) {
		t.Errorf("host parent of %d: %v, want pause %d", host, f, d.Pid)
	}
	if r := e.inPod(name, "touch", "/tmp/go"); r.code != 0 {
		t.Fatalf("touch /tmp/go in the pod: %+v", r)
	}
	// logs -f follows until the command exits, then pause reaps it.
	logs := e.must("logs", "-f", name, strconv.Itoa(pid))
	if logs != "to-stdout\nto-stderr\nlate\n" {
		t.Errorf("logs: %q", logs)
	}
	if top := e.must("top", name); strings.Count(strings.TrimSpace(top), "\n") != 1 {
		t.Errorf("after exit:\n%s", top)
	}
	if logs := e.must("logs", name); logs != "to-stdout\nto-stderr\nlate\n" {
		t.Errorf("logs without PID: %q", logs)
	}
	wantFailure(t, e.run("logs", name, "999"), "no log of PID 999")
	wantFailure(t, e.run("logs", name, "0"), "not a number")
	wantFailure(t, e.run("logs", name, "x"), "no such container x")
	// Detached command not found: 127, no log left behind.
	if r := e.run("exec", "-d", name, "--", "no-such-command"); r.code != 127 {
		t.Errorf("exec -d of a missing command: %+v", r)
	}
}

func TestExecTTY(t *testing.T) {
	e := newEnv(t)
	name, _ := e.create()
	// script gives podsb a real terminal; stty -g before and after shows
	// that podsb restored it.
	line := fmt.Sprintf("stty -g; %s --root %s exec -t %s -- sh -c 'tty; test -t 0 && echo interactive; echo $TERM'; stty -g", e.bin, e.root, name)
	r := e.runCmd(exec.Command("script", "-qec", line, "/dev/null"))
	lines := strings.Split(strings.ReplaceAll(strings.TrimSpace(r.stdout), "\r", ""), "\n")
	if r.code != 0 || len(lines) != 5 {
		t.Fatalf("under script: %+v %q", r, lines)
	}
	if lines[1] != "/dev/pts/0" || lines[2] != "interactive" || lines[3] != "xterm" {
		t.Errorf("in the pod: %q", lines[1:4])
	}
	if lines[0] != lines[4] {
		t.Errorf("terminal not restored: %q then %q", lines[0], lines[4])
	}
}

// An orphan storm: the pod's processes fork 1000 children and exit before
// them; pause adopts and reaps every one.
func TestExecOrphanStormReaped(t *testing.T) {
	e := newEnv(t)
	name, d := e.create()
	e.must("exec", name, "--", "sh", "-c", "for i in $(seq 1000); do (sleep 0.01 &) ; done")
	deadline := time.Now().Add(5 * time.Second)
	for {
		zombies, total := 0, 0
		for _, p := range podHostPIDs(t, d) {
			total++
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid))
			if f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:])); len(f) > 0 && f[0] == "Z" {
				zombies++
			}
		}
		if zombies == 0 && total == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d zombies, %d processes left in the pod", zombies, total)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestExecConcurrent(t *testing.T) {
	e := newEnv(t)
	name, _ := e.create()
	const n = 100
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.run("exec", name, "--", "sh", "-c", fmt.Sprintf("echo %d; exit %d", i, i%5))
			if r.code != i%5 || r.stdout != fmt.Sprintf("%d\n", i) {
				errs <- fmt.Sprintf("exec %d: %+v", i, r)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// The Go API: a test suite runs commands in a pod and reads their output.
func TestLibraryExec(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	pod, err := sandbox.Create(ctx, sandbox.Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	st := pod.State()
	t.Cleanup(func() {
		pod.Remove(ctx, sandbox.RemoveOptions{Force: true})
		checkNoLeaks(t, root, map[string]bool{pod.Name(): true}, map[int]uint64{st.Pid: st.StartTime})
	})
	var out, errb bytes.Buffer
	p, err := pod.Exec(ctx, sandbox.ExecConfig{
		Args:   []string{"sh", "-c", "read x; echo got $x; echo oops >&2; exit 4"},
		Stdin:  strings.NewReader("hello\n"),
		Stdout: &out,
		Stderr: &errb,
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.PodPID() <= 1 || p.Pid() <= 0 {
		t.Errorf("pids: pod %d host %d", p.PodPID(), p.Pid())
	}
	code, err := p.Wait()
	if err != nil || code != 4 || out.String() != "got hello\n" || errb.String() != "oops\n" {
		t.Errorf("wait: %d %v %q %q", code, err, out.String(), errb.String())
	}
	p, err = pod.Exec(ctx, sandbox.ExecConfig{Args: []string{"sleep", "100"}})
	if err != nil {
		t.Fatal(err)
	}
	p.Signal(unix.SIGTERM)
	if code, err := p.Wait(); code != 128+15 || err != nil {
		t.Errorf("signalled: %d %v", code, err)
	}
	if _, err := pod.Exec(ctx, sandbox.ExecConfig{Args: []string{"nope"}}); !errorsIs(err, sandbox.ErrCommandNotFound) {
		t.Errorf("missing command: %v", err)
	}
}

// syncBuffer is a bytes.Buffer safe to read while a command writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestExecNoHostTerminal: a command started by exec or run, attached or
// not, has no controlling terminal of the host's, so it cannot write to it
// through /dev/tty (or push input into it with TIOCSTI).
func TestExecNoHostTerminal(t *testing.T) {
	e := newEnv(t)
	name, _ := e.create()
	probe := "if echo leak > /dev/tty; then echo REACHED; else echo isolated; fi"
	for _, args := range [][]string{
		{"exec", name, "--", "sh", "-c", probe},
		{"exec", "-i", name, "--", "sh", "-c", probe},
		{"run", name, "--", "sh", "-c", probe},
	} {
		for _, fast := range []string{"1", "0"} {
			line := fmt.Sprintf("PODSB_FASTEXEC=%s %s --root %s %s", fast, e.bin, e.root, shellQuote(args))
			r := e.runCmd(exec.Command("script", "-qec", line, "/dev/null"))
			if r.code != 0 || !strings.Contains(r.stdout, "isolated") || strings.Contains(r.stdout, "REACHED") {
				t.Errorf("%s (PODSB_FASTEXEC=%s) under script: %+v", strings.Join(args, " "), fast, r)
			}
		}
	}
}

func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
