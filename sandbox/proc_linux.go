package sandbox

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// procStat is what podsb reads from /proc/PID/stat.
type procStat struct {
	state     byte
	ppid      int
	startTime uint64
}

// readStat parses /proc/PID/stat. The command name may hold spaces and
// parentheses, so fields are counted after the last ')'.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b)
}

func parseStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("malformed stat %q", b)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); start time is field 22.
	if len(f) < 20 {
		return procStat{}, fmt.Errorf("malformed stat %q", b)
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procStat{}, fmt.Errorf("malformed stat ppid %q", f[1])
	}
	st, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("malformed stat start time %q", f[19])
	}
	return procStat{state: f[0][0], ppid: ppid, startTime: st}, nil
}

var bootID = sync.OnceValue(func() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
})

// nsInode returns the inode number of a namespace file (a /proc/PID/ns link
// or a bind mount of one).
func nsInode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return st.Ino, nil
}

// pidNSInode reads the PID namespace inode of a process from its
// /proc/PID/ns/pid link ("pid:[4026531836]") without following it.
func pidNSInode(pid string) (uint64, bool) {
	var buf [32]byte
	n, err := unix.Readlink("/proc/"+pid+"/ns/pid", buf[:])
	if err != nil || n < 7 || buf[n-1] != ']' {
		return 0, false
	}
	ino, err := strconv.ParseUint(string(buf[5:n-1]), 10, 64)
	return ino, err == nil
}

// procStatus is what podsb reads from /proc/PID/status.
type procStatus struct {
	name  string
	state string
	ppid  int
	nspid []int // PIDs from the outermost to the innermost PID namespace
}

func readStatus(pid string) (procStatus, error) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return procStatus{}, err
	}
	var s procStatus
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Name":
			s.name = v
		case "State":
			s.state = v
		case "PPid":
			s.ppid, _ = strconv.Atoi(v)
		case "NSpid":
			for _, f := range strings.Fields(v) {
				n, _ := strconv.Atoi(f)
				s.nspid = append(s.nspid, n)
			}
		}
	}
	return s, nil
}

// readCmdline returns the command line of pid, arguments joined by spaces,
// or "[name]" for a process with none (a zombie, a kernel thread).
func readCmdline(pid, name string) string {
	b, err := os.ReadFile("/proc/" + pid + "/cmdline")
	if err != nil || len(b) == 0 {
		return "[" + name + "]"
	}
	return strings.TrimRight(strings.ReplaceAll(string(b), "\x00", " "), " ")
}

// listPIDs returns the numeric entries of /proc.
func listPIDs() ([]string, error) {
	f, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	pids := names[:0]
	for _, n := range names {
		if n[0] >= '0' && n[0] <= '9' {
			pids = append(pids, n)
		}
	}
	return pids, nil
}
