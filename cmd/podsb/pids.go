package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/opencontainers/cgroups"
	"golang.org/x/sys/unix"
)

// commandTasks is the most tasks (threads and processes) a command has at
// once: the Go runtime's threads, the locked ones that join namespaces
// included, and the processes it starts, plus a margin of two for a busy
// machine's scheduling. Measured: a create up to 6 threads and the pod's
// init (usually 5 and 1); a run up to 9 with the container's process; an
// exec in Go (not the fast path) up to 8 with the command's.
//
// The Go runtime cannot survive a thread it fails to start: it aborts
// with a stack dump (exit 2) wherever podsb is, and a create cut there
// leaves a half-made pod that gc removes. So these commands first check
// that podsb's pids cgroups, and for a user other than root its limit of
// processes, leave them room.
var commandTasks = map[string]int64{"create": 9, "run": 11, "exec": 10}

// pidsCgroupDirs lists the directories of this process's pids cgroups
// from procCgroup (/proc/self/cgroup's contents), innermost first: its
// own and every ancestor below the hierarchy's root, each of which limits
// it. The v1 pids hierarchy is at /sys/fs/cgroup/pids, the unified one at
// /sys/fs/cgroup (unified) or /sys/fs/cgroup/unified (hybrid); a
// directory without pids.max (the controller not enabled) limits nothing.
func pidsCgroupDirs(procCgroup []byte, unified bool) []string {
	var dirs []string
	for _, line := range strings.Split(string(procCgroup), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || !strings.HasPrefix(parts[2], "/") {
			continue
		}
		var base string
		switch {
		case parts[0] == "0" && parts[1] == "" && unified:
			base = "/sys/fs/cgroup"
		case parts[0] == "0" && parts[1] == "":
			base = "/sys/fs/cgroup/unified"
		case slices.Contains(strings.Split(parts[1], ","), "pids"):
			base = "/sys/fs/cgroup/" + parts[1]
		default:
			continue
		}
		for p := path.Clean(parts[2]); p != "/"; p = path.Dir(p) {
			dirs = append(dirs, filepath.Join(base, p))
		}
	}
	return dirs
}

// pidsFree reads a pids cgroup's limit and use. A cgroup without a limit
// (no pids.max, or "max") has ok false.
func pidsFree(dir string) (max, current int64, ok bool) {
	b, err := os.ReadFile(filepath.Join(dir, "pids.max"))
	if err != nil {
		return 0, 0, false
	}
	if max, err = strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64); err != nil {
		return 0, 0, false // "max"
	}
	if b, err = os.ReadFile(filepath.Join(dir, "pids.current")); err != nil {
		return 0, 0, false
	}
	if current, err = strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64); err != nil {
		return 0, 0, false
	}
	return max, current, true
}

// ownThreads is the number of this process's threads, from
// /proc/self/stat (its 20th field).
func ownThreads() (int64, error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("/proc/self/stat: unexpected format")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 18 {
		return 0, errors.New("/proc/self/stat: unexpected format")
	}
	return strconv.ParseInt(f[17], 10, 64)
}

// checkPids refuses with one line a command (verb: create, run or exec;
// what names it with its pod) that its pids cgroups leave too few tasks:
// fewer than its commandTasks, less the threads this process has already
// (counted in use). What cannot be read is not checked: the command then
// finds out itself.
func checkPids(what, verb string) error {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil
	}
	own, err := ownThreads()
	if err != nil {
		return nil
	}
	need := commandTasks[verb] - own
	if err := checkNproc(what, verb, need); err != nil {
		return err
	}
	for _, dir := range pidsCgroupDirs(b, cgroups.IsCgroup2UnifiedMode()) {
		max, current, ok := pidsFree(dir)
		if !ok || max-current >= need {
			continue
		}
		return fmt.Errorf("%s: out of processes: pids cgroup %s allows %d (pids.max) and %d are in use: %s needs up to %d more", what, dir, max, current, aVerb(verb), need)
	}
	return nil
}

// aVerb is "a create", "a run", "an exec".
func aVerb(verb string) string {
	if verb == "exec" {
		return "an exec"
	}
	return "a " + verb
}

// checkNproc refuses a command by a user other than root whose limit of
// processes (RLIMIT_NPROC: tasks of the real user ID, every thread
// counted) leaves fewer than need free. The kernel does not hold root to
// it; counting the user's tasks reads /proc, so only a finite limit is
// checked.
func checkNproc(what, verb string, need int64) error {
	var r unix.Rlimit
	uid := os.Getuid()
	if uid == 0 || unix.Getrlimit(unix.RLIMIT_NPROC, &r) != nil || r.Cur == unix.RLIM_INFINITY {
		return nil
	}
	// Counting the user's tasks reads every process's status (tens of
	// milliseconds with a few hundred processes): not when the system's
	// tasks, all of them, leave need free.
	if all, ok := systemTasks(); ok && int64(r.Cur)-all >= need {
		return nil
	}
	used := userTasks(uid)
	if int64(r.Cur)-used >= need {
		return nil
	}
	return fmt.Errorf("%s: out of processes: user %d may have %d (RLIMIT_NPROC) and %d are in use: %s needs up to %d more", what, uid, r.Cur, used, aVerb(verb), need)
}

// systemTasks is the number of tasks (threads) of the whole system, of
// every user and PID namespace: the fourth field of /proc/loadavg,
// RUNNABLE/TOTAL.
func systemTasks() (int64, bool) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, false
	}
	return parseLoadavgTasks(string(b))
}

func parseLoadavgTasks(s string) (int64, bool) {
	f := strings.Fields(s)
	if len(f) < 4 {
		return 0, false
	}
	_, total, ok := strings.Cut(f[3], "/")
	n, err := strconv.ParseInt(total, 10, 64)
	return n, ok && err == nil
}

// userTasks counts the tasks (threads) whose real user ID is uid, from
// /proc/PID/status; processes that end while it reads are left out.
func userTasks(uid int) int64 {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	want := strconv.Itoa(uid)
	var n int64
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		var real string
		var threads int64
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			switch k {
			case "Uid":
				if f := strings.Fields(v); len(f) > 0 {
					real = f[0]
				}
			case "Threads":
				threads, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			}
		}
		if real == want {
			n += threads
		}
	}
	return n
}
