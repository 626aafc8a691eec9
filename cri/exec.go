package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"

	"github.com/podsb/podsb/sandbox"
)

// maxExecSyncOutput is how much of stdout and stderr together ExecSync
// answers: the rest is read and dropped, so that the command is never
// blocked on a full pipe and cannot fill the server's memory. kubelet and
// crictl take gRPC messages of at most 16 MiB (k8s.io/cri-client): the
// output leaves 64 KiB of that to the rest of the message. stdout is kept
// first, stderr gets what stdout leaves.
const maxExecSyncOutput = 16<<20 - 64<<10

// firstSizeWait bounds how long an exec with a terminal waits for the
// client's first terminal size before it starts the command (the size is
// set on the terminal before the client's input reaches it).
const firstSizeWait = time.Second

// settleWait bounds how long a call that killed a command waits for its
// process group to be gone.
const settleWait = 5 * time.Second

// execTarget resolves a CRI container ID to its pod's ID and its podsb
// container name: streamer.target if set, else searchTarget.
func (s *Server) execTarget(id string) (podID, name string, err error) {
	if id == "" {
		return "", "", invalidf("container ID is empty")
	}
	if t := s.stream.target; t != nil {
		return t(id)
	}
	if rec, err := s.findContainer(id); err == nil {
		return rec.PodID, rec.ID, nil
	} else if !isNotFound(err) {
		return "", "", err
	}
	return s.searchTarget(id)
}

// searchTarget finds the podsb container named id in one of the server's
// pods: a container of a CRI pod that podsb run, not the CRI, made.
func (s *Server) searchTarget(id string) (string, string, error) {
	s.mu.Lock()
	ids := make([]string, 0, len(s.pods))
	for pid := range s.pods {
		ids = append(ids, pid)
	}
	s.mu.Unlock()
	sort.Strings(ids)
	for _, pid := range ids {
		pod, err := sandbox.Load(s.root, pid)
		if err != nil {
			continue
		}
		if _, err := pod.Container(id); err == nil {
			return pid, id, nil
		}
	}
	return "", "", notFoundf("container %q: not found", id)
}

// execPod returns the pod and podsb container name of the container id,
// which must be running.
func (s *Server) execPod(id string) (*sandbox.Pod, string, error) {
	podID, name, err := s.execTarget(id)
	if err != nil {
		return nil, "", err
	}
	pod, err := sandbox.Load(s.root, podID)
	if err != nil {
		return nil, "", grpcError("container "+id, err)
	}
	if pod.Status() != specs.StateRunning {
		return nil, "", status.Errorf(codes.FailedPrecondition, "container %s: its pod %s is not running", id, podID)
	}
	cs, err := pod.Container(name)
	if err != nil {
		return nil, "", notFoundf("container %s: not found in pod %s", id, podID)
	}
	if cs.Status != specs.StateRunning {
		return nil, "", status.Errorf(codes.FailedPrecondition, "container %s is not running", id)
	}
	return pod, name, nil
}

// execError gives an error of pod.Exec its gRPC code.
func execError(what string, err error) error {
	if errors.Is(err, sandbox.ErrNotRunning) {
		return status.Errorf(codes.FailedPrecondition, "%s: %v", what, err)
	}
	return grpcError(what, err)
}

// startExitCode is the exit code a shell gives a command that could not be
// started: 127 not found, 126 not executable.
func startExitCode(err error) (int, bool) {
	switch {
	case errors.Is(err, sandbox.ErrCommandNotFound):
		return 127, true
	case errors.Is(err, sandbox.ErrNotExecutable):
		return 126, true
	}
	return 0, false
}

// ExecSync runs a command in a container and returns its exit code and
// output (its first maxExecSyncOutput bytes). With a timeout (in
// seconds; 0 is none), a command still running then is killed with its
// process group and the call fails with DeadlineExceeded.
func (s *Server) ExecSync(ctx context.Context, req *runtimeapi.ExecSyncRequest) (*runtimeapi.ExecSyncResponse, error) {
	id, cmd := req.GetContainerId(), req.GetCmd()
	if len(cmd) == 0 || cmd[0] == "" {
		return nil, invalidf("exec in container %s: the command is empty", id)
	}
	if req.GetTimeout() < 0 {
		return nil, invalidf("exec in container %s: timeout %ds is negative", id, req.GetTimeout())
	}
	pod, name, err := s.execPod(id)
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, internalf("exec in container %s: %v", id, err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, internalf("exec in container %s: %v", id, err)
	}
	if err := sandbox.CheckTasks("exec", pod.Name()); err != nil {
		outR.Close()
		outW.Close()
		errR.Close()
		errW.Close()
		return nil, execError("exec in container "+id, err)
	}
	c := sandbox.ExecConfig{Args: cmd, Container: name, Stdout: outW, Stderr: errW}
	s.execDefaults(id, &c)
	proc, err := pod.Exec(ctx, c)
	outW.Close() // the command has its own
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		if code, ok := startExitCode(err); ok {
			return &runtimeapi.ExecSyncResponse{ExitCode: int32(code), Stderr: []byte(err.Error() + "\n")}, nil
		}
		return nil, execError("exec in container "+id, err)
	}
	stdout, stderr := &capped{max: maxExecSyncOutput}, &capped{max: maxExecSyncOutput}
	var copies sync.WaitGroup
	for _, c := range []struct {
		w *capped
		r *os.File
	}{{stdout, outR}, {stderr, errR}} {
		copies.Go(func() { io.Copy(c.w, c.r) })
	}
	read := make(chan struct{})
	go func() {
		copies.Wait()
		close(read)
	}()
	var deadline <-chan time.Time
	if t := req.GetTimeout(); t > 0 {
		timer := time.NewTimer(time.Duration(t) * time.Second)
		defer timer.Stop()
		deadline = timer.C
	}
	g := watchGroup(proc)
	timedOut := false
	select {
	case <-g.done:
	case <-deadline:
		timedOut = true
		g.kill()
	case <-ctx.Done():
		g.kill()
	}
	code, werr := g.wait()
	if !timedOut && ctx.Err() == nil {
		// Its output until end of file: a process it left holding it
		// open holds the call, up to the timeout.
		select {
		case <-read:
		case <-deadline:
		case <-ctx.Done():
		}
	}
	outR.Close() // ends the copies
	errR.Close()
	<-read
	if timedOut || ctx.Err() != nil {
		g.settle()
	}
	switch {
	case timedOut:
		return nil, status.Errorf(codes.DeadlineExceeded, "exec in container %s: %q timed out after %ds: killed", id, strings.Join(cmd, " "), req.GetTimeout())
	case ctx.Err() != nil:
		return nil, status.FromContextError(ctx.Err()).Err()
	case werr != nil:
		return nil, internalf("exec in container %s: %v", id, werr)
	}
	if over := len(stdout.b) + len(stderr.b) - maxExecSyncOutput; over > 0 {
		stderr.dropped += int64(over)
		stderr.b = stderr.b[:len(stderr.b)-over]
	}
	if stdout.dropped > 0 || stderr.dropped > 0 {
		s.log.Warn("exec output cut", "container", id, "cmd", cmd[0], "stdout dropped", stdout.dropped, "stderr dropped", stderr.dropped)
	}
	return &runtimeapi.ExecSyncResponse{Stdout: stdout.b, Stderr: stderr.b, ExitCode: int32(code)}, nil
}

// capped keeps the first max bytes written to it and counts the rest.
type capped struct {
	b       []byte
	max     int
	dropped int64
}

func (c *capped) Write(p []byte) (int, error) {
	n := min(len(p), c.max-len(c.b))
	c.b = append(c.b, p[:n]...)
	c.dropped += int64(len(p) - n)
	return len(p), nil
}

// group is a started command's process group: the command is a session
// and process group leader (package sandbox starts it with setsid), and
// the processes it starts stay in its group unless they leave it.
//
// kill signals the whole group only while the leader has not been reaped:
// until then no other process can have its ID, so the group ID names this
// group. A goroutine waits for the leader's exit without reaping it
// (waitid with WNOWAIT), and wait reaps it (Process.Wait) only after that.
type group struct {
	proc *sandbox.Process
	pid  int

	mu     sync.Mutex
	exited bool
	done   chan struct{} // closed when the leader has exited
}

func watchGroup(p *sandbox.Process) *group {
	g := &group{proc: p, pid: p.Pid(), done: make(chan struct{})}
	go func() {
		var info unix.Siginfo
		for {
			err := unix.Waitid(unix.P_PID, g.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
			if !errors.Is(err, unix.EINTR) {
				break
			}
		}
		g.mu.Lock()
		g.exited = true
		g.mu.Unlock()
		close(g.done)
	}()
	return g
}

// kill sends SIGKILL to the group, if its leader has not exited yet.
func (g *group) kill() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.exited {
		unix.Kill(-g.pid, unix.SIGKILL)
	}
}

// settle waits, up to a few seconds, until the killed group is empty: a
// signal is delivered after kill returns, and pause reaps the orphans.
func (g *group) settle() {
	for deadline := time.Now().Add(settleWait); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if errors.Is(unix.Kill(-g.pid, 0), unix.ESRCH) {
			return
		}
	}
}

// wait waits for the leader's exit and returns its status (Process.Wait).
func (g *group) wait() (int, error) {
	<-g.done
	return g.proc.Wait()
}

// execStream runs a command in a container for an exec stream: its stdio
// are the stream's, or a terminal with resize. A non-zero exit is returned
// as the utilexec.ExitError the streaming server passes on to the client;
// the command and its process group are killed when ctx ends (the client
// went, or the server stops).
func (s *Server) execStream(ctx context.Context, id string, cmd []string, stdin io.Reader, stdout, stderr io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	pod, name, err := s.execPod(id)
	if err != nil {
		return err
	}
	if err := sandbox.CheckTasks("exec", pod.Name()); err != nil {
		return execError("exec in container "+id, err)
	}
	c := sandbox.ExecConfig{Args: cmd, Container: name, TTY: tty}
	s.execDefaults(id, &c)
	var first *remotecommand.TerminalSize
	if tty {
		// The client sends its terminal's size first: set it before the
		// command reads input (which must come after).
		if resize != nil {
			t := time.NewTimer(firstSizeWait)
			select {
			case sz, ok := <-resize:
				if ok {
					first = &sz
				} else {
					resize = nil
				}
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
			t.Stop()
		}
	} else {
		// Typed nils would not read as none.
		if stdin != nil {
			c.Stdin = stdin
		}
		if stdout != nil {
			c.Stdout = stdout
		}
		if stderr != nil {
			c.Stderr = stderr
		}
	}
	proc, err := pod.Exec(ctx, c)
	if err != nil {
		if code, ok := startExitCode(err); ok {
			w := io.Writer(stderr)
			if stderr == nil {
				w = stdout
			}
			if w != nil {
				fmt.Fprintf(w, "%v\r\n", err)
			}
			return utilexec.CodeExitError{Err: err, Code: code}
		}
		return execError("exec in container "+id, err)
	}
	g := watchGroup(proc)
	stop := context.AfterFunc(ctx, g.kill)
	defer stop()
	var code int
	if tty {
		code, err = streamTerminal(ctx, g, proc.PTY(), first, stdin, stdout, resize)
	} else {
		code, err = g.wait()
	}
	if ctx.Err() != nil {
		g.settle()
	}
	if err != nil {
		return fmt.Errorf("exec in container %s: %w", id, err)
	}
	if code != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("command terminated with exit code %d", code), Code: code}
	}
	return nil
}

// streamTerminal copies between the stream and the command's terminal,
// sets its size from the client's, and waits for the command.
func streamTerminal(ctx context.Context, g *group, term *os.File, first *remotecommand.TerminalSize, stdin io.Reader, stdout io.Writer, resize <-chan remotecommand.TerminalSize) (int, error) {
	if first != nil {
		setSize(term, *first)
	}
	if stdout == nil {
		stdout = io.Discard
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		io.Copy(stdout, term) // until the terminal's last holder closes it (EIO)
	}()
	if stdin != nil {
		go io.Copy(term, stdin) // ends when the stream or the terminal closes
	}
	if resize != nil {
		go func() {
			for {
				select {
				case sz, ok := <-resize:
					if !ok {
						return
					}
					setSize(term, sz)
				case <-copied:
					return
				}
			}
		}()
	}
	code, err := g.wait()
	select {
	case <-copied:
	case <-ctx.Done():
	}
	term.Close() // ends the copies
	return code, err
}

// setSize sets the terminal's size, through its raw connection: safe with
// a Close at the same time, as File.Fd is not.
func setSize(term *os.File, sz remotecommand.TerminalSize) {
	rc, err := term.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: sz.Height, Col: sz.Width})
	})
}

// execDefaults gives a command run in a CRI container what the
// container's own process has, as containerd's exec does: its environment
// (over the image's), directory, user and privileges.
func (s *Server) execDefaults(id string, c *sandbox.ExecConfig) {
	rec, err := s.findContainer(id)
	if err != nil {
		return // a container the CRI did not make (searchTarget)
	}
	c.Env, c.Dir, c.User = rec.Run.Env, rec.Run.Dir, rec.Run.User
	c.Groups, c.StrictGroups = rec.Run.Groups, rec.Run.StrictGroups
	c.Security = rec.Run.security()
}
