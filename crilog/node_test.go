package crilog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nodeCtr is a "container" of a node logger: the test holds the write
// ends of its output pipes.
type nodeTestCtr struct {
	id, log, socket string
	out, err        *os.File
}

func addNodeCtr(t *testing.T, n *Node, dir, id string) *nodeTestCtr {
	t.Helper()
	outR, outW := pipe(t)
	errR, errW := pipe(t)
	c := &nodeTestCtr{id: id, log: filepath.Join(dir, id+".log"), socket: filepath.Join(dir, id+".sock"), out: outW, err: errW}
	if err := n.Add(id, Options{LogPath: c.log, Socket: c.socket, Stdout: outR, Stderr: errR}); err != nil {
		t.Fatal(err)
	}
	outR.Close()
	errR.Close()
	t.Cleanup(func() { outW.Close(); errW.Close() })
	return c
}

// say writes a line to c's stdout and waits until the log has it; the
// write must not block for long (the node logger, or the Node holding the
// pipe while it replaces it, takes the output).
func (c *nodeTestCtr) say(t *testing.T, s string) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := c.out.WriteString(s + "\n")
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("write %q: %v", s, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("write %q blocked", s)
	}
	waitFor(t, fmt.Sprintf("%q in %s", s, c.log), func() bool { return logHas(t, c.log, Stdout, s) })
}

func alive(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil }

func waitGone(t *testing.T, pid int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("node logger %d exited", pid), func() bool { return !alive(pid) })
}

// TestNodeLoggerKilled: a node logger killed with SIGKILL while a container
// writes (more than a pipe holds) is replaced, and the output after that is
// logged; once its containers ended and the server disconnected, the node
// logger exits.
func TestNodeLoggerKilled(t *testing.T) {
	dir := t.TempDir()
	n := NewNode(NodeOptions{Binary: loggerBin, Control: filepath.Join(dir, "logger.sock")})
	defer n.Close()
	a, b := addNodeCtr(t, n, dir, "a"), addNodeCtr(t, n, dir, "b")
	a.say(t, "before")
	pid := n.PID()
	if !alive(pid) {
		t.Fatalf("node logger PID %d", pid)
	}
	// Writes in flight as it dies: 1 MiB, more than the pipe holds.
	written := make(chan error, 1)
	go func() {
		_, err := b.out.WriteString(strings.Repeat(strings.Repeat("x", 99)+"\n", 10<<10) + "flood done\n")
		written <- err
	}()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
	select {
	case err := <-written:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the container's writes blocked after its node logger was killed")
	}
	a.say(t, "after")
	waitFor(t, "the flood's end in b's log", func() bool { return logHas(t, b.log, Stdout, "flood done") })
	if p := n.PID(); p == pid || !alive(p) {
		t.Fatalf("node logger after the kill: PID %d (was %d)", p, pid)
	}
	// Attach and reopen go to the new node logger.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Reopen(ctx, a.socket); err != nil {
		t.Fatalf("reopen after the replacement: %v", err)
	}
	newPID := n.PID()
	for _, c := range []*nodeTestCtr{a, b} {
		c.out.Close()
		c.err.Close()
		if err := Attach(ctx, c.socket, nil, nil, nil, nil); err != nil && !errors.Is(err, ErrEnded) {
			t.Fatalf("attach until %s ended: %v", c.id, err)
		}
	}
	n.Close()
	waitGone(t, newPID)
	if _, err := os.Lstat(filepath.Join(dir, "logger.sock")); err == nil {
		t.Error("the node logger left its control socket")
	}
}

// TestNodeServerRestart: a server that restarts (a new Node) takes the
// outputs back from the node logger, so that when the node logger is then
// killed, the new server replaces it and no output is lost.
func TestNodeServerRestart(t *testing.T) {
	dir := t.TempDir()
	control := filepath.Join(dir, "logger.sock")
	n1 := NewNode(NodeOptions{Binary: loggerBin, Control: control})
	a := addNodeCtr(t, n1, dir, "a")
	a.say(t, "one")
	pid := n1.PID()
	n1.Close() // as the server's death closes its fds
	a.say(t, "two")
	if !alive(pid) {
		t.Fatal("the node logger exited with a container to serve")
	}
	n2 := NewNode(NodeOptions{Binary: loggerBin, Control: control})
	defer n2.Close()
	b := addNodeCtr(t, n2, dir, "b")
	b.say(t, "b one")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
	a.say(t, "three")
	b.say(t, "b two")
	newPID := n2.PID()
	if !alive(newPID) || newPID == pid {
		t.Fatalf("node logger after the kill: PID %d (was %d)", newPID, pid)
	}
	if got := text(readLog(t, a.log), Stdout); got != "one\ntwo\nthree\n" {
		t.Errorf("a's log: %q", got)
	}
	a.out.Close()
	a.err.Close()
	b.out.Close()
	b.err.Close()
	n2.Close()
	waitGone(t, newPID)
}

// TestNodeBadAdds: bad containers are refused with a reason, and the node
// logger goes on serving the others.
func TestNodeBadAdds(t *testing.T) {
	dir := t.TempDir()
	n := NewNode(NodeOptions{Binary: loggerBin, Control: filepath.Join(dir, "logger.sock")})
	defer n.Close()
	a := addNodeCtr(t, n, dir, "a")
	outR, outW := pipe(t)
	errR, errW := pipe(t)
	defer outW.Close()
	defer errW.Close()
	for _, tc := range []struct {
		id   string
		o    Options
		want string
	}{
		{"a", Options{LogPath: filepath.Join(dir, "a2.log"), Socket: filepath.Join(dir, "a2.sock"), Stdout: outR, Stderr: errR}, "served already"},
		{"c", Options{LogPath: "rel.log", Socket: filepath.Join(dir, "c.sock"), Stdout: outR, Stderr: errR}, "absolute"},
		{"d", Options{LogPath: filepath.Join(dir, "nodir", "d.log"), Socket: filepath.Join(dir, "d.sock"), Stdout: outR, Stderr: errR}, "open log"},
		{"e", Options{LogPath: filepath.Join(dir, "e.log"), Socket: filepath.Join(dir, "e.sock"), Stdout: outW, Stderr: errR}, "not open for reading"},
		{"f/g", Options{LogPath: filepath.Join(dir, "f.log"), Socket: filepath.Join(dir, "f.sock"), Stdout: outR, Stderr: errR}, "bad container spec"},
	} {
		if err := n.Add(tc.id, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("add %s: %v, want %q", tc.id, err, tc.want)
		}
	}
	a.say(t, "still")
}

// TestNodeTerminal: a terminal container served by the node logger takes
// input and window sizes through attach, before and after the node logger
// was killed and replaced (the server holds the terminal's master, which
// carries its input too); it ends, and is forgotten, when its shell exits.
func TestNodeTerminal(t *testing.T) {
	dir := t.TempDir()
	n := NewNode(NodeOptions{Binary: loggerBin, Control: filepath.Join(dir, "logger.sock")})
	defer n.Close()
	master, slave := openPTY(t)
	log, sock := filepath.Join(dir, "t.log"), filepath.Join(dir, "t.sock")
	if err := n.Add("t", Options{LogPath: log, Socket: sock, PTY: master, Stdin: true}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-c", `stty -echo; for i in 1 2; do read x; echo "got-$x $(stty size)"; done`)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	master.Close()
	slave.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// One attach sends the size, another the input; both end with ctx,
	// once the log has the answer.
	talkAsync := func(in string, w, h uint16, want string) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		resize := make(chan Size, 1)
		resize <- Size{Width: w, Height: h}
		go Attach(ctx, sock, nil, nil, nil, resize)
		time.Sleep(300 * time.Millisecond)
		go Attach(ctx, sock, strings.NewReader(in), nil, nil, nil)
		waitFor(t, want+" in the log", func() bool { return logHas(t, log, Stdout, want) })
	}
	talkAsync("one\n", 100, 40, "got-one 40 100")
	pid := n.PID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
	waitFor(t, "a new node logger", func() bool { p := n.PID(); return p != pid && alive(p) })
	talkAsync("two\n", 132, 50, "got-two 50 132")
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("shell: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the shell did not exit")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Attach(ctx, sock, nil, nil, nil, nil); err != nil && !errors.Is(err, ErrEnded) {
		t.Fatalf("attach until the end: %v", err)
	}
	waitFor(t, "the node to forget t", func() bool {
		n.hmu.Lock()
		defer n.hmu.Unlock()
		_, ok := n.held["t"]
		return !ok
	})
}
