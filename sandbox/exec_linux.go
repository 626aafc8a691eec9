package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/errclass"
	"github.com/podsb/podsb/internal/setup"
	"github.com/podsb/podsb/nsenter"
)

var (
	// ErrCommandNotFound means the command is not in the pod (exit 127).
	ErrCommandNotFound = errors.New("command not found")
	// ErrNotExecutable means the command exists but cannot be executed
	// (exit 126).
	ErrNotExecutable = errors.New("permission denied: not executable")
)

// DefaultPath is the PATH of a command run in a pod, as runc and docker give.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// ExecConfig describes a command to run in a pod.
type ExecConfig struct {
	// Args is the command and its arguments; Args[0] is looked up in the
	// pod's PATH unless it holds a slash.
	Args []string
	// Env adds KEY=VAL variables to the default environment (PATH, HOME,
	// HOSTNAME, and TERM with TTY), overriding it. Nothing of the caller's
	// environment is passed.
	Env []string
	// Dir is the working directory inside the pod; "/" if empty.
	Dir string
	// User is "USER[:GROUP]", names (from the pod's /etc/passwd and
	// /etc/group) or numbers; root with HOME=/root and no supplementary
	// groups if empty.
	User string
	// Groups are supplementary groups added to those the pod's /etc/group
	// lists the user in; with StrictGroups, the only ones.
	Groups       []uint32
	StrictGroups bool
	// Stdin, Stdout and Stderr are the command's stdio; nil is /dev/null.
	// With TTY they are not used: read and write Process.PTY instead.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// TTY gives the command a pseudo-terminal of the pod's own devpts as
	// its controlling terminal and stdio.
	TTY bool
	// Detach starts the command so that pause adopts it: Exec returns at
	// once, stdout and stderr go to the log file Process.LogPath, stdin is
	// /dev/null, and Wait returns at once.
	Detach bool
	// Container, for Exec, joins that container's mount namespace (and so
	// its root) instead of the pod's.
	Container string
	// Security sets the command's capabilities and privileges. Its
	// capabilities start from the pod's (its Config.Security's CapAdd and
	// CapDrop); the pod's Privileged and Unconfined are not inherited.
	Security Security
	// Trace, if set, is called after each step of a detached Exec's start
	// and of Run's (containerStart) with the step's name and duration, as
	// Config.Trace is for Create.
	Trace func(step string, d time.Duration)
}

// Process is a command started in a pod by Exec.
type Process struct {
	hostPID int
	podPID  int
	pty     *os.File
	logPath string

	stdio    *stdio // nil when detached
	mu       sync.Mutex
	pidfd    int // for signals that cannot reach a reused PID; -1 once reaped
	waitOnce sync.Once
	status   int
	waitErr  error
	release  chan struct{} // lets the thread that forked the command go
}

// Pid returns the process's PID in the caller's PID namespace.
func (p *Process) Pid() int { return p.hostPID }

// PodPID returns the process's PID inside the pod.
func (p *Process) PodPID() int {
	if p.podPID == 0 {
		if s, err := readStatus(strconv.Itoa(p.hostPID)); err == nil && len(s.nspid) > 0 {
			p.podPID = s.nspid[len(s.nspid)-1]
		}
	}
	return p.podPID
}

// PTY returns the terminal's controlling side when ExecConfig.TTY was set.
// The caller reads the command's output from it until it reports an error
// (the command and its children have closed the terminal), and closes it.
func (p *Process) PTY() *os.File { return p.pty }

// LogPath returns the log file of a detached process.
func (p *Process) LogPath() string { return p.logPath }

// Signal sends sig to the process; after it exited, it does nothing.
func (p *Process) Signal(sig os.Signal) error {
	if p.stdio == nil {
		return errors.New("detached process: signal it by its PID")
	}

	s, ok := sig.(syscall.Signal)
	if !ok {
		return fmt.Errorf("signal %v: not a syscall.Signal", sig)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pidfd < 0 {
		return nil // reaped
	}
	err := unix.PidfdSendSignal(p.pidfd, s, nil, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil // exited, not yet reaped
	}
	return err
}

// Wait waits for the process to exit and returns its exit status: its exit
// code, or 128+N if signal N killed it. A detached process is not waited
// for: Wait returns 0 at once.
func (p *Process) Wait() (int, error) {
	if p.stdio == nil {
		return 0, nil
	}
	// Waited for here, not on the thread that forked it: the caller's
	// goroutine then wakes in place when the command exits.
	p.waitOnce.Do(func() {
		p.status, p.waitErr = waitExit(p.hostPID)
		close(p.release)
		p.mu.Lock()
		unix.Close(p.pidfd)
		p.pidfd = -1
		p.mu.Unlock()
		p.stdio.wait()
	})
	return p.status, p.waitErr
}

// Exec starts a command in all of the pod's namespaces, with the pod's root
// as its root. If ctx ends before the command does, the command is killed.
// A started command must be waited for: until then a thread stays with it.
//
// The command is forked from a thread that joined the pod's namespaces
// (package nsenter), so it is born in the pod's PID namespace. Its parent is
// the caller, outside the pod, which waits for it; if the caller dies, the
// kernel kills the command (PR_SET_PDEATHSIG, set by the Pdeathsig operation
// of pause's program just before it executes the command), and the
// command's own orphans go to pause. Only fds 0, 1 and 2 are open in the
// command.
func (p *Pod) Exec(ctx context.Context, c ExecConfig) (*Process, error) {
	proc, err := p.exec(ctx, c)
	if err != nil {
		return nil, opError("exec", p.name, "", p.stoppedError(err))
	}
	return proc, nil
}

// stoppedError returns, for a launch that failed after the pod stopped
// (an rm unpinned its handles, or pause died and took the command's
// process with it), ErrNotRunning instead of the system call that failed;
// other errors as they are.
func (p *Pod) stoppedError(err error) error {
	if errors.Is(err, ErrInvalid) || errors.Is(err, ErrNotRunning) || errors.Is(err, ErrNotFound) {
		return err
	}
	// An rm holds the pod's lock until the pod is gone: wait for it
	// (pause, stopping, may already have killed the command's process).
	ctx, cancel := context.WithTimeout(context.Background(), DefaultStopTimeout+5*time.Second)
	defer cancel()
	if d, lerr := p.lockShared(ctx); lerr == nil {
		d.Close()
	}
	if p.alive(nil) {
		return err
	}
	return fmt.Errorf("%s: %w", p.name, ErrNotRunning)
}

func (p *Pod) exec(ctx context.Context, c ExecConfig) (*Process, error) {
	if err := p.checkLaunch(c); err != nil {
		return nil, err
	}
	p.imageDefaults(&c)
	h, cs, err := p.openHandles(c.Container)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	userns, err := p.openUserNS()
	if err != nil {
		return nil, err
	}
	if userns != nil {
		defer userns.Close()
	}
	if c.Detach {
		return p.execDetached(ctx, h, cs, c, userns)
	}
	proc := &Process{release: make(chan struct{})}
	type forked struct {
		pg  *program
		s   *stdio
		err error
	}
	started := make(chan forked, 1)
	h.Go(func(err error) {
		var f forked
		if f.err = err; err == nil {
			f.pg, f.s, f.err = p.startOnThread(proc, c, userns)
		}
		started <- f
		if f.err == nil {
			// The command dies with this thread (PR_SET_PDEATHSIG): keep
			// the thread until the command has been waited for.
			<-proc.release
		}
	})
	f := <-started
	if f.err != nil {
		return nil, f.err
	}
	defer f.pg.close()
	err = p.joinCgroupOf(cs, proc.hostPID)
	if err == nil {
		_, err = f.pg.run(ctx, nil)
	}
	if err != nil {
		unix.Kill(proc.hostPID, unix.SIGKILL)
		waitExit(proc.hostPID)
		close(proc.release)
		f.s.wait()
		if proc.pty != nil {
			proc.pty.Close()
		}
		return nil, p.programError(c.Args[0], err)
	}
	if proc.pidfd, err = unix.PidfdOpen(proc.hostPID, 0); err != nil {
		unix.Kill(proc.hostPID, unix.SIGKILL)
		waitExit(proc.hostPID)
		close(proc.release)
		f.s.wait()
		return nil, os.NewSyscallError("pidfd_open", err)
	}
	proc.stdio = f.s
	// An ended context kills the command, as exec.CommandContext does.
	stop := context.AfterFunc(ctx, func() { proc.Signal(unix.SIGKILL) })
	go func() {
		<-proc.release
		stop()
	}()
	return proc, nil
}

// checkLaunch validates what Exec and Run share, and keeps inherited fds
// from reaching the pod.
func (p *Pod) checkLaunch(c ExecConfig) error {
	if len(c.Args) == 0 || c.Args[0] == "" {
		return invalidf("no command")
	}
	if len(c.Args) > setup.MaxStrings-1 {
		return invalidf("a command line of %d words: at most %d", len(c.Args), setup.MaxStrings-1)
	}
	if p.state == nil || !p.alive(nil) {
		return fmt.Errorf("%s: %w", p.name, ErrNotRunning)
	}
	if c.Dir != "" && !filepath.IsAbs(c.Dir) {
		return invalidf("working directory %q: not an absolute path", c.Dir)
	}
	if err := p.checkUserNSCaps(c.Security); err != nil {
		return err
	}
	if p.state.Rootless != nil && !InUserNS() {
		return rootlessf("exec into pod %s joins its user namespace before Go starts: use the podsb binary, built with its fast path (make build)", p.name)
	}
	for _, kv := range c.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return invalidf("environment variable %q: want KEY=VAL", kv)
		}
	}
	// Descriptors inherited without close-on-exec (from whoever started
	// this process) must not reach the pod.
	unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	return nil
}

// openHandles opens the pod's pinned namespace handles in joining order;
// with a container's name, its mount namespace instead of the pod's (and
// its PID namespace if it has one of its own), and returns its state.
func (p *Pod) openHandles(container string) (*nsenter.Handles, *ContainerState, error) {
	mnt, pid := p.NamespacePath(specs.MountNamespace), p.NamespacePath(specs.PIDNamespace)
	var cs *ContainerState
	if container != "" {
		// A stopped container's mount namespace may still be pinned
		// (until rm; after start, of a pause of before): not joined.
		st, err := p.Container(container)
		if err != nil {
			return nil, nil, err
		}
		if st.Status != specs.StateRunning {
			return nil, nil, errclass.New(ErrNotRunning, "container %s in pod %s is not running", container, p.name)
		}
		cs = &st
		mnt = p.containerMountNS(container)
		if _, err := os.Stat(mnt); err != nil {
			return nil, nil, errclass.New(ErrNotFound, "no such container %s in pod %s", container, p.name)
		}
		if cs.PIDNamespace != "" {
			pid = p.containerPIDNS(container)
		}
	}
	flags := map[specs.LinuxNamespaceType]int{
		specs.PIDNamespace: unix.CLONE_NEWPID, specs.UTSNamespace: unix.CLONE_NEWUTS,
		specs.IPCNamespace: unix.CLONE_NEWIPC, specs.NetworkNamespace: unix.CLONE_NEWNET,
		specs.MountNamespace: unix.CLONE_NEWNS,
	}
	var nss []nsenter.Namespace
	for _, t := range NamespaceTypes {
		switch t {
		case specs.MountNamespace, specs.UserNamespace: // user: joinUserNS
		case specs.PIDNamespace:
			nss = append(nss, nsenter.Namespace{Type: flags[t], Path: pid})
		default:
			nss = append(nss, nsenter.Namespace{Type: flags[t], Path: p.NamespacePath(t)})
		}
	}
	// The mount namespace last: host paths no longer resolve after it.
	nss = append(nss, nsenter.Namespace{Type: unix.CLONE_NEWNS, Path: mnt})
	h, err := p.openNS(nss)
	return h, cs, err
}

// launch is what prepare resolves for a command.
type launch struct {
	path string   // the command's path in the pod
	env  []string // its whole environment
	dir  string   // its working directory
	user execUser
}

// prepare resolves, inside the pod (on the joined thread), the user, the
// environment and the command's path.
func (p *Pod) prepare(c ExecConfig) (*launch, error) {
	u, err := userIn("/etc", c.User)
	if err == nil {
		err = u.addGroups(c.Groups, c.StrictGroups)
	}
	if err != nil {
		return nil, err
	}
	env, dir := commandEnv(c, u, p.state.Hostname)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, invalidf("working directory %s: not a directory in the pod", dir)
	}
	path, err := lookPath(c.Args[0], envValue(env, "PATH"), dir)
	if err != nil {
		return nil, err
	}
	return &launch{path: path, env: env, dir: dir, user: u}, nil
}

// startOnThread forks the program that starts the command. It runs on the
// thread that joined the pod's namespaces, so paths resolve in the pod's
// root; the command's privileges and its PR_SET_PDEATHSIG are set by the
// program (Go's own Pdeathsig cannot work across a PID namespace: it
// compares the parent's PID from before the fork with getppid(), which is
// 0 there, and kills the child at once).
func (p *Pod) startOnThread(proc *Process, c ExecConfig, userns *os.File) (*program, *stdio, error) {
	l, err := p.prepare(c)
	if err != nil {
		return nil, nil, err
	}
	ops, err := commandOps(c.Security, p.state.Security, l.user, false, l.path, c.Args)
	if err == nil {
		ops, err = p.rootlessIDs(ops, l.user)
	}
	if err != nil {
		return nil, nil, err
	}
	ops, extra := joinUserNS(ops, userns)
	pg, err := newProgram(ops)
	if err != nil {
		return nil, nil, err
	}
	// A session of its own: the caller's controlling terminal, if any,
	// must not be the command's (/dev/tty and TIOCSTI would reach it).
	sys := &syscall.SysProcAttr{Setsid: true}
	stdin, stdout, stderr := c.Stdin, c.Stdout, c.Stderr
	if c.TTY {
		// /dev/ptmx here is the pod's: its own devpts instance.
		ptmx, tty, err := pty.Open()
		if err != nil {
			pg.close()
			return nil, nil, fmt.Errorf("open pty in pod: %w", err)
		}
		defer tty.Close()
		uid, gid := p.hostIDs(l.user.uid, l.user.gid)
		if err := tty.Chown(int(uid), int(gid)); err != nil {
			ptmx.Close()
			pg.close()
			return nil, nil, err
		}
		stdin, stdout, stderr = tty, tty, tty
		sys.Setctty, sys.Ctty = true, 0
		proc.pty = ptmx
	}
	s, err := newStdio(stdin, stdout, stderr)
	if err != nil {
		pg.close()
		return nil, nil, err
	}
	pid, err := pg.fork(l.env, l.dir, s, extra, sys)
	if err != nil {
		s.wait()
		pg.close()
		if proc.pty != nil {
			proc.pty.Close()
		}
		return nil, nil, p.startError(c.Args[0], err)
	}
	proc.hostPID = pid
	return pg, s, nil
}

// startError turns a failed fork or execve into podsb's error classes.
func (p *Pod) startError(name string, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("%s: %w", name, ErrCommandNotFound)
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.ENOEXEC), errors.Is(err, unix.EISDIR), errors.Is(err, unix.EPERM):
		return fmt.Errorf("%s: %w", name, ErrNotExecutable)
	case errors.Is(err, unix.ENOMEM) && !p.alive(nil):
		// Forking into a PID namespace whose init has died fails so.
		return fmt.Errorf("%s: %w", p.name, ErrNotRunning)
	}
	return fmt.Errorf("start %s: %w", name, err)
}

// execDetached starts the command through a program that spawns it: a
// process inside the pod forks the command and exits, so pause adopts it.
func (p *Pod) execDetached(ctx context.Context, h *nsenter.Handles, cs *ContainerState, c ExecConfig, userns *os.File) (*Process, error) {
	// gc leaves the log alone while it is being made.
	lock, err := p.lockShared(ctx)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	logs := filepath.Join(p.Dir(), "logs")
	if err := os.MkdirAll(logs, 0o700); err != nil {
		return nil, err
	}
	logf, err := os.CreateTemp(logs, ".starting-*")
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	fail := func(err error) (*Process, error) {
		os.Remove(logf.Name())
		os.Remove(logs) // if it is empty
		return nil, err
	}
	step := traceFunc(c.Trace)
	step("log file")
	var pg *program
	pid := 0
	err = h.Do(func() error {
		l, err := p.prepare(c)
		if err != nil {
			return err
		}
		ops, err := commandOps(c.Security, p.state.Security, l.user, true, l.path, c.Args)
		if err == nil {
			ops, err = p.rootlessIDs(ops, l.user)
		}
		if err != nil {
			return err
		}
		// Spawn, then Sync: the command's process waits until its log is
		// named by its PID. Should podsb die before, the process sees
		// its go-ahead pipe end without the go-ahead and stops.
		ops = append([]setup.Op{ops[0], {Code: setup.Sync}}, ops[1:]...)
		ops, extra := joinUserNS(ops, userns)
		if pg, err = newProgram(ops); err != nil {
			return err
		}
		// The pod's /dev/null: this thread's root is the pod's.
		null, err := os.Open(os.DevNull)
		if err != nil {
			return err
		}
		defer null.Close()
		if pid, err = pg.fork(l.env, l.dir, &stdio{files: [3]*os.File{null, logf, logf}}, extra, &syscall.SysProcAttr{Setsid: true}); err != nil {
			return p.startError(c.Args[0], err)
		}
		return nil
	})
	if pg != nil {
		// Closes the go-ahead pipe: a spawned process not let go stops.
		defer pg.close()
	}
	if err != nil {
		return fail(err)
	}
	step("fork spawner")
	err = p.joinCgroupOf(cs, pid)
	if err == nil {
		err = pg.send()
	} else {
		unix.Kill(pid, unix.SIGKILL)
	}
	if err == nil {
		var synced bool
		if synced, err = pg.follow(ctx); err == nil && !synced {
			err = errors.New("the command's process exited before its start")
		}
	}
	waitExit(pid) // the spawner exits once the command's process is forked off
	if err != nil {
		return fail(p.programError(c.Args[0], err))
	}
	step("spawn")
	proc := &Process{podPID: pg.spawned, pidfd: -1}
	proc.logPath = filepath.Join(logs, strconv.Itoa(proc.podPID)+".log")
	if err := os.Rename(logf.Name(), proc.logPath); err != nil {
		return fail(err)
	}
	step("log named by PID")
	if err = pg.goAhead(); err == nil {
		_, err = pg.follow(ctx)
	}
	if err != nil {
		os.Remove(proc.logPath)
		return fail(p.programError(c.Args[0], err))
	}
	proc.hostPID = hostPIDOf(p, proc.podPID)
	return proc, nil
}

// hostPIDOf finds the host PID of a pod's process from its PID in the pod.
func hostPIDOf(p *Pod, podPID int) int {
	procs, err := p.Processes()
	if err != nil {
		return 0
	}
	for _, pr := range procs {
		if pr.PID == podPID {
			return pr.HostPID
		}
	}
	return 0
}

// lookPath finds file in the directories of path, in the calling thread's
// root, as a shell would.
func lookPath(file, path, dir string) (string, error) {
	check := func(p string) error {
		fi, err := os.Stat(p)
		if err != nil {
			return ErrCommandNotFound
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			return ErrNotExecutable
		}
		return nil
	}
	if strings.Contains(file, "/") {
		// A relative path is relative to the working directory.
		p := file
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, file)
		}
		if err := check(p); err != nil {
			return "", fmt.Errorf("%s: %w", file, err)
		}
		return file, nil
	}
	found := ErrCommandNotFound
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		switch err := check(p); err {
		case nil:
			return p, nil
		case ErrNotExecutable:
			found = err
		}
	}
	return "", fmt.Errorf("%s: %w", file, found)
}

// commandEnv returns a command's environment, the default (PATH, HOME,
// HOSTNAME, TERM with a pty) with c.Env over it, and its working directory.
func commandEnv(c ExecConfig, u execUser, hostname string) (env []string, dir string) {
	env = []string{"PATH=" + DefaultPath, "HOME=" + u.home, "HOSTNAME=" + hostname}
	if c.TTY {
		env = append(env, "TERM=xterm")
	}
	dir = c.Dir
	if dir == "" {
		dir = "/"
	}
	return mergeEnv(env, c.Env), dir
}

// mergeEnv returns base with the KEY=VAL of extra added, a later key
// replacing an earlier one.
func mergeEnv(base, extra []string) []string {
	out := append([]string{}, base...)
	for _, kv := range extra {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, e := range out {
			if ek, _, _ := strings.Cut(e, "="); ek == k {
				out[i], replaced = kv, true
				break
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}

func envValue(env []string, key string) string {
	for _, e := range env {
		if k, v, _ := strings.Cut(e, "="); k == key {
			return v
		}
	}
	return ""
}
