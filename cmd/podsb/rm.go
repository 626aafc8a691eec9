package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/podsb/podsb/sandbox"
)

func newRmCmd(g *globals) *cobra.Command {
	var (
		force   bool
		all     bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "rm [flags] POD...|POD/CONTAINER...",
		Short: "Stop and remove pods, or remove containers",
		Long: `Stop each pod's pause process (SIGTERM, then SIGKILL after --time), which
ends every process of the pod, and remove its namespace handles, its ip netns
entry and its state. With -f, pause gets SIGKILL at once and pods that do not
exist are not an error.

POD/CONTAINER removes a container of a pod: its files, its mount namespace,
its log. A running container is refused unless -f, which kills it first.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) > 0) {
				return errors.New("rm: name pods, or give --all")
			}
			var pods []*sandbox.Pod
			var errs []error
			if all {
				var err error
				if pods, err = sandbox.List(g.root); err != nil {
					return err
				}
			}
			for _, n := range args {
				if pod, container, ok := strings.Cut(n, "/"); ok {
					err := removeContainer(cmd.Context(), g.root, pod, container, force)
					if force && errors.Is(err, sandbox.ErrNotFound) {
						continue
					}
					if err != nil {
						errs = append(errs, err)
						continue
					}
					fmt.Fprintln(cmd.OutOrStdout(), n)
					continue
				}
				p, err := sandbox.Load(g.root, n)
				if force && errors.Is(err, sandbox.ErrNotFound) {
					continue
				}
				if err != nil {
					errs = append(errs, err)
					continue
				}
				pods = append(pods, p)
			}
			opts := sandbox.RemoveOptions{Timeout: timeout, Force: force}
			if step := os.Getenv(stopAfterEnv); step != "" {
				opts.Trace = stopAfter(step)
			}
			if cmd.Flags().Changed("time") && timeout <= 0 {
				opts.Timeout = -1 // no grace period, as docker's -t 0
			}
			if all || len(pods) > 1 {
				// The veth pairs go in one request at the end, which
				// also releases what a killed rm of several pods left
				// (leases of pods already gone): even with no pod left,
				// rm --all does that.
				opts.Batch = sandbox.NewRemoveBatch()
			}
			for i, err := range sandbox.RemoveAll(cmd.Context(), pods, opts) {
				if force && errors.Is(err, sandbox.ErrNotFound) {
					err = nil
				}
				if err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), pods[i].Name())
			}
			if opts.Batch != nil {
				if opts.Trace != nil {
					opts.Trace("remove: before the batch", 0)
				}
				if err := opts.Batch.Flush(g.root, false); err != nil {
					errs = append(errs, err)
				}
			}
			return errors.Join(errs...)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&force, "force", "f", false, "SIGKILL at once; unknown pods are not an error")
	f.BoolVar(&all, "all", false, "remove every pod")
	f.DurationVarP(&timeout, "time", "t", sandbox.DefaultStopTimeout, "grace period between SIGTERM and SIGKILL")
	return cmd
}

// removeContainer removes the container name of the pod pod.
func removeContainer(ctx context.Context, root, pod, name string, force bool) error {
	p, err := sandbox.Load(root, pod)
	if err != nil {
		return err
	}
	return p.RemoveContainer(ctx, name, force)
}
