package crilog

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// loggerBin is podsb-logger, built once by TestMain.
var loggerBin string

func TestMain(m *testing.M) {
	if os.Getenv("CRILOG_TEST_STARTER") != "" {
		starter()
	}
	dir, err := os.MkdirTemp("", "crilog-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	loggerBin = filepath.Join(dir, BinaryName)
	cmd := exec.Command("go", "build", "-o", loggerBin, "github.com/podsb/podsb/cmd/podsb-logger")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build podsb-logger: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// starter is the test binary run as a CRI server stand-in: it starts a
// logger on fds 3 and 4, prints its PID, and waits to be killed.
func starter() {
	h, err := Start(Options{Binary: os.Getenv("CRILOG_TEST_STARTER"), LogPath: os.Getenv("CRILOG_TEST_LOG"), Socket: os.Getenv("CRILOG_TEST_SOCKET"),
		Stdout: os.NewFile(3, "stdout"), Stderr: os.NewFile(4, "stderr")})
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println(h.PID)
	select {}
}

// ctr is a "container": a shell whose output goes through a logger.
type ctr struct {
	t      *testing.T
	dir    string
	log    string // the log path
	socket string
	h      *Handle
	cmd    *exec.Cmd
	stdin  *os.File // the test's end of the shell's stdin, when the test holds it
	diag   string   // the logger's stderr
	exited chan error
	// loggerDone is closed once the logger was reaped, with loggerErr.
	loggerDone chan struct{}
	loggerErr  error
}

// ctrOpts says how to start a ctr.
type ctrOpts struct {
	script    string
	dir       string // "" : a fresh temporary directory
	logDir    string // "": dir
	stdin     string // "": /dev/null; "test": a pipe the test writes (c.stdin); "logger": a pipe the logger holds
	stdinOnce bool
	tty       bool // the shell runs on a terminal; the logger holds its master (and its input)
}

// startCtr starts a logger, then the shell, as podsb-cri will; Cleanup
// kills what is left and checks that both processes are gone.
func startCtr(t *testing.T, o ctrOpts) *ctr {
	t.Helper()
	dir := o.dir
	if dir == "" {
		dir = t.TempDir()
	}
	logDir := o.logDir
	if logDir == "" {
		logDir = dir
	}
	c := &ctr{t: t, dir: dir, log: filepath.Join(logDir, "ctr.log"), socket: filepath.Join(dir, "ctr.sock"), exited: make(chan error, 1)}
	diag, err := os.Create(filepath.Join(dir, "diag"))
	if err != nil {
		t.Fatal(err)
	}
	defer diag.Close()
	c.diag = diag.Name()
	opts := Options{Binary: loggerBin, LogPath: c.log, Socket: c.socket, Diag: diag, StdinOnce: o.stdinOnce}
	cmd := exec.Command("/bin/sh", "-c", o.script)
	var theirs []*os.File // the shell's ends, closed once it started
	if o.tty {
		master, slave := openPTY(t)
		opts.PTY, opts.Stdin = master, o.stdin == "logger"
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
		defer master.Close()
		theirs = append(theirs, slave)
	} else {
		outR, outW := pipe(t)
		errR, errW := pipe(t)
		opts.Stdout, opts.Stderr = outR, errR
		cmd.Stdout, cmd.Stderr = outW, errW
		defer outR.Close()
		defer errR.Close()
		theirs = append(theirs, outW, errW)
		switch o.stdin {
		case "test":
			r, w := pipe(t)
			cmd.Stdin, c.stdin = r, w
			theirs = append(theirs, r)
		case "logger":
			r, w := pipe(t)
			cmd.Stdin, opts.Stdin, opts.StdinPipe = r, true, w
			defer w.Close()
			theirs = append(theirs, r)
		}
	}
	h, err := Start(opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	c.h = h
	c.loggerDone = make(chan struct{})
	go func() {
		c.loggerErr = h.Wait()
		close(c.loggerDone)
	}()
	t.Cleanup(c.cleanup)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.cmd = cmd
	for _, f := range theirs {
		f.Close()
	}
	go func() { c.exited <- cmd.Wait() }()
	return c
}

func pipe(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	return r, w
}

// cleanup kills the shell and the logger if they still run, reaps both,
// and checks that neither is left.
func (c *ctr) cleanup() {
	if c.stdin != nil {
		c.stdin.Close()
	}
	if c.cmd != nil {
		select {
		case <-c.exited:
		case <-time.After(10 * time.Second):
			c.t.Errorf("the shell (PID %d) still runs", c.cmd.Process.Pid)
			c.cmd.Process.Kill()
			<-c.exited
		}
	}
	select {
	case <-c.loggerDone:
	case <-time.After(10 * time.Second):
		c.t.Errorf("the logger (PID %d) still runs after its container's output ended", c.h.PID)
		syscall.Kill(c.h.PID, syscall.SIGKILL)
		<-c.loggerDone
	}
	pids := []int{c.h.PID}
	if c.cmd != nil {
		pids = append(pids, c.cmd.Process.Pid)
	}
	for _, pid := range pids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			c.t.Errorf("PID %d still exists after it was reaped", pid)
		}
	}
}

// wait waits for the logger to exit by itself and checks its socket is gone.
func (c *ctr) wait() {
	c.t.Helper()
	if c.stdin != nil {
		c.stdin.Close()
		c.stdin = nil
	}
	select {
	case <-c.loggerDone:
		if c.loggerErr != nil {
			c.t.Errorf("logger: %v", c.loggerErr)
		}
	case <-time.After(20 * time.Second):
		c.t.Fatalf("the logger did not exit after its container's output ended")
	}
	if _, err := os.Lstat(c.socket); !errors.Is(err, os.ErrNotExist) {
		c.t.Errorf("socket left after the logger exited: %v", err)
	}
}

// lines reads the log at path.
func readLog(t *testing.T, path string) []Line {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ls []Line
	r := bufio.NewReader(f)
	for {
		l, err := ReadLine(r)
		if errors.Is(err, io.EOF) {
			return ls
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		l.Content = append([]byte(nil), l.Content...)
		ls = append(ls, l)
	}
}

// text joins the contents of one stream's records as kubelet prints them.
func text(ls []Line, stream string) string {
	var b strings.Builder
	for _, l := range ls {
		if l.Stream == stream {
			b.Write(l.Content)
			if !l.Partial {
				b.WriteByte('\n')
			}
		}
	}
	return b.String()
}

// waitFor polls until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// logHas reports whether the log at path has s in a stream.
func logHas(t *testing.T, path, stream, s string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	var ls []Line
	for _, raw := range strings.SplitAfter(string(b), "\n") {
		if l, err := ParseLine([]byte(raw)); err == nil {
			ls = append(ls, l)
		}
	}
	return strings.Contains(text(ls, stream), s)
}

// rawClient is an attach connection driven frame by frame.
type rawClient struct {
	conn *net.UnixConn
	fr   *frameReader
}

// attachRaw attaches and returns once the logger answered: from then on
// the client gets every output.
func attachRaw(t *testing.T, socket string, stdin bool) *rawClient {
	t.Helper()
	conn, err := dial(context.Background(), "unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := writeFrame(conn, frameHello, []byte(hello{op: "attach", stdin: stdin}.String())); err != nil {
		t.Fatal(err)
	}
	c := &rawClient{conn: conn, fr: &frameReader{r: conn}}
	typ, p, err := c.fr.next()
	if err != nil || typ != frameHello {
		t.Fatalf("attach: %c %q %v", typ, p, err)
	}
	return c
}

// readAll reads output frames until 'X' and returns stdout and stderr.
func (c *rawClient) readAll(t *testing.T) (string, string) {
	t.Helper()
	var out, errb strings.Builder
	c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		typ, p, err := c.fr.next()
		if err != nil {
			t.Fatalf("attach: %v (after %d and %d bytes)", err, out.Len(), errb.Len())
		}
		switch typ {
		case frameStdout:
			out.Write(p)
		case frameStderr:
			errb.Write(p)
		case frameExit:
			return out.String(), errb.String()
		default:
			t.Fatalf("attach: frame %c %q", typ, p)
		}
	}
}
