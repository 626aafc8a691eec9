package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
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
func (p *Pod) State() State {
	var st State
	if p.state != nil {
		st = *p.state
	} else {
		st.ID = p.name
		st.Bundle = p.Dir()
	}
	st.Status = p.Status()
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
func (p *Pod) Status() specs.ContainerState {
	if p.state == nil {
		return specs.StateCreating
	}
	if !p.alive() {
		return specs.StateStopped
	}
	return p.state.Status
}

// alive tells whether the pause process recorded in the state still runs.
// A PID reused by another process (or after a reboot) does not count.
func (p *Pod) alive() bool {
	st := p.state
	if st == nil || st.Pid <= 0 || st.BootID != bootID() {
		return false
	}
	ps, err := readStat(st.Pid)
	if err != nil || ps.startTime != st.StartTime {
		return false
	}
	return ps.state != 'Z' && ps.state != 'X'
}

// Load finds the pod name under the state root (DefaultRoot if empty).
func Load(root, name string) (*Pod, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	root, err := absRoot(root)
	if err != nil {
		return nil, err
	}
	return load(root, name)
}

func load(root, name string) (*Pod, error) {
	dir := filepath.Join(root, name)
	st, err := readState(dir)
	if isNotExist(err) {
		if _, serr := os.Stat(dir); serr != nil {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		return &Pod{root: root, name: name}, nil
	}
	if err != nil {
		return nil, err
	}
	return &Pod{root: root, name: name, state: st}, nil
}

func absRoot(root string) (string, error) {
	if root == "" {
		return DefaultRoot, nil
	}
	return filepath.Abs(root)
}

// List returns every pod under the state root, sorted by name. A root that
// does not exist holds no pods.
func List(root string) ([]*Pod, error) {
	root, err := absRoot(root)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(root)
	if isNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	pods := make([]*Pod, 0, len(entries))
	for _, e := range entries {
		if !e.IsDir() || ValidateName(e.Name()) != nil {
			continue
		}
		p, err := load(root, e.Name())
		if errors.Is(err, ErrNotFound) {
			continue // removed while we listed
		}
		if err != nil {
			return nil, err
		}
		pods = append(pods, p)
	}
	return pods, nil
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
	ino, err := nsInode(p.NamespacePath(specs.PIDNamespace))
	if err != nil {
		return nil, err
	}
	pids, err := listPIDs()
	if err != nil {
		return nil, err
	}
	containers := map[uint64]string{}
	if ents, err := os.ReadDir(filepath.Join(p.Dir(), "ns")); err == nil {
		for _, e := range ents {
			if name, ok := strings.CutPrefix(e.Name(), "mnt-"); ok {
				if ino, err := nsInode(filepath.Join(p.Dir(), "ns", e.Name())); err == nil {
					containers[ino] = name
				}
			}
		}
	}
	var procs []ProcessInfo
	hostToPod := map[int]int{}
	for _, pid := range pids {
		if i, ok := pidNSInode(pid); !ok || i != ino {
			continue
		}
		s, err := readStatus(pid)
		if err != nil || len(s.nspid) == 0 {
			continue // exited while we looked
		}
		host, _ := strconv.Atoi(pid)
		inner := s.nspid[len(s.nspid)-1]
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

// ProcessCounts returns how many processes each running pod has, keyed by
// name, from one pass over /proc: its cost grows with the processes of the
// machine, not with the pods asked for.
func ProcessCounts(pods []*Pod) (map[string]int, error) {
	byIno := map[uint64]string{}
	counts := map[string]int{}
	for _, p := range pods {
		if p.state == nil || p.Status() == specs.StateStopped {
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
	for _, pid := range pids {
		if ino, ok := pidNSInode(pid); ok {
			if name, ok := byIno[ino]; ok {
				counts[name]++
			}
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
	return mounts, sc.Err()
}
