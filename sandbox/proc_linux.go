package sandbox

import (
	"bytes"
	"errors"
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
	threads   int64
	startTime uint64
}

// readProcFile reads the small /proc file path into buf, with one system
// call per step (an os.File adds half a dozen: kind checks, the poller,
// fstat), which counts when ps checks thousands of pods. buf grows if
// the file is larger.
func readProcFile(path string, buf []byte) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	n := 0
	for {
		if n == len(buf) {
			buf = append(buf, make([]byte, len(buf))...)
		}
		m, err := unix.Read(fd, buf[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if m == 0 {
			return buf[:n], nil
		}
		n += m
	}
}

// readStat parses /proc/PID/stat. The command name may hold spaces and
// parentheses, so fields are counted after the last ')'.
func readStat(pid int) (procStat, error) {
	var buf [512]byte
	b, err := readProcFile("/proc/"+strconv.Itoa(pid)+"/stat", buf[:])
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
	// f[0] is field 3 (state); threads are field 20, start time 22.
	if len(f) < 20 {
		return procStat{}, fmt.Errorf("malformed stat %q", b)
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procStat{}, fmt.Errorf("malformed stat ppid %q", f[1])
	}
	threads, err := strconv.ParseInt(f[17], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("malformed stat thread count %q", f[17])
	}
	st, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("malformed stat start time %q", f[19])
	}
	return procStat{state: f[0][0], ppid: ppid, threads: threads, startTime: st}, nil
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

// pinnedInode returns the inode of the namespace handle rel below dir
// (opened through no symbolic link), if it is a namespace file: a pinned
// handle, a bind mount of /proc/PID/ns/*, which no file written in the
// state directory can forge.
func pinnedInode(dir *os.File, rel string) (uint64, bool) {
	fd, err := openFdAt(dir, rel, unix.O_PATH, 0)
	if err != nil {
		return 0, false
	}
	defer unix.Close(fd)
	var fs unix.Statfs_t
	var st unix.Stat_t
	if unix.Fstatfs(fd, &fs) != nil || fs.Type != unix.NSFS_MAGIC || unix.Fstat(fd, &st) != nil {
		return 0, false
	}
	return st.Ino, true
}

// isPause tells whether pid is the pause of the pod whose pinned PID
// namespace is pinRel below dir (ns/pid below the pod's directory, or
// NAME/ns/pid below the state root): a process of that namespace if it is
// pinned, else PID 1 of a PID namespace of its own, and the process that
// started at start in the boot boot. A record that names anything else (another pod's pause, a
// process that reused the PID) fails. The namespace is read before the
// start time, so a process that died in between and whose PID was reused
// fails too.
func isPause(dir *os.File, pinRel string, pid int, start uint64, boot string) bool {
	if pid <= 0 || boot != bootID() {
		return false
	}
	s := strconv.Itoa(pid)
	ino, ok := pidNSInode(s)
	if !ok {
		return false
	}
	// A pinned namespace that holds the process is the pod's: no other
	// process can have entered it under this PID since pause, its init,
	// started (after init exits no process can be made in it), and the
	// start time below tells pause from an earlier holder of the PID.
	// Without a pin, the process must be an init of its own.
	pinned, ok := pinnedInode(dir, pinRel)
	if ok && pinned != ino || !ok && !isInit(s) {
		return false
	}
	ps, err := readStat(pid)
	return err == nil && ps.startTime == start && ps.state != 'Z' && ps.state != 'X'
}

// isInit tells whether pid is a live PID 1 of a PID namespace below the
// caller's. A zombie is dead, though /proc still shows its namespace.
func isInit(pid string) bool {
	s, err := readStatus(pid)
	return err == nil && len(s.nspid) >= 2 && s.nspid[len(s.nspid)-1] == 1 &&
		!strings.HasPrefix(s.state, "Z") && !strings.HasPrefix(s.state, "X")
}

// procStatus is what podsb reads from /proc/PID/status.
type procStatus struct {
	name    string
	state   string
	ppid    int
	uid     string // the real user ID
	threads int64
	nspid   []int // PIDs from the outermost to the innermost PID namespace
}

func readStatus(pid string) (procStatus, error) {
	var buf [4096]byte
	b, err := readProcFile("/proc/"+pid+"/status", buf[:])
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
		case "Uid":
			if f := strings.Fields(v); len(f) > 0 {
				s.uid = f[0]
			}
		case "Threads":
			s.threads, _ = strconv.ParseInt(v, 10, 64)
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
