package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/fs"
	"github.com/opencontainers/cgroups/fs2"
)

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

// checkCgroupParent refuses a cgroup parent that does not exist: podsb
// makes no cgroup above the pod's, whose owner (kubelet) would not remove
// it.
func checkCgroupParent(p string) error {
	if p == "" {
		return nil
	}
	dirs := []string{filepath.Join("/sys/fs/cgroup", p)}
	if !cgroups.IsCgroup2UnifiedMode() {
		// Every hierarchy the pod's cgroup is made in: the library's
		// MkdirAll would make a missing parent in any of them.
		dirs = nil
		ents, err := os.ReadDir("/sys/fs/cgroup")
		if err != nil {
			return err
		}
		for _, e := range ents {
			if e.IsDir() {
				dirs = append(dirs, filepath.Join("/sys/fs/cgroup", e.Name(), p))
			}
		}
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); err != nil {
			return invalidf("cgroup parent %s: no such cgroup (%s)", p, d)
		}
	}
	return nil
}

// cgroupManager manages a pod's cgroup on this machine's layout: cgroup v1
// controllers (hybrid included) or the unified v2 hierarchy.
func cgroupManager(path string, l Limits) (cgroups.Manager, error) {
	return cgroupManagerOf(path, l.resources())
}

// cgroupManagerOf manages the cgroup at path, to be given r.
func cgroupManagerOf(path string, r *cgroups.Resources) (cgroups.Manager, error) {
	cg := &cgroups.Cgroup{Path: path, Resources: r}
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
		return fmt.Errorf("join the pod's cgroup: %w", err)
	}
	return nil
}

// removeCgroup removes a pod's cgroup once its processes are gone, with
// its containers' cgroups below it. A pod without limits may still have
// one, made as the parent of its containers' (podCgroup).
func (p *Pod) removeCgroup(st *State) error {
	path := cgroupPath(p.root, p.name)
	var l Limits
	if st != nil && st.Cgroup != "" {
		path, l = st.Cgroup, st.Limits
	}
	return destroyCgroup(path, l)
}

// destroyCgroup removes the cgroup at path and those below it; a missing
// one is no error.
func destroyCgroup(path string, l Limits) error {
	m, err := cgroupManager(path, l)
	if err != nil {
		return err
	}
	if err := m.Destroy(); err != nil {
		return fmt.Errorf("remove cgroup %s: %w", path, err)
	}
	return nil
}
