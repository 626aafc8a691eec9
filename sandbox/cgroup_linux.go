package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/fs"
	"github.com/opencontainers/cgroups/fs2"
)

// Limits are a pod's resource limits, enforced with a cgroup that holds
// every process of the pod: pause, and what exec and run start.
type Limits struct {
	// Pids is the most processes the pod may have; 0 for no limit.
	Pids int64 `json:"pids,omitempty"`
	// Memory is the most memory in bytes; 0 for no limit.
	Memory int64 `json:"memory,omitempty"`
	// CPUs is the CPU time the pod may use, in CPUs (0.5 is half of one);
	// 0 for no limit.
	CPUs float64 `json:"cpus,omitempty"`
}

func (l Limits) none() bool { return l == Limits{} }

func (l Limits) check() error {
	if l.Pids < 0 || l.Memory < 0 || l.CPUs < 0 {
		return invalidf("resource limits must not be negative")
	}
	if l.Memory > 0 && l.Memory < 4<<20 {
		return invalidf("--memory %d: at least 4 MiB", l.Memory)
	}
	if l.CPUs > 0 && l.CPUs < 0.01 {
		return invalidf("--cpus %g: at least 0.01", l.CPUs)
	}
	return nil
}

// cpuPeriod is the CFS period the CPU limit is a quota of, in µs.
const cpuPeriod = 100000

func (l Limits) resources() *cgroups.Resources {
	r := &cgroups.Resources{SkipDevices: true, Memory: l.Memory}
	if l.Pids > 0 {
		r.PidsLimit = &l.Pids
	}
	if l.CPUs > 0 {
		r.CpuQuota = int64(l.CPUs * cpuPeriod)
		r.CpuPeriod = cpuPeriod
	}
	return r
}

// cgroupPath is a pod's cgroup: unique to its state root and name.
func cgroupPath(root, name string) string {
	sum := sha256.Sum256([]byte(root))
	// At the top, with no parent of podsb's own: a shared parent would be
	// left empty after the last pod, or, removed then, race a create.
	return "/podsb-" + hex.EncodeToString(sum[:4]) + "-" + name
}

// cgroupManager manages a pod's cgroup on this machine's layout: cgroup v1
// controllers (hybrid included) or the unified v2 hierarchy.
func cgroupManager(path string, l Limits) (cgroups.Manager, error) {
	cg := &cgroups.Cgroup{Path: path, Resources: l.resources()}
	if cgroups.IsCgroup2UnifiedMode() {
		return fs2.NewManager(cg, filepath.Join("/sys/fs/cgroup", path))
	}
	return fs.NewManager(cg, nil)
}

// joinCgroup puts pid in the pod's cgroup, if it has one. A process started
// by exec or run joins before it receives its program, so before its
// command runs.
func (p *Pod) joinCgroup(pid int) error {
	st := p.state
	if st == nil || st.Cgroup == "" {
		return nil
	}
	m, err := cgroupManager(st.Cgroup, st.Limits)
	if err != nil {
		return err
	}
	if err := m.Apply(pid); err != nil {
		return fmt.Errorf("join the cgroup of %s: %w", p.name, err)
	}
	return nil
}

// removeCgroup removes a pod's cgroup once its processes are gone.
func removeCgroup(st *State) error {
	if st == nil || st.Cgroup == "" {
		return nil
	}
	m, err := cgroupManager(st.Cgroup, st.Limits)
	if err != nil {
		return err
	}
	if err := m.Destroy(); err != nil {
		return fmt.Errorf("remove cgroup %s: %w", st.Cgroup, err)
	}
	return nil
}
