package sandbox

import (
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// need is what an operation of this package has at once in the process
// that makes it, measured (TestOutOfPIDs, TestOutOfFiles, TestOpenFilesNeeded).
type need struct {
	// tasks: threads and processes at once in a process that starts for
	// the operation (podsb's CLI), the Go runtime's own threads, the
	// locked ones that join namespaces and the processes it starts
	// included, plus a margin of two for a busy machine's scheduling.
	// Measured: a create (or start) up to 6 threads and the pod's init
	// (usually 5 and 1); a run up to 9 with the container's process; an
	// exec in Go (not the fast path) up to 8 with the command's.
	tasks int64
	// started: the tasks it adds in a process whose runtime runs already
	// (a server): the processes it starts and the locked threads that
	// join namespaces, which are thrown away after.
	started int64
	// files: the descriptors it opens at once, besides those open when
	// the process starts (stdin, stdout, stderr, the Go runtime's), for
	// the largest forms measured plus a margin of three: a create with a
	// user namespace of its own 13, a start 14, an exec -d into a pod
	// with a user namespace 20, a run -t in one 29 (a create without one
	// 12, an exec 16, a run 25).
	files uint64
}

var needs = map[string]need{
	"create": {tasks: 9, started: 4, files: 16},
	"start":  {tasks: 9, started: 4, files: 17},
	"run":    {tasks: 11, started: 4, files: 32},
	"exec":   {tasks: 10, started: 3, files: 23},
}

// OpenFilesNeeded is the number of descriptors op (create, start, run,
// exec) opens at once, in a process that starts for it, besides those
// open when it starts; 0 for another op. With a limit of open files
// (RLIMIT_NOFILE) that leaves fewer free it fails half-way with "too many
// open files" (and undoes its work).
func OpenFilesNeeded(op string) uint64 { return needs[op].files }

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

// aVerb is "a create", "an exec".
func aVerb(verb string) string {
	if verb == "exec" {
		return "an exec"
	}
	return "a " + verb
}
