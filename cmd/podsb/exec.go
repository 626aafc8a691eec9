package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/creack/pty"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"podsb/sandbox"
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

func newExecCmd(g *globals) *cobra.Command {
	var (
		c                        sandbox.ExecConfig
		interactive, tty, detach bool
	)
	cmd := &cobra.Command{
		Use:   "exec [flags] POD -- CMD [ARG...]",
		Short: "Run a command in a pod",
		Long: `Run a command in all of a pod's namespaces, with the pod's root as its root.
Its exit status is podsb's: the command's code, 128+N if signal N killed it,
127 if not found, 126 if not executable, 125 if podsb itself failed.
Signals sent to podsb exec are forwarded to the command; if podsb exec is
killed, the command is killed with it. With -d the command is adopted by the
pod's pause, its output goes to a log (see podsb logs), and podsb prints its
PID inside the pod.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			// signal.Notify starts a thread of its own: let it start
			// while the pod is loaded, and be in place before the
			// command is, so that no signal is lost.
			sigs := make(chan os.Signal, 16)
			notified := make(chan struct{})
			if !detach {
				go func() {
					signal.Notify(sigs, forwarded...)
					close(notified)
				}()
				defer signal.Stop(sigs)
			}
			pod, err := sandbox.Load(g.root, args[0])
			if err != nil {
				return err
			}
			c.Args = args[1:]
			if c.Args[0] == "--" {
				c.Args = c.Args[1:]
			}
			if len(c.Args) == 0 {
				return errors.New("exec: no command")
			}
			if detach && (tty || interactive) {
				return errors.New("exec: -d cannot be used with -t or -i")
			}
			c.TTY, c.Detach = tty, detach
			if !tty {
				c.Stdout, c.Stderr = os.Stdout, os.Stderr
				if interactive {
					c.Stdin = os.Stdin
				}
			}
			if detach {
				p, err := pod.Exec(cmd.Context(), c)
				if err != nil {
					return execFailure(err)
				}
				fmt.Fprintln(cmd.OutOrStdout(), p.PodPID())
				return nil
			}
			<-notified
			return runAttached(cmd, pod, c, interactive, sigs)
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false) // flags after POD belong to the command
	f.BoolVarP(&interactive, "interactive", "i", false, "keep stdin open and pass it to the command")
	f.BoolVarP(&tty, "tty", "t", false, "give the command a pseudo-terminal")
	f.BoolVarP(&detach, "detach", "d", false, "run in the background, adopted by pause; print its PID in the pod")
	f.StringArrayVarP(&c.Env, "env", "e", nil, "set an environment variable `KEY=VAL` (repeatable)")
	f.StringVarP(&c.Dir, "workdir", "w", "", "working directory inside the pod")
	f.StringVarP(&c.User, "user", "u", "", "run as `USER[:GROUP]` (names or numbers)")
	return cmd
}

// runAttached runs the command, forwarding signals (and the terminal with
// -t), and exits with its status.
func runAttached(cmd *cobra.Command, pod *sandbox.Pod, c sandbox.ExecConfig, interactive bool, sigs chan os.Signal) error {
	p, err := pod.Exec(cmd.Context(), c)
	if err != nil {
		return execFailure(err)
	}
	var output chan struct{}
	if c.TTY {
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
		// Let the terminal's last output through.
		select {
		case <-output:
		case <-time.After(time.Second):
		}
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
