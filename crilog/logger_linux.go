package crilog

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Exit codes of podsb-logger.
const (
	ExitOK    = 0 // the container's output ended; everything was written or reported
	ExitStart = 1 // it could not start: the log or the socket (the reason on stderr and the ready fd)
	ExitUsage = 2 // bad flags or file descriptors
)

// config is podsb-logger's command line.
type config struct {
	logPath, socket                    string
	stdin, stdinOnce                   bool
	stdoutFD, stderrFD, stdinFD, ptyFD int
	readyFD                            int
}

// usageError is a bad command line: ExitUsage.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func parseArgs(args []string) (config, error) {
	fs := flag.NewFlagSet("podsb-logger", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var c config
	fs.StringVar(&c.logPath, "log-path", "", "")
	fs.StringVar(&c.socket, "socket", "", "")
	fs.BoolVar(&c.stdin, "stdin", false, "")
	fs.BoolVar(&c.stdinOnce, "stdin-once", false, "")
	fs.IntVar(&c.stdoutFD, "stdout-fd", -1, "")
	fs.IntVar(&c.stderrFD, "stderr-fd", -1, "")
	fs.IntVar(&c.stdinFD, "stdin-fd", -1, "")
	fs.IntVar(&c.ptyFD, "pty-fd", -1, "")
	fs.IntVar(&c.readyFD, "ready-fd", -1, "")
	if err := fs.Parse(args); err != nil {
		return c, usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return c, usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	bad := func(format string, a ...any) (config, error) { return c, usageError{fmt.Sprintf(format, a...)} }
	if c.readyFD >= 0 {
		if _, err := unix.FcntlInt(uintptr(c.readyFD), unix.F_GETFL, 0); err != nil || c.readyFD < 3 {
			fd := c.readyFD
			c.readyFD = -1
			return bad("--ready-fd %d: not an open fd of 3 or more", fd)
		}
	}
	return c, c.check()
}

// check checks a container's paths, flags and fds.
func (c config) check() error {
	bad := func(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }
	switch {
	case c.logPath == "" || !filepath.IsAbs(c.logPath):
		return bad("--log-path must be an absolute path, got %q", c.logPath)
	case c.socket == "" || !filepath.IsAbs(c.socket):
		return bad("--socket must be an absolute path, got %q", c.socket)
	case c.stdinOnce && !c.stdin:
		return bad("--stdin-once needs --stdin")
	}
	if c.ptyFD >= 0 {
		if c.stdoutFD >= 0 || c.stderrFD >= 0 || c.stdinFD >= 0 {
			return bad("--pty-fd takes no --stdout-fd, --stderr-fd or --stdin-fd: the terminal carries them all")
		}
		return checkFDs(c, []namedFD{{c.ptyFD, "pty"}})
	}
	if c.stdoutFD < 0 || c.stderrFD < 0 {
		return bad("want --stdout-fd and --stderr-fd (pipes), or --pty-fd (a terminal)")
	}
	if c.stdin != (c.stdinFD >= 0) {
		return bad("--stdin and --stdin-fd go together without --pty-fd")
	}
	fds := []namedFD{{c.stdoutFD, "stdout"}, {c.stderrFD, "stderr"}}
	if c.stdinFD >= 0 {
		fds = append(fds, namedFD{c.stdinFD, "stdin"})
	}
	return checkFDs(c, fds)
}

type namedFD struct {
	fd   int
	what string
}

// checkFDs checks that the fds are distinct, open and readable (output)
// or writable (stdin), a terminal for pty.
func checkFDs(c config, fds []namedFD) error {
	seen := map[int]bool{c.readyFD: true}
	for _, nf := range fds {
		fd, what := nf.fd, nf.what
		if fd < 3 || seen[fd] {
			return usageError{fmt.Sprintf("--%s-fd %d: must be 3 or more and differ from the other fds", what, fd)}
		}
		seen[fd] = true
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if err != nil {
			return usageError{fmt.Sprintf("--%s-fd %d: %v", what, fd, err)}
		}
		mode := fl & unix.O_ACCMODE
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return usageError{fmt.Sprintf("--%s-fd %d: %v", what, fd, err)}
		}
		typ := st.Mode & unix.S_IFMT
		switch {
		case what == "pty" && typ != unix.S_IFCHR, what != "pty" && typ != unix.S_IFIFO && typ != unix.S_IFSOCK:
			return usageError{fmt.Sprintf("--%s-fd %d: not a %s", what, fd, map[bool]string{true: "terminal", false: "pipe or socket"}[what == "pty"])}
		case what == "pty":
			if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err != nil || mode != unix.O_RDWR {
				return usageError{fmt.Sprintf("--pty-fd %d: not a terminal opened read-write", fd)}
			}
		case what == "stdin" && mode == unix.O_RDONLY:
			return usageError{fmt.Sprintf("--stdin-fd %d: not open for writing", fd)}
		case what != "stdin" && mode == unix.O_WRONLY:
			return usageError{fmt.Sprintf("--%s-fd %d: not open for reading", what, fd)}
		}
	}
	return nil
}

// Main is podsb-logger's main: it serves one container until its output
// ends and returns the exit code. Errors go to stderr as one
// "podsb-logger: " line each.
func Main(args []string, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "--node" {
		return nodeMain(args[1:], stderr)
	}
	c, err := parseArgs(args)
	if err != nil {
		report(stderr, c.readyFD, err)
		return ExitUsage
	}
	// A logger that dies breaks its container's pipes: ignore the signals
	// a terminal, a starter or a shutdown sends; SIGKILL still ends it.
	// Writes to vanished clients return EPIPE instead of killing it.
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE)
	// Leave the starter's session (Start already starts it in a new one).
	_, _ = unix.Setsid()
	l, err := newLogger(c, stderr)
	if err != nil {
		report(stderr, c.readyFD, err)
		return ExitStart
	}
	if c.readyFD >= 0 {
		_, _ = unix.Write(c.readyFD, []byte(readyMsg))
		unix.Close(c.readyFD)
	}
	l.run()
	return ExitOK
}

// readyMsg is what the logger writes to its ready fd once it serves its
// socket; anything else is the error it exits with.
const readyMsg = "ready\n"

func report(stderr io.Writer, readyFD int, err error) {
	msg := "podsb-logger: " + strings.ReplaceAll(err.Error(), "\n", " ") + "\n"
	io.WriteString(stderr, msg)
	if readyFD >= 0 {
		_, _ = unix.Write(readyFD, []byte(msg))
	}
}

// logger is one container's log writer and attach server.
type logger struct {
	c     config
	diag  io.Writer // the logger's stderr: write errors are reported there
	ln    *net.UnixListener
	out   []*os.File // output: the pty, or stdout and stderr
	ptyFD int        // -1 without a terminal

	logMu   sync.Mutex // guards the fields below it
	log     *os.File
	logErr  error // the last write error, while writes fail
	dropped int64 // bytes of records lost while writes fail
	torn    bool  // a record was written in part: start the next on a new line

	stdin       *os.File    // nil without stdin; the pty with a terminal
	stdinClosed atomic.Bool // stdin-once ended it, or the output ended
	stdinMu     sync.Mutex  // serializes input; guards lastInput
	lastInput   byte        // the last byte written to a terminal

	mu        sync.Mutex // guards the fields below it
	clients   map[*client]struct{}
	onceTaken bool // stdin-once: the first attach with stdin came
	ended     bool // the output ended
}

func newLogger(c config, diag io.Writer) (*logger, error) {
	l := &logger{c: c, diag: diag, ptyFD: -1, clients: map[*client]struct{}{}}
	open := func(fd int, name string) *os.File {
		// Non-blocking, so that reads and writes go through Go's poller
		// and take no thread each.
		_ = unix.SetNonblock(fd, true)
		return os.NewFile(uintptr(fd), name)
	}
	if c.ptyFD >= 0 {
		l.ptyFD = c.ptyFD
		pty := open(c.ptyFD, "pty")
		l.out = []*os.File{pty}
		if c.stdin {
			l.stdin = pty
		}
	} else {
		l.out = []*os.File{open(c.stdoutFD, Stdout), open(c.stderrFD, Stderr)}
		if c.stdin {
			l.stdin = open(c.stdinFD, "stdin")
		}
	}
	_, statErr := os.Lstat(c.logPath)
	log, err := openLog(c.logPath)
	if err != nil {
		return nil, err
	}
	l.log = log
	if l.ln, err = listenFresh("unix", c.socket); err != nil {
		log.Close()
		if errors.Is(statErr, os.ErrNotExist) {
			os.Remove(c.logPath) // leave nothing of a failed start
		}
		return nil, err
	}
	return l, nil
}

// openLog opens the log for appending, made 0640 as kubelet's runtimes
// make it; its directory must exist.
// A log it creates is made 0640 whatever the umask (a node logger's is
// 0177, for its sockets).
func openLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o640)
	if err == nil {
		if err = f.Chmod(0o640); err != nil {
			f.Close()
			return nil, fmt.Errorf("open log: %w", err)
		}
		return f, nil
	}
	if errors.Is(err, os.ErrExist) {
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	return f, nil
}

// listenFresh listens on path, of network "unix" or "unixpacket",
// replacing a stale socket (one nobody accepts on: a logger that was
// killed) but not a live one or another file.
func listenFresh(network, path string) (*net.UnixListener, error) {
	ln, err := listen(network, path)
	if err == nil || !errors.Is(err, unix.EADDRINUSE) {
		return ln, err
	}
	if fi, serr := os.Lstat(path); serr != nil || fi.Mode().Type() != os.ModeSocket {
		return nil, fmt.Errorf("listen on %s: the path exists and is not a socket", path)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	conn, cerr := dial(ctx, network, path)
	cancel()
	if cerr == nil {
		conn.Close()
		return nil, fmt.Errorf("listen on %s: another logger serves it", path)
	}
	if err := os.Remove(path); err != nil {
		return nil, fmt.Errorf("remove stale socket: %w", err)
	}
	return listen(network, path)
}

// run serves until the output ends, then finishes: the last partial lines
// written, stdin closed, clients told, the socket removed, the log closed.
func (l *logger) run() {
	go l.accept()
	var wg sync.WaitGroup
	for i, f := range l.out {
		typ, stream := byte(frameStdout), Stdout
		if i == 1 {
			typ, stream = frameStderr, Stderr
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.copyOutput(f, typ, stream)
		}()
	}
	wg.Wait()

	l.ln.Close()
	os.Remove(l.c.socket)
	// Close stdin without its lock: a client may be blocked writing to a
	// process that no longer reads; Close wakes it.
	if l.stdin != nil && l.stdinClosed.CompareAndSwap(false, true) && l.ptyFD < 0 {
		l.stdin.Close()
	}
	l.mu.Lock()
	l.ended = true
	clients := l.clients
	l.clients = nil
	l.mu.Unlock()
	var cw sync.WaitGroup
	for c := range clients {
		cw.Add(1)
		go func() {
			defer cw.Done()
			c.finish()
		}()
	}
	cw.Wait()
	for _, f := range l.out {
		f.Close()
	}
	l.logMu.Lock()
	l.log.Close()
	l.logMu.Unlock()
}

// readBufs are the buffers output is read into, and recBufs those records
// are made in: taken for one read once the output is readable, so that an
// idle container holds neither (a node logger serves many).
var (
	readBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
	recBufs  = sync.Pool{New: func() any { b := make([]byte, 0, 40<<10); return &b }}
)

// maxPooledRec is the largest record buffer kept for reuse (32 KiB of
// empty lines make 1.3 MiB of records).
const maxPooledRec = 256 << 10

// copyOutput reads one output until its end (EOF; EIO on a terminal once
// no process holds its other side) and writes it to the log and to the
// attached clients.
func (l *logger) copyOutput(f *os.File, typ byte, stream string) {
	split := lineSplitter{stream: stream}
	rc, err := f.SyscallConn()
	for err == nil {
		var bp *[]byte
		var n int
		var rerr error
		err = rc.Read(func(fd uintptr) bool {
			bp = readBufs.Get().(*[]byte)
			for {
				n, rerr = unix.Read(int(fd), *bp)
				if rerr != unix.EINTR {
					break
				}
			}
			if rerr == unix.EAGAIN {
				readBufs.Put(bp)
				bp = nil
				return false // wait until it is readable
			}
			return true
		})
		switch {
		case err == nil && rerr != nil:
			err, n = rerr, 0
		case err == nil && n == 0:
			err = io.EOF
		}
		if n > 0 {
			rp := recBufs.Get().(*[]byte)
			rec := split.add((*rp)[:0], time.Now(), (*bp)[:n])
			l.writeLog(rec)
			l.broadcast(typ, (*bp)[:n])
			if cap(rec) <= maxPooledRec {
				*rp = rec[:0]
				recBufs.Put(rp)
			}
		}
		if bp != nil {
			readBufs.Put(bp)
		}
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, unix.EIO) {
		fmt.Fprintf(l.diag, "podsb-logger: read %s: %v\n", stream, err)
	}
	l.writeLog(split.flush(nil, time.Now()))
}

// writeLog appends records to the log. A failing write (a full disk) loses
// those records and is reported once, as is the recovery; the logger keeps
// reading, so that the container never blocks on its log.
func (l *logger) writeLog(rec []byte) {
	if len(rec) == 0 {
		return
	}
	l.logMu.Lock()
	defer l.logMu.Unlock()
	if l.torn {
		rec = append([]byte{'\n'}, rec...)
	}
	n, err := l.log.Write(rec)
	l.torn = err != nil && n > 0 && rec[n-1] != '\n'
	if err != nil {
		if l.logErr == nil {
			fmt.Fprintf(l.diag, "podsb-logger: %v: dropping output until writes succeed\n", err)
		}
		l.logErr = err
		l.dropped += int64(len(rec) - n)
		return
	}
	if l.logErr != nil {
		fmt.Fprintf(l.diag, "podsb-logger: writing %s again: %d bytes of records were dropped\n", l.c.logPath, l.dropped)
		l.logErr, l.dropped = nil, 0
	}
}

// reopen opens the log path anew (ReopenContainerLog: after a rotation
// renamed it); on failure the old file stays in use.
func (l *logger) reopen() error {
	f, err := openLog(l.c.logPath)
	if err != nil {
		return fmt.Errorf("reopen %s: %w", l.c.logPath, errors.Unwrap(err))
	}
	l.logMu.Lock()
	old := l.log
	l.log, l.torn = f, false
	l.logMu.Unlock()
	old.Close()
	return nil
}

// broadcast queues output to every attached client, waiting for those
// that are clientBudget behind, and disconnecting those that took nothing
// for stallTimeout.
func (l *logger) broadcast(typ byte, p []byte) {
	l.mu.Lock()
	if len(l.clients) == 0 {
		l.mu.Unlock()
		return
	}
	clients := make([]*client, 0, len(l.clients))
	for c := range l.clients {
		clients = append(clients, c)
	}
	l.mu.Unlock()
	f := frame(typ, p)
	for _, c := range clients {
		if !c.push(f, stallTimeout) {
			l.drop(c)
		}
	}
}

// writeInput writes a client's input to the container's stdin.
func (l *logger) writeInput(p []byte) error {
	l.stdinMu.Lock()
	defer l.stdinMu.Unlock()
	if l.stdin == nil || l.stdinClosed.Load() {
		return errors.New("the container's stdin is closed")
	}
	if _, err := l.stdin.Write(p); err != nil {
		return err
	}
	if len(p) > 0 {
		l.lastInput = p[len(p)-1]
	}
	return nil
}

// closeInput ends the container's input (stdin-once). A pipe is closed; a
// terminal, which is also the output, gets its end-of-file character, twice
// if the last line was not ended (the first ends the line).
func (l *logger) closeInput() {
	if l.stdin == nil || !l.stdinClosed.CompareAndSwap(false, true) {
		return
	}
	if l.ptyFD < 0 {
		l.stdin.Close()
		return
	}
	l.stdinMu.Lock()
	defer l.stdinMu.Unlock()
	eof := byte(4)
	if rc, err := l.stdin.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			if t, err := unix.IoctlGetTermios(int(fd), unix.TCGETS); err == nil {
				eof = t.Cc[unix.VEOF]
			}
		})
	}
	p := []byte{eof}
	if l.lastInput != 0 && l.lastInput != '\n' {
		p = append(p, eof)
	}
	_, _ = l.stdin.Write(p)
}

// resize sets the terminal's window size; without a terminal it does
// nothing.
func (l *logger) resize(width, height uint16) {
	if l.ptyFD < 0 {
		return
	}
	if rc, err := l.out[0].SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			_ = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: height, Col: width})
		})
	}
}
