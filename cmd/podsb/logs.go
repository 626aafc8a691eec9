package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/podsb/podsb/sandbox"
)

func newLogsCmd(g *globals) *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs [-f] POD [PID|CONTAINER]",
		Short: "Show the output of commands started with exec -d",
		Long: `Show the output (stdout and stderr) of a command started in POD with
exec -d, by its PID inside the pod; without PID, of the pod's only such
command; or of a container started with run -d, by its name. With -f, keep
printing until the command exits.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			pod, err := sandbox.Load(g.root, args[0])
			if err != nil {
				return err
			}
			pid := 0
			var path string
			running := func() bool { return pod.Running(pid) }
			if len(args) == 2 && !isNumber(args[1]) {
				// A container's log.
				cs, err := pod.Container(args[1])
				if err != nil {
					return err
				}
				if cs.Log == "" {
					return fmt.Errorf("container %s was not started with run -d: it has no log", cs.Name)
				}
				path = cs.Log
				running = func() bool {
					cs, err := pod.Container(cs.Name)
					return err == nil && cs.Status == "running"
				}
			} else {
				if len(args) == 2 {
					if pid, err = strconv.Atoi(args[1]); err != nil || pid <= 0 {
						return fmt.Errorf("logs: PID %q is not a number", args[1])
					}
				}
				if path, err = pod.LogPath(pid); err != nil {
					return err
				}
				if pid == 0 {
					pid, _ = strconv.Atoi(strings.TrimSuffix(filepath.Base(path), ".log"))
				}
			}
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			for {
				if _, err := io.Copy(cmd.OutOrStdout(), f); err != nil {
					return err
				}
				if !follow || !running() {
					// One last copy: output written just before the exit.
					_, err := io.Copy(cmd.OutOrStdout(), f)
					return err
				}
				time.Sleep(100 * time.Millisecond)
			}
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing until the command exits")
	return cmd
}

func isNumber(s string) bool { return s != "" && strings.Trim(s, "0123456789") == "" }
