package crilog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// BinaryName is the logger's binary, found by Start next to the running
// program, else in PATH.
const BinaryName = "podsb-logger"

// Options says what Start starts a logger for. The files are the caller's:
// Start passes them to the logger, and the caller closes its copies once
// Start returns (the container must hold the other ends, the logger these).
type Options struct {
	// Binary is podsb-logger's path; "" finds BinaryName next to the
	// running program, else in PATH.
	Binary string
	// LogPath is the container's log (absolute; its directory must exist).
	LogPath string
	// Socket is the logger's attach and control socket (absolute; any
	// length, but its last element must fit a unix socket address beside
	// /proc/self/fd/N/: about 90 bytes).
	Socket string

	// PTY is the master of the container's terminal (CRI tty): all of its
	// output, and its input with Stdin. Stdout, Stderr and StdinPipe must
	// then be nil. The caller closes its master and slave once the
	// container holds the slave: the logger sees the end of the output
	// only when no process holds the slave (and it makes the master
	// non-blocking, which a shared copy would notice).
	PTY *os.File
	// Stdout and Stderr are the read ends of the container's output pipes
	// (without PTY). The output ends when no process holds a write end:
	// the caller closes its copies once the container started.
	Stdout, Stderr *os.File
	// Stdin says that attach clients may send input: to PTY, or to
	// StdinPipe, the write end of the container's stdin pipe (without PTY).
	Stdin     bool
	StdinPipe *os.File
	// StdinOnce closes the container's stdin once the first attach with
	// stdin ends its input (CRI StdinOnce); on a terminal the logger writes
	// its end-of-file character instead.
	StdinOnce bool

	// Diag is the logger's stderr, where it reports what goes wrong after
	// its start (a full disk); nil discards it.
	Diag *os.File
}

// Handle is a started logger.
type Handle struct {
	PID    int
	Socket string
	cmd    *exec.Cmd
}

// Wait waits for the logger to exit (its container's output ended) and
// reaps it. A logger started by a program that then exits is reaped by
// init instead.
func (h *Handle) Wait() error { return h.cmd.Wait() }

// Start starts podsb-logger for one container and returns once it serves
// its socket and has the log open, so that the container may start. The
// logger runs in a session of its own and outlives the caller.
func Start(opts Options) (*Handle, error) {
	bin := opts.Binary
	if bin == "" {
		var err error
		if bin, err = findBinary(); err != nil {
			return nil, err
		}
	}
	args := []string{"--log-path", opts.LogPath, "--socket", opts.Socket}
	var files []*os.File
	pass := func(flag string, f *os.File) {
		if f != nil {
			args = append(args, flag, strconv.Itoa(3+len(files)))
			files = append(files, f)
		}
	}
	pass("--pty-fd", opts.PTY)
	pass("--stdout-fd", opts.Stdout)
	pass("--stderr-fd", opts.Stderr)
	pass("--stdin-fd", opts.StdinPipe)
	if opts.Stdin {
		args = append(args, "--stdin")
	}
	if opts.StdinOnce {
		args = append(args, "--stdin-once")
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer readyR.Close()
	pass("--ready-fd", readyW)
	cmd := exec.Command(bin, args...)
	cmd.ExtraFiles = files
	if opts.Diag != nil {
		cmd.Stderr = opts.Diag
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/" // pin no directory of the caller's
	// No environment of the caller's; one P: the logger waits on I/O, and
	// each P costs memory (about 100 KiB of it on 2 CPUs, more with more;
	// runtime.GOMAXPROCS at run time is too late to save it).
	cmd.Env = []string{"GOMAXPROCS=1"}
	err = cmd.Start()
	readyW.Close()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", BinaryName, err)
	}
	msg, _ := io.ReadAll(io.LimitReader(readyR, 4096))
	if string(msg) != readyMsg {
		werr := cmd.Wait()
		if len(msg) == 0 {
			return nil, fmt.Errorf("%s exited before it was ready: %v", BinaryName, werr)
		}
		return nil, errors.New(strings.TrimSpace(string(msg)))
	}
	return &Handle{PID: cmd.Process.Pid, Socket: opts.Socket, cmd: cmd}, nil
}

func findBinary() (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), BinaryName)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath(BinaryName); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("container logs need the %s binary, next to this program or in PATH: build it with make build (bin/%s)", BinaryName, BinaryName)
}

// ErrEnded is returned by Reopen when the logger is gone: the container's
// output ended (or the logger was killed).
var ErrEnded = errors.New("the container's logger has exited")

// Reopen makes the logger at socket reopen its log path (ReopenContainerLog,
// after the log was renamed). It returns the logger's error if the path
// cannot be opened (the logger then keeps writing to the old file).
func Reopen(ctx context.Context, socket string) error {
	conn, err := dialLogger(ctx, socket)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	if err := writeFrame(conn, frameHello, []byte(hello{op: "reopen"}.String())); err != nil {
		return fmt.Errorf("reopen log: %w", err)
	}
	fr := &frameReader{r: conn}
	typ, p, err := fr.next()
	switch {
	case err != nil && ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return fmt.Errorf("reopen log: %w", err)
	case typ == frameOK:
		return nil
	case typ == frameError:
		return errors.New(string(p))
	}
	return fmt.Errorf("reopen log: %w: unexpected frame %q", errProto, typ)
}

// dialLogger connects, mapping a missing or refusing socket to ErrEnded.
func dialLogger(ctx context.Context, socket string) (*net.UnixConn, error) {
	c, err := dial(ctx, "unix", socket)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w (%s)", ErrEnded, socket)
		}
		return nil, err
	}
	return c, nil
}

// Size is a terminal's window size in characters.
type Size struct{ Width, Height uint16 }

// Attach attaches to the container served by the logger at socket: its
// output goes to stdout and stderr (a terminal's all to stdout; a nil
// writer discards), stdin (if not nil) to its input, sizes from resize (if
// not nil) to its terminal. It returns nil when the container's output
// ended, ctx.Err() when ctx is done, or the error of a writer or of the
// connection. The end of stdin is sent on (with StdinOnce it ends the
// container's input) and Attach goes on until the output ends; Attach does
// not wait for a stdin Read that has not returned.
//
// The end comes after the last record was written, so Attach with nil
// streams waits until the container's log is complete (ErrEnded if its
// logger already exited), as a server may before it reports a container
// exited.
func Attach(ctx context.Context, socket string, stdin io.Reader, stdout, stderr io.Writer, resize <-chan Size) error {
	conn, err := dialLogger(ctx, socket)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	h := hello{op: "attach", stdin: stdin != nil}
	var wmu sync.Mutex // frames from the stdin and resize goroutines
	send := func(typ byte, p []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		return writeFrame(conn, typ, p)
	}
	// A reset before the logger's hello is a connection that waited in
	// the backlog of a socket closed meanwhile: the same end as a socket
	// that refuses (dialLogger).
	if err := send(frameHello, []byte(h.String())); err != nil {
		if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
			return fmt.Errorf("%w (%s)", ErrEnded, socket)
		}
		return attachErr(ctx, err)
	}
	fr := &frameReader{r: conn}
	typ, p, err := fr.next()
	if err != nil {
		if errors.Is(err, syscall.ECONNRESET) && ctx.Err() == nil {
			return fmt.Errorf("%w (%s)", ErrEnded, socket)
		}
		return attachErr(ctx, err)
	}
	if typ == frameError {
		return errors.New(string(p))
	}
	if typ != frameHello {
		return fmt.Errorf("attach: %w: unexpected frame %q", errProto, typ)
	}
	done := make(chan struct{})
	defer close(done)
	if stdin != nil {
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := stdin.Read(buf)
				if n > 0 && send(frameStdin, buf[:n]) != nil {
					return
				}
				if err != nil {
					_ = send(frameClose, nil)
					return
				}
			}
		}()
	}
	if resize != nil {
		go func() {
			for {
				select {
				case s, ok := <-resize:
					if !ok {
						return
					}
					var b [4]byte
					binary.BigEndian.PutUint16(b[0:2], s.Width)
					binary.BigEndian.PutUint16(b[2:4], s.Height)
					if send(frameResize, b[:]) != nil {
						return
					}
				case <-done:
					return
				}
			}
		}()
	}
	for {
		typ, p, err := fr.next()
		if err != nil {
			if errors.Is(err, io.EOF) && ctx.Err() == nil {
				return fmt.Errorf("attach: %w before the output ended", io.ErrUnexpectedEOF)
			}
			return attachErr(ctx, err)
		}
		var w io.Writer
		switch typ {
		case frameStdout:
			w = stdout
		case frameStderr:
			w = stderr
		case frameExit:
			return nil
		case frameError:
			return errors.New(string(p))
		default:
			return fmt.Errorf("attach: %w: unexpected frame %q", errProto, typ)
		}
		if w != nil {
			if _, err := w.Write(p); err != nil {
				return fmt.Errorf("attach: write output: %w", err)
			}
		}
	}
}

func attachErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("attach: %w", err)
}
