package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/podsb/podsb/sandbox"
)

func newStartCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "start POD...",
		Short: "Restart stopped pods: a new pause in their network, IPC and UTS namespaces",
		Long: `Restart a pod whose pause process died: a new pause, as PID 1 of a fresh PID
namespace with a fresh root, in the pod's persisted network, IPC and UTS
namespaces. Its hostname, address, routes and published ports stay; its
processes and containers of before are gone.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var errs []error
			for _, n := range args {
				// Before any thread of podsb's own starts, for the
				// first.
				err := sandbox.CheckTasks("start", n)
				var p *sandbox.Pod
				if err == nil {
					p, err = sandbox.Load(g.root, n)
				}
				if err == nil {
					err = p.Start(cmd.Context())
				}
				if err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), n)
			}
			return errors.Join(errs...)
		},
	}
}
