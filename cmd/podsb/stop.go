package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/podsb/podsb/sandbox"
)

func newStopCmd(g *globals) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "stop [-t DURATION] POD CONTAINER",
		Short: "Stop a container's main process: its StopSignal (else TERM), then KILL after --time",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			pod, err := sandbox.Load(g.root, args[0])
			if err != nil {
				return err
			}
			return pod.StopContainer(cmd.Context(), args[1], 0, max(timeout, 0))
		},
	}
	cmd.Flags().DurationVarP(&timeout, "time", "t", sandbox.DefaultStopTimeout, "grace period between the stop signal and SIGKILL")
	return cmd
}
