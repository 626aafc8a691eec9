package main

import (
	"fmt"
	"os/signal"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"podsb/sandbox"
)

func newCreateCmd(g *globals) *cobra.Command {
	var (
		cfg     sandbox.Config
		volumes []string
	)
	cmd := &cobra.Command{
		Use:   "create [flags] [NAME]",
		Short: "Create a pod and print its name",
		Long: `Create a pod: a pause process as PID 1 of new PID, UTS, IPC, mount and
network namespaces, inside a root filesystem. Without NAME, podsb makes a
short unique ID. Returns once the pod is ready.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Root = g.root
			if len(args) == 1 {
				cfg.Name = args[0]
				if err := sandbox.ValidateName(cfg.Name); err != nil {
					return err
				}
			}
			for _, v := range volumes {
				vol, err := sandbox.ParseVolume(v)
				if err != nil {
					return err
				}
				cfg.Volumes = append(cfg.Volumes, vol)
			}
			// A create takes milliseconds and undoes itself on failure:
			// let no signal cut it short and leave a half-made pod.
			signal.Ignore(unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT)
			pod, err := sandbox.Create(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), pod.Name())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Rootfs, "rootfs", "", "use directory `DIR` as the pod's root (default: a tmpfs with the host's /usr read-only)")
	f.BoolVar(&cfg.ReadOnly, "read-only", false, "make the pod's root read-only")
	f.StringArrayVarP(&volumes, "volume", "v", nil, "bind-mount a host path: `SRC:DST[:ro|:rw]` (repeatable)")
	f.StringVar(&cfg.Hostname, "hostname", "", "the pod's hostname (default: its name)")
	return cmd
}
