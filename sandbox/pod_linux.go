package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Pod is a pod found under a state root. Its State is what was persisted;
// Status checks the live system.
type Pod struct {
	root  string
	name  string
	state *State // nil for a pod left half-made before its first state write
}

// Name returns the pod's name.
func (p *Pod) Name() string { return p.name }

// Dir returns the pod's state directory.
func (p *Pod) Dir() string { return filepath.Join(p.root, p.name) }

// State returns a copy of the persisted state, with Status set to the live
// status. A pod whose creation never wrote state has only ID and Status.
func (p *Pod) State() State { return p.stateIn(nil) }

// stateIn is State, with the pod's state root open as root (nil: State
// opens and checks it itself).
func (p *Pod) stateIn(root *os.File) State {
	var st State
	if p.state != nil {
		st = *p.state
	} else {
		st.ID = p.name
		st.Bundle = p.Dir()
	}
	st.Status = p.statusIn(root)
	if st.Status == specs.StateStopped {
		st.Pid = 0 // as runc reports a stopped container
	}
	return st
}

// PID returns the host PID of the pod's pause process, or 0 if there is none
// alive.
func (p *Pod) PID() int {
	if p.Status() == specs.StateStopped || p.state == nil {
		return 0
	}
	return p.state.Pid
}

// NamespacePath returns the path of the pod's pinned handle of namespace t.
func (p *Pod) NamespacePath(t specs.LinuxNamespaceType) string {
	return filepath.Join(p.Dir(), "ns", procName(t))
}

// Status reports the pod's status from the live system: running while its
// pause process lives (the same PID, start time and boot), creating while a
// create holds it half-made, stopped otherwise.
func (p *Pod) Status() specs.ContainerState { return p.statusIn(nil) }

func (p *Pod) statusIn(root *os.File) specs.ContainerState {
	if p.state == nil {
		return specs.StateCreating
	}
	if !p.alive(root) {
		return specs.StateStopped
	}
	return p.state.Status
}

// alive tells whether the pause process recorded in the state still runs
// as the pod's pause (isPause): a PID reused by another process, after a
// reboot or not, or a record that names another pod's pause, does not
// count.
//
// root is the pod's state root, open and checked (openRoot), or nil to
// open it here. Not the pod's directory and its marker: the pin is looked
// up below the root, through no symbolic link, and ps asks this of every
// pod.
func (p *Pod) alive(root *os.File) bool {
	st := p.state
	if st == nil || st.Pid <= 0 {
		return false
	}
	if root == nil {
		var err error
		if root, err = openRoot(p.root); err != nil {
			return false
		}
		defer root.Close()
	}
	if !isPause(root, p.name+"/ns/pid", st.Pid, st.StartTime, st.BootID) {
		return false
	}
	// A rootless pod's ns/pid is a link, not a pin: its PID namespace is
	// checked against the inode recorded at create instead.
	if st.Rootless != nil {
		for _, n := range st.Namespaces {
			if n.Type == specs.PIDNamespace {
				ino, ok := pidNSInode(strconv.Itoa(st.Pid))
				return ok && ino == n.Inode
			}
		}
	}
	return true
}

// open opens the pod's state root and directory, without its lock.
func (p *Pod) open() (*podDir, error) {
	root, err := openRoot(p.root)
	if isNotExist(err) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, p.name)
	}
	if err != nil {
		return nil, err
	}
	d, err := openPodDir(root, p.root, p.name)
	if err != nil {
		root.Close()
		return nil, err
	}
	d.ownRoot = true
	return d, nil
}

// Load finds the pod name under the state root (DefaultRoot if empty). A
// directory of the root that podsb did not make is not a pod (ErrNotPod).
func Load(root, name string) (*Pod, error) {
	p, err := loadPod(root, name)
	return p, opError("load", name, "", err)
}

func loadPod(root, name string) (*Pod, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	root, err := rootPath(root)
	if err != nil {
		return nil, err
	}
	rf, err := openRoot(root)
	if isNotExist(err) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return nil, err
	}
	defer rf.Close()
	return load(rf, root, name)
}

func load(rf *os.File, root, name string) (*Pod, error) {
	d, err := openPodDir(rf, root, name)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	// A state that cannot be read (or is not a regular file) is taken as
	// none, as a create that died before its first write leaves: the pod
	// shows creating, and rm removes it.
	st, err := readState(d)
	if err != nil {
		return &Pod{root: root, name: name}, nil
	}
	return &Pod{root: root, name: name, state: st}, nil
}

// rootPath returns the absolute path of a state root.
func rootPath(root string) (string, error) {
	if root == "" {
		return DefaultRoot, nil
	}
	return filepath.Abs(root)
}

// absRoot returns the absolute path of a state root, checked as openRoot
// checks it; a root that does not exist passes.
func absRoot(root string) (string, error) {
	root, err := rootPath(root)
	if err != nil {
		return "", err
	}
	return root, checkRoot(root)
}

// List returns every pod under the state root, sorted by name. A root that
// does not exist holds no pods; entries of the root that podsb did not make
// are not pods, and are left out.
func List(root string) ([]*Pod, error) {
	root, err := rootPath(root)
	if err != nil {
		return nil, err
	}
	rf, err := openRoot(root)
	if isNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer rf.Close()
	names, err := podNames(rf)
	if err != nil {
		return nil, err
	}
	loaded := make([]*Pod, len(names))
	errs := make([]error, len(names))
	each(len(names), func(i int) { loaded[i], errs[i] = load(rf, root, names[i]) })
	pods := make([]*Pod, 0, len(names))
	for i, p := range loaded {
		err := errs[i]
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrNotPod) {
			continue // removed while we listed, or not podsb's
		}
		if err != nil {
			return nil, err
		}
		pods = append(pods, p)
	}
	return pods, nil
}

// States returns the State of each pod, as State does, asking the system
// about several pods at once.
func States(pods []*Pod) []State {
	// Each state root is opened and checked once, not once per pod.
	roots := map[string]*os.File{}
	for _, p := range pods {
		if _, ok := roots[p.root]; !ok {
			f, err := openRoot(p.root)
			if err != nil {
				f = nil // each pod's State opens it, and fails, itself
			}
			roots[p.root] = f
		}
	}
	defer func() {
		for _, f := range roots {
			if f != nil {
				f.Close()
			}
		}
	}()
	states := make([]State, len(pods))
	each(len(pods), func(i int) { states[i] = pods[i].stateIn(roots[pods[i].root]) })
	return states
}

// each calls f(0) to f(n-1), on as many goroutines as the runtime has
// processors: each call is a handful of system calls on files of its own
// pod, and a list of thousands of pods is otherwise one CPU's work.
func each(n int, f func(i int)) { eachOn(min(runtime.GOMAXPROCS(0), n/64+1), n, f) }

// eachOn calls f(0) to f(n-1) on up to workers goroutines, and returns
// when all calls have.
func eachOn(workers, n int, f func(i int)) {
	workers = min(workers, n)
	if workers <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		})
	}
	wg.Wait()
}

// podNames lists the directories of the state root whose names are pod
// names, sorted: the candidates, each still to be checked for its marker.
func podNames(root *os.File) ([]string, error) {
	ents, err := root.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() && ValidateName(e.Name()) == nil {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// ProcessInfo describes a process of a pod.
type ProcessInfo struct {
	// PID is the process's PID inside the pod; pause is 1.
	PID int `json:"pid"`
	// HostPID is its PID in the caller's PID namespace.
	HostPID int `json:"hostPid"`
	// PPID is its parent's PID inside the pod; 0 for pause.
	PPID int `json:"ppid"`
	// State is the kernel's state letter and word, as "S (sleeping)".
	State string `json:"state"`
	// Command is its command line.
	Command string `json:"command"`
	// Container is the name of the container it belongs to (by its mount
	// namespace), empty for the pod's own processes.
	Container string `json:"container,omitempty"`
}

// Processes lists the pod's processes, sorted by PID inside the pod. A pod
// that is not running has none.
func (p *Pod) Processes() ([]ProcessInfo, error) {
	if p.Status() == specs.StateStopped || p.state == nil {
		return nil, nil
	}
	d, err := p.open()
	if err != nil {
		return nil, err
	}
	defer d.Close()
	ino, ok := pinnedInode(d.dir, "ns/pid")
	if !ok {
		return nil, fmt.Errorf("pod %s has no PID namespace handle", p.name)
	}
	pids, err := listPIDs()
	if err != nil {
		return nil, err
	}
	containers := map[uint64]string{}
	pidNSs := map[uint64]bool{ino: true} // the pod's, and its containers' own
	if ns, err := openAt(d.dir, "ns", unix.O_RDONLY|unix.O_DIRECTORY, 0); err == nil {
		names, _ := ns.Readdirnames(-1)
		for _, n := range names {
			if name, ok := strings.CutPrefix(n, "mnt-"); ok {
				if ino, ok := pinnedInode(ns, n); ok {
					containers[ino] = name
				}
			}
			if strings.HasPrefix(n, "pid-") {
				if ino, ok := pinnedInode(ns, n); ok {
					pidNSs[ino] = true
				}
			}
		}
		ns.Close()
	}
	// PIDs are the pod namespace's: pause's level.
	level := -1
	if ps, err := readStatus(strconv.Itoa(p.state.Pid)); err == nil && len(ps.nspid) > 0 {
		level = len(ps.nspid) - 1
	}
	var procs []ProcessInfo
	hostToPod := map[int]int{}
	for _, pid := range pids {
		if i, ok := pidNSInode(pid); !ok || !pidNSs[i] {
			continue
		}
		s, err := readStatus(pid)
		if err != nil || len(s.nspid) == 0 {
			continue // exited while we looked
		}
		host, _ := strconv.Atoi(pid)
		inner := s.nspid[len(s.nspid)-1]
		if level >= 0 && level < len(s.nspid) {
			inner = s.nspid[level]
		}
		hostToPod[host] = inner
		pi := ProcessInfo{PID: inner, HostPID: host, PPID: s.ppid, State: s.state, Command: readCmdline(pid, s.name)}
		if len(containers) > 0 {
			if ino, err := nsInode("/proc/" + pid + "/ns/mnt"); err == nil {
				pi.Container = containers[ino]
			}
		}
		procs = append(procs, pi)
	}
	for i := range procs {
		// A parent outside the pod (a host-side exec launcher) shows as 0.
		procs[i].PPID = hostToPod[procs[i].PPID]
	}
	sort.Slice(procs, func(i, j int) bool { return procs[i].PID < procs[j].PID })
	return procs, nil
}

// ProcessCounts returns how many processes each pod with a state has,
// keyed by name, from one pass over /proc: its cost grows with the
// processes of the machine, not with the pods asked for. A stopped pod
// counts 0: its PID namespace died with pause, so no process is in it.
// (Not asking each pod whether it runs saves ps a check of pause per pod.)
func ProcessCounts(pods []*Pod) (map[string]int, error) {
	byIno := map[uint64]string{}
	counts := map[string]int{}
	for _, p := range pods {
		if p.state == nil {
			continue
		}
		for _, ns := range p.state.Namespaces {
			if ns.Type == specs.PIDNamespace {
				byIno[ns.Inode] = p.name
				counts[p.name] = 0
			}
		}
	}
	if len(byIno) == 0 {
		return counts, nil
	}
	pids, err := listPIDs()
	if err != nil {
		return nil, err
	}
	inos := make([]uint64, len(pids))
	each(len(pids), func(i int) { inos[i], _ = pidNSInode(pids[i]) })
	for _, ino := range inos {
		if name, ok := byIno[ino]; ok {
			counts[name]++
		}
	}
	return counts, nil
}

// Mounts returns the mounts of a running pod as its pause process sees them,
// read live from /proc/PID/mountinfo.
func (p *Pod) Mounts() ([]specs.Mount, error) {
	pid := p.PID()
	if pid == 0 {
		return nil, nil
	}
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/mountinfo")
	if exited(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var mounts []specs.Mount
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m, ok := parseMountinfo(sc.Text()); ok {
			mounts = append(mounts, specs.Mount{Destination: m.target, Type: m.fstype, Source: m.source, Options: strings.Split(m.options, ",")})
		}
	}
	if exited(sc.Err()) {
		return nil, nil
	}
	return mounts, sc.Err()
}

// exited tells whether err, from reading a process's /proc files, means
// that the process exited meanwhile: its files vanish (ENOENT, ESRCH), or
// a dying process's mount table reads as EINVAL once its mount namespace
// is released.
func exited(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) || errors.Is(err, unix.EINVAL)
}
