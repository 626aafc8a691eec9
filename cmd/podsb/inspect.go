package main

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"

	"github.com/podsb/podsb/sandbox"
)

// inspectDoc is one pod in inspect output: the persisted state (with the
// OCI state fields at the top level) and the live mounts.
type inspectDoc struct {
	sandbox.State
	Mounts []specs.Mount `json:"mounts"`
}

func newInspectCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect POD...",
		Short: "Show pods as JSON: OCI state, namespaces, root, mounts",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pods, err := selectPods(g.root, args)
			if err != nil {
				return err
			}
			docs := make([]inspectDoc, 0, len(pods))
			for _, p := range pods {
				m, err := p.Mounts()
				if err != nil {
					return err
				}
				if m == nil {
					m = []specs.Mount{}
				}
				docs = append(docs, inspectDoc{State: p.State(), Mounts: m})
			}
			return writeJSON(cmd.OutOrStdout(), docs)
		},
	}
}
