package main

import (
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/sandbox"
)

func newKillCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "kill POD CONTAINER [SIGNAL]",
		Short: "Send a signal (default: its image's StopSignal, else TERM) to a container's main process",
		Args:  cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			var sig unix.Signal
			if len(args) == 3 {
				var err error
				if sig, err = sandbox.ParseSignal(args[2]); err != nil {
					return err
				}
			}
			pod, err := sandbox.Load(g.root, args[0])
			if err != nil {
				return err
			}
			if sig == 0 {
				cs, err := pod.Container(args[1])
				if err != nil {
					return err
				}
				sig = cs.StopSignal()
			}
			return pod.SignalContainer(args[1], sig)
		},
	}
}
