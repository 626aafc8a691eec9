package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// version is podsb's release, set at link time (-X main.version=...); a
// binary built by `go install MODULE@VERSION` reports the module's version.
var version = ""

// commit is the source's git revision, set at link time by the Makefile
// (-X main.commit=...), or else read from the build's VCS stamp.
var commit = ""

// fastPath is "linked" when the binary's entry point is exec's fast path
// (package fastexec): the Makefile sets it with the same link flags that
// make it the entry point.
var fastPath = ""

// versionInfo is what `podsb version` and `podsb --version` print.
func versionInfo() string {
	v, rev := version, commit
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		var vcs, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				vcs = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
		if rev == "" && vcs != "" {
			rev = vcs + dirty
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	if v == "" {
		v = "devel"
	}
	fast := "not linked (built without the C part: plain go build, or no C compiler)"
	if fastPath == "linked" {
		fast = "linked"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "podsb version %s\n", v)
	fmt.Fprintf(&b, "commit: %s\n", rev)
	fmt.Fprintf(&b, "go: %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(&b, "exec fast path: %s\n", fast)
	fmt.Fprintf(&b, "seccomp: %s\n", seccompMode())
	fmt.Fprintf(&b, "cgroup: %s\n", cgroupMode())
	return b.String()
}

// seccompMode says whether the kernel takes seccomp filters, which pods get
// by default.
func seccompMode() string {
	if _, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0); err != nil {
		return "unavailable in this kernel (pods run without a filter only with --security-opt seccomp=unconfined)"
	}
	return "filter (Docker's default profile, native ABI only)"
}

// cgroupMode names the host's cgroup layout: unified (v2 only), hybrid (v1
// controllers with a v2 hierarchy beside them) or legacy (v1 only).
func cgroupMode() string {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		return "unknown (" + err.Error() + ")"
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		return "v2 (unified)"
	}
	if err := unix.Statfs("/sys/fs/cgroup/unified", &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return "v1 (hybrid: v2 mounted at /sys/fs/cgroup/unified)"
	}
	return "v1 (legacy)"
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, Go version, and the exec fast path, seccomp and cgroup modes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := io.WriteString(cmd.OutOrStdout(), versionInfo())
			return err
		},
	}
}

func newCompletionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print a shell completion script (e.g. podsb completion bash > /etc/bash_completion.d/podsb)",
		Args:  cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		ValidArgs: []string{
			"bash", "zsh", "fish",
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			root, out := cmd.Root(), cmd.OutOrStdout()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, true)
			case "zsh":
				return root.GenZshCompletion(out)
			default:
				return root.GenFishCompletion(out, true)
			}
		},
	}
}

// needsNoRoot lists the commands that read nothing of the state root: a
// command group (network) only prints help or refuses an unknown command.
func needsNoRoot(cmd *cobra.Command) bool {
	if cmd.HasSubCommands() {
		return true
	}
	switch cmd.Name() {
	case "help", "version", "completion", cobra.ShellCompRequestCmd, cobra.ShellCompNoDescRequestCmd:
		return true
	}
	return false
}
