package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/podsb/podsb/sandbox"
)

func newGCCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "gc",
		Short: "Remove pods that are not running (stopped, or left half-made by a crash) and free their network",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			removed, err := sandbox.GC(cmd.Context(), g.root)
			for _, n := range removed {
				fmt.Fprintln(cmd.OutOrStdout(), n)
			}
			return err
		},
	}
}
