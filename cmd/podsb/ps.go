package main

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"

	"github.com/podsb/podsb/sandbox"
)

// psRow is one pod in ps output.
type psRow struct {
	Name      string               `json:"name"`
	Status    specs.ContainerState `json:"status"`
	PID       int                  `json:"pid"`
	Processes int                  `json:"processes"`
	IP        string               `json:"ip,omitempty"`
	Created   time.Time            `json:"created"`
	Root      string               `json:"root"`
}

func newPsCmd(g *globals) *cobra.Command {
	var (
		all, quiet, containers bool
		format                 string
	)
	cmd := &cobra.Command{
		Use:   "ps [flags] [POD...]",
		Short: "List pods",
		Long:  "List running pods, or every pod with -a. Naming pods restricts the list to them.",
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "table" && format != "json" {
				return fmt.Errorf("--format %q: want table or json", format)
			}
			pods, err := selectPods(g.root, args)
			if err != nil {
				return err
			}
			if containers {
				return printContainers(cmd.OutOrStdout(), pods, all, quiet, format)
			}
			counts, err := sandbox.ProcessCounts(pods)
			if err != nil {
				return err
			}
			rows := []psRow{}
			states := sandbox.States(pods)
			for i, p := range pods {
				st := states[i]
				if !all && len(args) == 0 && st.Status != specs.StateRunning {
					continue
				}
				root := st.Rootfs
				if root == "" {
					root = "default"
				}
				ip := ""
				if st.Network != nil {
					ip = st.Network.Addr.Addr().String()
				}
				// st.Pid, not p.PID(): each asks whether pause lives.
				rows = append(rows, psRow{Name: p.Name(), Status: st.Status, PID: st.Pid, Processes: counts[p.Name()], IP: ip, Created: st.Created, Root: root})
			}
			return printPs(cmd.OutOrStdout(), rows, quiet, format)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&all, "all", "a", false, "show every pod, not only running ones")
	f.BoolVarP(&quiet, "quiet", "q", false, "print names only")
	f.StringVar(&format, "format", "table", "output format: table or json")
	f.BoolVar(&containers, "containers", false, "list the pods' containers instead")
	return cmd
}

// selectPods loads the named pods, or lists all of them when none is named.
func selectPods(root string, names []string) ([]*sandbox.Pod, error) {
	if len(names) == 0 {
		return sandbox.List(root)
	}
	pods := make([]*sandbox.Pod, 0, len(names))
	for _, n := range names {
		p, err := sandbox.Load(root, n)
		if err != nil {
			return nil, err
		}
		pods = append(pods, p)
	}
	return pods, nil
}

func printPs(out io.Writer, rows []psRow, quiet bool, format string) error {
	// One write for the lot: the tabwriter writes each cell on its own,
	// fifteen system calls a pod.
	w := bufio.NewWriter(out)
	if err := writePs(w, rows, quiet, format); err != nil {
		return err
	}
	return w.Flush()
}

func writePs(w io.Writer, rows []psRow, quiet bool, format string) error {
	switch {
	case quiet:
		for _, r := range rows {
			fmt.Fprintln(w, r.Name)
		}
		return nil
	case format == "json":
		return writeJSON(w, rows)
	}
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATUS\tPID\tPROCESSES\tIP\tCREATED\tROOT")
	for _, r := range rows {
		pid, ip := "-", "-"
		if r.PID > 0 {
			pid = strconv.Itoa(r.PID)
		}
		if r.IP != "" {
			ip = r.IP
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.Name, r.Status, pid, r.Processes, ip, ago(r.Created), r.Root)
	}
	return tw.Flush()
}

// ago formats a time as docker does: "3 seconds ago".
func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t)
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return plural(int(d/time.Second), "second") + " ago"
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute") + " ago"
	case d < 48*time.Hour:
		return plural(int(d/time.Hour), "hour") + " ago"
	}
	return plural(int(d/(24*time.Hour)), "day") + " ago"
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}

// containerRow is one container in ps --containers output.
type containerRow struct {
	Pod string `json:"pod"`
	sandbox.ContainerState
}

// printContainers lists the containers of pods: running ones, or all with -a.
func printContainers(w io.Writer, pods []*sandbox.Pod, all, quiet bool, format string) error {
	rows := []containerRow{}
	for _, p := range pods {
		cs, err := p.Containers()
		if err != nil {
			return err
		}
		for _, c := range cs {
			if all || c.Status == specs.StateRunning {
				rows = append(rows, containerRow{Pod: p.Name(), ContainerState: c})
			}
		}
	}
	switch {
	case quiet:
		for _, r := range rows {
			fmt.Fprintln(w, r.Pod+"/"+r.Name)
		}
		return nil
	case format == "json":
		return writeJSON(w, rows)
	}
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "POD\tNAME\tSTATUS\tEXIT\tPID\tCREATED\tROOT\tCOMMAND")
	for _, r := range rows {
		root := r.Rootfs
		switch {
		case r.Image != nil:
			root = "image " + r.Image.String()
		case root == "":
			root = "default"
		}
		exit := "-"
		if r.Exit != nil {
			exit = strconv.Itoa(r.Exit.Code)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.Pod, r.Name, r.Status, exit, r.PodPID, ago(r.Created), root, strings.Join(r.Args, " "))
	}
	return tw.Flush()
}
