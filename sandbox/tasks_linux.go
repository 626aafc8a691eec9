package sandbox

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/opencontainers/cgroups"
	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/errclass"
)

// CheckTasks refuses op (create, start, run or exec) on pod (empty for a
// create without a name yet) when this process's pids cgroups, or for a
// user other than root its limit of processes, leave it too few tasks
// (threads and processes): an Error of class ErrExhausted, as "create
// web: out of processes: pids cgroup DIR allows 16 (pids.max) and 12 are
// in use: a create needs up to 4 more". What cannot be read is not
// checked: the operation then finds out itself.
//
// The Go runtime cannot survive a thread it fails to start: it aborts
// with a stack dump wherever the program is, and a create cut there
// leaves a half-made pod that GC removes. So a program calls CheckTasks
// before each such operation; a program that starts for one operation
// (podsb's CLI), before any thread of its own starts. The room needed is
// the operation's tasks less the threads this process has already, and
// at least those it adds to a process whose runtime runs (a server).
func CheckTasks(op, pod string) error {
	n, ok := needs[op]
	if !ok {
		return nil
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil
	}
	own, err := ownThreads()
	if err != nil {
		return nil
	}
	want := max(n.tasks-own, n.started)
	exhausted := func(format string, args ...any) error {
		return &Error{Op: op, Pod: pod, Err: errclass.New(ErrExhausted, format, args...)}
	}
	if uid, max, used, ok := nprocFree(want); !ok {
		return exhausted("out of processes: user %d may have %d (RLIMIT_NPROC) and %d are in use: %s needs up to %d more", uid, max, used, aVerb(op), want)
	}
	for _, dir := range pidsCgroupDirs(b, cgroups.IsCgroup2UnifiedMode()) {
		max, current, ok := pidsFree(dir)
		if !ok || max-current >= want {
			continue
		}
		return exhausted("out of processes: pids cgroup %s allows %d (pids.max) and %d are in use: %s needs up to %d more", dir, max, current, aVerb(op), want)
	}
	return nil
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

// ownThreads is the number of this process's threads.
func ownThreads() (int64, error) {
	ps, err := readStat(os.Getpid())
	return ps.threads, err
}

// nprocFree tells whether a user other than root has room for want more
// tasks under its limit of processes (RLIMIT_NPROC: tasks of the real
// user ID, every thread counted); if not, it returns the user, the limit
// and the tasks in use. The kernel does not hold root to it; counting the
// user's tasks reads /proc, so only a finite limit is checked.
func nprocFree(want int64) (uid int, max uint64, used int64, ok bool) {
	var r unix.Rlimit
	uid = os.Getuid()
	if uid == 0 || unix.Getrlimit(unix.RLIMIT_NPROC, &r) != nil || r.Cur == unix.RLIM_INFINITY {
		return uid, 0, 0, true
	}
	// Counting the user's tasks reads every process's status (tens of
	// milliseconds with a few hundred processes): not when the system's
	// tasks, all of them, leave want free.
	if all, ok := systemTasks(); ok && int64(r.Cur)-all >= want {
		return uid, r.Cur, 0, true
	}
	used = userTasks(uid)
	return uid, r.Cur, used, int64(r.Cur)-used >= want
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
	pids, err := listPIDs()
	if err != nil {
		return 0
	}
	want := strconv.Itoa(uid)
	var n int64
	for _, pid := range pids {
		if s, err := readStatus(pid); err == nil && s.uid == want {
			n += s.threads
		}
	}
	return n
}
