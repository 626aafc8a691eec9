package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/creack/pty"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/podsb/podsb/sandbox"
)

// Exit codes of exec, as docker and podman give them.
const (
	exitNotExecutable = 126
	exitNotFound      = 127
)

// forwarded are the signals podsb exec passes on to the command.
var forwarded = []os.Signal{
	unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2,
	unix.SIGWINCH, unix.SIGALRM, unix.SIGCONT, unix.SIGTSTP,
}

// launch holds the flags exec and run share, and starts the command.
type launch struct {
	c                        sandbox.ExecConfig
	interactive, tty, detach bool
	// commandOptional: run --image, whose image may give the command.
	commandOptional bool
}

func (l *launch) flags(f *pflag.FlagSet) {
	f.SetInterspersed(false) // flags after POD belong to the command
	f.BoolVarP(&l.interactive, "interactive", "i", false, "keep stdin open and pass it to the command")
	f.BoolVarP(&l.tty, "tty", "t", false, "give the command a pseudo-terminal")
	f.BoolVarP(&l.detach, "detach", "d", false, "run in the background, adopted by pause")
	f.StringArrayVarP(&l.c.Env, "env", "e", nil, "set an environment variable `KEY=VAL` (repeatable)")
	f.StringVarP(&l.c.Dir, "workdir", "w", "", "working directory inside the pod")
	f.StringVarP(&l.c.User, "user", "u", "", "run as `USER[:GROUP]` (names or numbers)")
	securityFlags(f, &l.c.Security)
}

// securityFlags are the privilege flags of create, exec and run.
func securityFlags(f *pflag.FlagSet, s *sandbox.Security) {
	f.StringSliceVar(&s.CapAdd, "cap-add", nil, "add capabilities to the default set (`CAP,...` or ALL)")
	f.StringSliceVar(&s.CapDrop, "cap-drop", nil, "drop capabilities from the default set (`CAP,...` or ALL)")
	f.BoolVar(&s.Privileged, "privileged", false, "keep every capability; no no_new_privs or seccomp filter (and, for create and run, no masking of /proc and no nodev)")
	f.Var(&securityOpt{s}, "security-opt", "`seccomp=unconfined`: no seccomp filter; seccomp=PROFILE.json: that profile's filter instead of the default; no-new-privileges=false: set-user-ID programs raise privileges")
}

// securityOpt is --security-opt: seccomp=unconfined, seccomp=FILE (a
// profile in the OCI JSON format) and no-new-privileges[=true|false].
type securityOpt struct{ s *sandbox.Security }

func (o *securityOpt) String() string { return "" }
func (o *securityOpt) Type() string   { return "string" }
func (o *securityOpt) Set(v string) error {
	key, val, _ := strings.Cut(v, "=")
	switch {
	case v == "seccomp=unconfined":
		o.s.Unconfined = true
	case key == "seccomp" && val != "":
		b, err := os.ReadFile(val)
		if err != nil {
			return fmt.Errorf("--security-opt %s: %w", v, err)
		}
		if err := sandbox.CheckSeccomp(string(b)); err != nil {
			return fmt.Errorf("--security-opt %s: %w", v, err)
		}
		o.s.Seccomp = string(b)
	case v == "no-new-privileges", v == "no-new-privileges=true":
		o.s.NewPrivs = false
	case v == "no-new-privileges=false":
		o.s.NewPrivs = true
	default:
		return fmt.Errorf("--security-opt %q: want seccomp=unconfined, seccomp=FILE or no-new-privileges[=false]", v)
	}
	return nil
}

// run loads the pod named by args[0], starts the command args[1:] with
// start, and either prints what detached says of it or waits for it.
func (l *launch) run(cmd *cobra.Command, root, verb string, args []string,
	start func(*sandbox.Pod, sandbox.ExecConfig) (*sandbox.Process, error),
	detached func(*sandbox.Process) string) error {
	// Before any thread of podsb's own starts.
	if err := sandbox.CheckTasks(verb, args[0]); err != nil {
		return err
	}
	// signal.Notify starts a thread of its own: let it start while the pod
	// is loaded, and be in place before the command is, so that no
	// signal is lost.
	sigs := make(chan os.Signal, 16)
	notified := make(chan struct{})
	if !l.detach {
		go func() {
			signal.Notify(sigs, forwarded...)
			close(notified)
		}()
		defer signal.Stop(sigs)
	}
	pod, err := sandbox.Load(root, args[0])
	if err != nil {
		return err
	}
	if pod.IsRootless() && !sandbox.InUserNS() {
		return joinRootless(pod)
	}
	c := l.c
	c.Args = args[1:]
	if len(c.Args) > 0 && c.Args[0] == "--" {
		c.Args = c.Args[1:]
	}
	if len(c.Args) == 0 && !l.commandOptional {
		return fmt.Errorf("%s: no command", verb)
	}
	if l.detach && (l.tty || l.interactive) {
		return fmt.Errorf("%s: -d cannot be used with -t or -i", verb)
	}
	c.TTY, c.Detach = l.tty, l.detach
	if step := os.Getenv(stopAfterEnv); step != "" {
		c.Trace = stopAfter(step)
	}
	if !l.tty {
		c.Stdout, c.Stderr = os.Stdout, os.Stderr
		if l.interactive {
			c.Stdin = os.Stdin
		}
	}
	if l.detach {
		p, err := start(pod, c)
		if err != nil {
			return execFailure(sandbox.NameSystemError(verb+" "+args[0], err))
		}
		fmt.Fprintln(cmd.OutOrStdout(), detached(p))
		return nil
	}
	<-notified
	p, err := start(pod, c)
	if err != nil {
		return execFailure(sandbox.NameSystemError(verb+" "+args[0], err))
	}
	return attached(p, c.TTY, l.interactive, sigs)
}

func newExecCmd(g *globals) *cobra.Command {
	var (
		l         launch
		container string
	)
	cmd := &cobra.Command{
		Use:   "exec [flags] POD -- CMD [ARG...]",
		Short: "Run a command in a pod",
		Long: `Run a command in all of a pod's namespaces, with the pod's root as its root
(or a container's, with --container).
Its exit status is podsb's: the command's code, 128+N if signal N killed it,
127 if not found, 126 if not executable, 125 if podsb itself failed.
Signals sent to podsb exec are forwarded to the command; if podsb exec is
killed, the command is killed with it. With -d the command is adopted by the
pod's pause, its output goes to a log (see podsb logs), and podsb prints its
PID inside the pod.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			l.c.Container = container
			return l.run(cmd, g.root, "exec", args,
				func(pod *sandbox.Pod, c sandbox.ExecConfig) (*sandbox.Process, error) {
					return pod.Exec(cmd.Context(), c)
				},
				func(p *sandbox.Process) string { return strconv.Itoa(p.PodPID()) })
		},
	}
	l.flags(cmd.Flags())
	cmd.Flags().StringVar(&container, "container", "", "join this container's mount namespace and root")
	return cmd
}

// joinAttempted says this process is a rootless exec re-executed by
// joinRootless; main takes the variable out of the environment, which the
// pod's commands must not inherit.
var joinAttempted = os.Getenv(sandbox.UserNSFDEnv) != ""

// waitAttempted says this process is a rootless create started by
// sandbox.RunInUserNS whose entry point did not wait for its maps (no fast
// path): the entry point takes the variable out when it does.
var waitAttempted = os.Getenv(sandbox.UserNSWaitEnv) != ""

// joinRootless re-executes this podsb exec with the rootless pod's user
// namespace handle at a descriptor named in sandbox.UserNSFDEnv: the
// binary's entry point joins it before the Go runtime starts (setns(2)
// refuses a user namespace to a multi-threaded process), and the exec goes
// on in there, where the pod's other namespaces are the user's to join.
// The same process, so that signals and the exit status need no relay.
func joinRootless(pod *sandbox.Pod) error {
	if joinAttempted {
		return fmt.Errorf("rootless: exec could not join the user namespace of pod %s (this podsb has no fast path: build it with make build and a C compiler)", pod.Name())
	}
	f, err := pod.RootlessUserNS()
	if err != nil {
		return err
	}
	// Kept across execve: the one descriptor the entry point takes.
	if _, err := unix.FcntlInt(f.Fd(), unix.F_SETFD, 0); err != nil {
		return err
	}
	// The state root as this process resolved it, for the fast path,
	// which runs the pod's join record once it has joined (a rootless
	// default root is not its to work out).
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "PODSB_ROOT=") {
			env = append(env, e)
		}
	}
	env = append(env, "PODSB_ROOT="+filepath.Dir(pod.Dir()), sandbox.UserNSFDEnv+"="+strconv.Itoa(int(f.Fd())))
	return os.NewSyscallError("execve", unix.Exec("/proc/self/exe", os.Args, env))
}

func newRunCmd(g *globals) *cobra.Command {
	var (
		l        launch
		cc       sandbox.ContainerConfig
		volumes  []string
		imageRef string
	)
	cmd := &cobra.Command{
		Use:   "run [flags] POD [-- CMD [ARG...]]",
		Short: "Run a container in a pod: its own root, the pod's PID, network, IPC and UTS",
		Long: `Run a command as a container of a pod: in a mount namespace and root
filesystem of its own (a directory with --rootfs, else the default root), and
in the pod's PID, network, IPC and UTS namespaces, with pause as its PID 1.
The pod's /dev/shm and /dev/pts are shared. Exit status, signals, -t, -d and
the environment are as for exec; with -d, podsb prints the container's name
and its output goes to podsb logs POD NAME.
With --image, the root is an overlay of the image's layers (from the image
store, --image-root) and the image's Entrypoint, Cmd, Env, WorkingDir, User
and StopSignal apply as docker applies them; CMD is then optional.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if imageRef != "" {
				return cobra.MinimumNArgs(1)(cmd, args)
			}
			return cobra.MinimumNArgs(2)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if imageRef != "" && cc.Rootfs != "" {
				return fmt.Errorf("run: --image and --rootfs cannot be used together")
			}
			l.commandOptional = imageRef != ""
			for _, v := range volumes {
				vol, err := sandbox.ParseVolume(v)
				if err != nil {
					return err
				}
				cc.Volumes = append(cc.Volumes, vol)
			}
			return l.run(cmd, g.root, "run", args,
				func(pod *sandbox.Pod, c sandbox.ExecConfig) (*sandbox.Process, error) {
					cc.ExecConfig = c
					if cc.Name == "" {
						cc.Name = sandbox.NewName()
					}
					if imageRef == "" {
						return pod.Run(cmd.Context(), cc)
					}
					return runImage(cmd, g, pod, cc, imageRef)
				},
				func(*sandbox.Process) string { return cc.Name })
		},
	}
	l.flags(cmd.Flags())
	f := cmd.Flags()
	f.StringVar(&cc.Name, "name", "", "the container's name, unique in the pod (default: a random ID)")
	f.StringVar(&cc.Rootfs, "rootfs", "", "use directory `DIR` as the container's root (default: a tmpfs with the host's /usr read-only)")
	f.StringVar(&imageRef, "image", "", "run from image `REF` of the image store (podsb image pull)")
	f.BoolVar(&cc.ReadOnly, "read-only", false, "make the container's root read-only")
	f.StringArrayVarP(&volumes, "volume", "v", nil, "bind-mount a host path: `SRC:DST[:OPTS]`, OPTS ro or rw, and kernelfs (repeatable)")
	return cmd
}

// attached waits for the command, forwarding signals (and the terminal with
// -t), and exits with its status.
func attached(p *sandbox.Process, tty, interactive bool, sigs chan os.Signal) error {
	var output chan struct{}
	if tty {
		restore, done := attachTerminal(p.PTY(), interactive)
		defer restore()
		output = done
	}
	// Signals caught since before the start are forwarded now.
	go func() {
		for s := range sigs {
			if s == unix.SIGWINCH && p.PTY() != nil {
				pty.InheritSize(os.Stdin, p.PTY())
				continue
			}
			p.Signal(s)
		}
	}()
	status, err := p.Wait()
	if output != nil {
		// Let the terminal's last output through, then let it go.
		select {
		case <-output:
		case <-time.After(time.Second):
		}
		p.PTY().Close()
	}
	if err != nil {
		return err
	}
	if status != 0 {
		return &exitError{code: status}
	}
	return nil
}

// attachTerminal connects the caller's terminal to the command's pty: raw
// mode, the caller's window size, stdin in (with -i) and output out. It
// returns the function that restores the terminal, and a channel closed
// when the output has been copied.
func attachTerminal(ptmx *os.File, interactive bool) (func(), chan struct{}) {
	restore := func() {}
	if term.IsTerminal(int(os.Stdin.Fd())) {
		pty.InheritSize(os.Stdin, ptmx)
		// Raw only when keys go to the command; otherwise ^C stays the
		// caller's, to interrupt podsb exec (and so the command).
		if interactive {
			if old, err := term.MakeRaw(int(os.Stdin.Fd())); err == nil {
				restore = func() { term.Restore(int(os.Stdin.Fd()), old) }
			}
		}
	}
	if interactive {
		go io.Copy(ptmx, os.Stdin)
	}
	done := make(chan struct{})
	go func() {
		io.Copy(os.Stdout, ptmx)
		close(done)
	}()
	return restore, done
}

// execFailure maps exec's error classes to exit codes, printing the error.
func execFailure(err error) error {
	code := exitFailure
	switch {
	case errors.Is(err, sandbox.ErrCommandNotFound):
		code = exitNotFound
	case errors.Is(err, sandbox.ErrNotExecutable):
		code = exitNotExecutable
	}
	fmt.Fprintf(os.Stderr, "podsb: %v\n", err)
	return &exitError{code: code}
}
