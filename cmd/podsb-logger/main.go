// Command podsb-logger is the log writer of CRI containers: for each, it
// holds the container's output pipes (or its terminal's master) and stdin,
// writes the output to the container's log in the CRI log format, serves
// attach and log reopening on a unix socket, and stops once the output
// ended. It is a process of its own so that containers keep their pipes,
// and their logs, across a restart of podsb-cri, as conmon does for CRI-O;
// podsb-cri runs one for all its containers (--node), handing it each
// container's fds. It links only the standard library and
// golang.org/x/sys, to stay small. Package crilog has the flags, fds and
// protocols; it is not meant to be run by hand.

// No CPU-quota-aware GOMAXPROCS: the runtime would keep cgroup files open
// (on fds 3 and 4 when none were passed) and re-read them all its life.
//
//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0
package main

import (
	"os"

	"github.com/podsb/podsb/crilog"
)

func main() { os.Exit(crilog.Main(os.Args[1:], os.Stderr)) }
