package main

import (
	"fmt"
	"text/tabwriter"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"

	"github.com/podsb/podsb/sandbox"
)

func newTopCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "top POD",
		Short: "List a pod's processes",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := sandbox.Load(g.root, args[0])
			if err != nil {
				return err
			}
			if p.Status() != specs.StateRunning {
				return fmt.Errorf("%s: %w", p.Name(), sandbox.ErrNotRunning)
			}
			procs, err := p.Processes()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "PID\tHOST PID\tPPID\tSTATE\tCONTAINER\tCOMMAND")
			for _, pr := range procs {
				c := pr.Container
				if c == "" {
					c = "-"
				}
				fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%s\t%s\n", pr.PID, pr.HostPID, pr.PPID, pr.State, c, pr.Command)
			}
			return tw.Flush()
		},
	}
}
