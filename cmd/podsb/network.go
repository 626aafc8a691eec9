package main

import (
	"github.com/spf13/cobra"

	"github.com/podsb/podsb/sandbox"
)

func newNetworkCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "network",
		Short: "Manage the bridge network of the state root",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "prune",
		Short: "Free addresses and ports of pods that are gone; remove the network if no pod uses it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return sandbox.PruneNetwork(g.root)
		},
	})
	return cmd
}
