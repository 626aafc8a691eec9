// Command podsb creates and manages pods: groups of processes that share
// Linux namespaces, held by a pause process as PID 1.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/image"
	"github.com/podsb/podsb/sandbox"
)

// Exit codes. A command run in a pod passes its own status through; podsb's
// own failures exit with exitFailure, as docker and podman do.
const (
	exitOK      = 0
	exitFailure = 125
)

func main() {
	// podsb lives for milliseconds: a garbage collection costs more than the
	// memory it would free. Collect only past a generous limit.
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(256 << 20)
	os.Unsetenv(sandbox.UserNSFDEnv)
	os.Unsetenv(sandbox.UserNSWaitEnv)
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	files := openFiles()
	if err := files.checkFloor(); err != nil {
		fmt.Fprintf(stderr, "podsb: %v\n", err)
		return exitFailure
	}
	cmd := newRootCmd(stdout)
	// The command's own need (create, start, run, exec), before it opens
	// anything: with fewer it would fail half-way.
	if sub, _, err := cmd.Find(args); err == nil && sub.Parent() == cmd {
		if err := files.check(sub.CommandPath(), sandbox.OpenFilesNeeded(sub.Name())); err != nil {
			fmt.Fprintf(stderr, "podsb: %v\n", err)
			return exitFailure
		}
	}
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	err := cmd.ExecuteContext(context.Background())
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	// One line per error: rm of several pods may fail for each.
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(stderr, "podsb: %s\n", line)
	}
	return exitFailure
}

// rootlessCommands are the commands a user other than root may run, on
// rootless pods (security.md#rootless).
var rootlessCommands = map[string]bool{"create": true, "exec": true, "ps": true, "rm": true, "inspect": true, "gc": true}

// rootless checks that cmd works without root and picks the rootless
// state root, $XDG_RUNTIME_DIR/podsb, unless --root or $PODSB_ROOT named
// one.
func rootless(cmd *cobra.Command, g *globals) error {
	if cmd.Parent() == nil || cmd.Parent().Parent() != nil || !rootlessCommands[cmd.Name()] {
		return fmt.Errorf("rootless: podsb %s needs root (without root: create, exec, ps, rm, inspect, gc)", cmd.CommandPath()[len("podsb "):])
	}
	if g.root == "" {
		if g.root = sandbox.RootlessRoot(); g.root == "" {
			return errors.New("rootless: $XDG_RUNTIME_DIR is not set: give --root DIR (a directory of yours)")
		}
	}
	return nil
}

// minOpenFiles is the fewest open files every command starts with. Below
// about six the Go runtime cannot make its poller on the first open and
// aborts with a stack dump; ps, inspect, top, logs, stop and kill need 8
// or 9 (measured), gc and rm 10. Create, start, run and exec need more
// (sandbox.OpenFilesNeeded).
const minOpenFiles = 16

// fileLimit is the limit of open files (RLIMIT_NOFILE) podsb started with
// and the descriptors open below it then: stdin, stdout and stderr, those
// inherited, and the Go runtime's own (a cgroup file it re-reads).
type fileLimit struct {
	limit, open uint64
	known       bool
}

// openFiles reads the limit of open files and counts the descriptors open
// below it, before podsb opens any. The Go runtime has already raised the
// soft limit to the hard one. A limit above 1024 is not counted: no
// command needs that many.
func openFiles() fileLimit {
	var r unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &r) != nil || r.Cur > 1024 {
		return fileLimit{}
	}
	// poll(2) marks each descriptor that is not open POLLNVAL: no file
	// is opened to count them.
	fds := make([]unix.PollFd, r.Cur)
	for i := range fds {
		fds[i].Fd = int32(i)
	}
	if _, err := unix.Poll(fds, 0); err != nil {
		return fileLimit{}
	}
	f := fileLimit{limit: r.Cur, known: true}
	for _, fd := range fds {
		if fd.Revents&unix.POLLNVAL == 0 {
			f.open++
		}
	}
	return f
}

// checkFloor refuses, with one line, a limit below minOpenFiles.
func (f fileLimit) checkFloor() error {
	if !f.known || f.limit >= minOpenFiles {
		return nil
	}
	return fmt.Errorf("the limit of open files (RLIMIT_NOFILE) is %d: podsb needs at least %d", f.limit, minOpenFiles)
}

// check refuses, with one line, a limit that leaves command (as "podsb
// run") fewer than need free descriptors besides those open.
func (f fileLimit) check(command string, need uint64) error {
	if !f.known || need == 0 || f.limit >= need+f.open {
		return nil
	}
	return fmt.Errorf("the limit of open files (RLIMIT_NOFILE) is %d: %s needs at least %d", f.limit, command, need+f.open)
}

// exitError carries an exit status that is not podsb's own failure.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// globals are the flags every command takes.
type globals struct {
	root           string
	imageRoot      string
	registriesConf string
}

func newRootCmd(stdout io.Writer) *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "podsb",
		Short:         "Linux pods: processes sharing namespaces held by a pause process",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if !sandbox.Rootless() || needsNoRoot(cmd) {
				return nil
			}
			return rootless(cmd, g)
		},
	}
	def := os.Getenv("PODSB_ROOT")
	if def == "" && !sandbox.Rootless() {
		def = sandbox.DefaultRoot
	}
	root.PersistentFlags().StringVar(&g.root, "root", def, "state root directory (env PODSB_ROOT)")
	idef := os.Getenv("PODSB_IMAGE_ROOT")
	if idef == "" {
		idef = image.DefaultRoot
	}
	root.PersistentFlags().StringVar(&g.imageRoot, "image-root", idef, "image store directory (env PODSB_IMAGE_ROOT)")
	root.PersistentFlags().StringVar(&g.registriesConf, "registries-conf", os.Getenv("PODSB_REGISTRIES_CONF"),
		"registries config `FILE`: mirrors, insecure registries (env PODSB_REGISTRIES_CONF; default /etc/podsb/registries.conf if it exists)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return err })
	root.AddCommand(
		newCreateCmd(g),
		newPsCmd(g),
		newTopCmd(g),
		newInspectCmd(g),
		newRmCmd(g),
		newExecCmd(g),
		newLogsCmd(g),
		newNetworkCmd(g),
		newRunCmd(g),
		newKillCmd(g),
		newStopCmd(g),
		newGCCmd(g),
		newImageCmd(g),
		newStartCmd(g),
		newCriCmd(),
		newVersionCmd(),
		newCompletionCmd(),
	)
	refuseUnknownSubcommands(root)
	// Our own completion command offers bash, zsh and fish only.
	root.CompletionOptions.DisableDefaultCmd = true
	// A Version makes cobra add --version; its template prints versionInfo.
	root.Version = "-"
	cobra.AddTemplateFunc("versionInfo", versionInfo)
	root.SetVersionTemplate("{{versionInfo}}")
	return root
}

// refuseUnknownSubcommands makes root and every command group below it
// (network) refuse an unknown command with one line (exit 125), as docker
// and podman do; without a command they print their help. Cobra does this
// for the root alone, in several lines with its suggestions, and a group
// would print its help and exit 0.
func refuseUnknownSubcommands(c *cobra.Command) {
	for _, sub := range c.Commands() {
		if sub.HasSubCommands() {
			refuseUnknownSubcommands(sub)
		}
	}
	if c.Run != nil || c.RunE != nil {
		return
	}
	c.Args = cobra.ArbitraryArgs
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		err := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if cmd.SuggestionsMinimumDistance <= 0 {
			cmd.SuggestionsMinimumDistance = 2 // cobra's default
		}
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			err += " (did you mean " + strings.Join(s, " or ") + "?)"
		}
		return errors.New(err)
	}
}

// writeJSON writes v as indented JSON, as inspect and ps --format json do.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
