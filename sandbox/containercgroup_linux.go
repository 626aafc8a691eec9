package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/errclass"
)

// A container's cgroup is a child of its pod's: the pod's own cgroup when
// the pod has limits, else one made (without limits) only to hold its
// containers' and removed with the pod. Its name is the container's,
// prefixed so that it never reads as a controller's file.

// podCgroup is the path of the pod's cgroup, whether or not it has limits.
func (p *Pod) podCgroup() string {
	if st := p.state; st != nil && st.Cgroup != "" {
		return st.Cgroup
	}
	return cgroupPath(p.root, p.name)
}

// containerCgroup is the path of the cgroup of the container name.
func (p *Pod) containerCgroup(name string) string {
	return p.podCgroup() + "/c-" + name
}

func (r Resources) resources() *cgroups.Resources {
	c := &cgroups.Resources{
		SkipDevices: true,
		CpuShares:   r.CPUShares,
		CpuQuota:    r.CPUQuota,
		CpuPeriod:   r.CPUPeriod,
		Memory:      r.Memory,
		MemorySwap:  r.MemorySwap,
		CpusetCpus:  r.CpusetCPUs,
		CpusetMems:  r.CpusetMems,
	}
	if r.CPUQuota != 0 && r.CPUPeriod == 0 {
		c.CpuPeriod = cpuPeriod
	}
	if r.Pids > 0 {
		c.PidsLimit = &r.Pids
	}
	for size, limit := range r.Hugepages {
		c.HugetlbLimit = append(c.HugetlbLimit, &cgroups.HugepageLimit{Pagesize: size, Limit: limit})
	}
	return c
}

// resetFrom is the cgroup settings that change a container's limits from
// old to r: the library leaves a field of 0 untouched, so a limit that r
// drops is set back to the kernel's default here.
func (r Resources) resetFrom(old Resources) *cgroups.Resources {
	c := r.resources()
	if r.CPUShares == 0 && old.CPUShares != 0 {
		c.CpuShares = 1024
	}
	if r.CPUQuota == 0 && old.CPUQuota != 0 {
		c.CpuQuota = -1
	}
	if r.CPUPeriod == 0 && old.CPUPeriod != 0 {
		c.CpuPeriod = cpuPeriod
	}
	if r.Memory == 0 && old.Memory != 0 {
		c.Memory = -1
	}
	if r.MemorySwap == 0 && old.MemorySwap != 0 {
		c.MemorySwap = -1
	}
	if r.Pids == 0 && old.Pids != 0 {
		unlimited := int64(-1)
		c.PidsLimit = &unlimited
	}
	return c
}

// joinContainerCgroup makes the cgroup of the container name with res and
// puts pid in it, before pid runs anything of the container's.
func (p *Pod) joinContainerCgroup(name string, pid int, res Resources) (string, error) {
	path := p.containerCgroup(name)
	if len(res.Hugepages) > 0 && !HasController("hugetlb") {
		return path, invalidf("hugepage limits: this machine has no hugetlb cgroup controller")
	}
	m, err := cgroupManagerOf(path, res.resources())
	if err == nil {
		if err = m.Apply(pid); err == nil {
			err = m.Set(res.resources())
		}
	}
	if err == nil {
		err = setOOMScoreAdj(pid, res.OOMScoreAdj)
	}
	if err != nil {
		return path, fmt.Errorf("cgroup of container %s: %w", name, err)
	}
	return path, nil
}

// setOOMScoreAdj sets the oom_score_adj of pid, which every process it
// forks inherits; 0 (the default) is left alone.
func setOOMScoreAdj(pid, adj int) error {
	if adj == 0 {
		return nil
	}
	return os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid), []byte(strconv.Itoa(adj)), 0)
}

// joinCgroupOf puts pid in the cgroup of the container cs (for a command
// run in it by Exec), or in the pod's if cs is nil or the container has no
// cgroup (started by a podsb without container cgroups).
func (p *Pod) joinCgroupOf(cs *ContainerState, pid int) error {
	if cs == nil || cs.Cgroup == "" {
		return p.joinCgroup(pid)
	}
	m, err := cgroupManagerOf(cs.Cgroup, &cgroups.Resources{SkipDevices: true})
	if err != nil {
		return err
	}
	if err := m.Apply(pid); err != nil {
		return fmt.Errorf("join the cgroup of container %s: %w", cs.Name, err)
	}
	return setOOMScoreAdj(pid, cs.Resources.OOMScoreAdj)
}

// removeContainerCgroup removes the cgroup of the container name, once its
// processes are gone; a missing one is no error.
func (p *Pod) removeContainerCgroup(name string) error {
	m, err := cgroupManagerOf(p.containerCgroup(name), &cgroups.Resources{SkipDevices: true})
	if err != nil {
		return err
	}
	if err := killCgroup(m); err != nil {
		return fmt.Errorf("remove cgroup of container %s: %w", name, err)
	}
	if err := m.Destroy(); err != nil {
		return fmt.Errorf("remove cgroup of container %s: %w", name, err)
	}
	return nil
}

// killCgroup ends every process left in a container's cgroup: those its
// main process left (they live on as pause's children) and execs. Frozen,
// they cannot exit, so no PID read from the cgroup is reused before its
// SIGKILL; thawed, they die. It waits until the cgroup is empty.
func killCgroup(m cgroups.Manager) error {
	dir := procsDir(m)
	if dir == "" {
		return nil
	}
	pids, err := cgroups.GetAllPids(dir)
	if err != nil || len(pids) == 0 {
		return nil // no cgroup (already gone), or nothing in it
	}
	if err := m.Freeze(cgroups.Frozen); err != nil {
		return fmt.Errorf("freeze: %w", err)
	}
	if pids, err = cgroups.GetAllPids(dir); err == nil {
		for _, pid := range pids {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
	if err := m.Freeze(cgroups.Thawed); err != nil {
		return fmt.Errorf("thaw: %w", err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		pids, err := cgroups.GetAllPids(dir)
		if err != nil || len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d processes still in it after SIGKILL", len(pids))
		}
	}
}

// UpdateContainer gives the running container name new resources, and
// records them.
func (p *Pod) UpdateContainer(ctx context.Context, name string, res Resources) error {
	return opError("update", p.name, name, p.updateContainer(ctx, name, res))
}

func (p *Pod) updateContainer(ctx context.Context, name string, res Resources) error {
	if err := validateContainerName(name); err != nil {
		return err
	}
	if err := res.Check(); err != nil {
		return err
	}
	lock, err := p.lockShared(ctx)
	if err != nil {
		return err
	}
	defer lock.Close()
	cs, err := p.Container(name)
	if err != nil {
		return err
	}
	if cs.Status != specs.StateRunning {
		return errclass.New(ErrNotRunning, "container %s in pod %s is not running", name, p.name)
	}
	if cs.Cgroup == "" {
		return errors.New("it has no cgroup (started by an older podsb)")
	}
	set := res.resetFrom(cs.Resources)
	m, err := cgroupManagerOf(cs.Cgroup, set)
	if err != nil {
		return err
	}
	if err := m.Set(set); err != nil {
		return err
	}
	return p.updateContainerState(name, func(cs *ContainerState) { cs.Resources = res })
}

// updateContainerState rewrites the record of the container name with f,
// holding the lock of the pod's containers.
func (p *Pod) updateContainerState(name string, f func(*ContainerState)) error {
	cf, err := os.Open(filepath.Join(p.Dir(), "containers"))
	if err != nil {
		return err
	}
	defer cf.Close()
	if err := flock(cf, unix.LOCK_EX); err != nil {
		return err
	}
	file := filepath.Join(p.containerDir(name), stateFile)
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var cs ContainerState
	if err := json.Unmarshal(b, &cs); err != nil {
		return err
	}
	f(&cs)
	if b, err = json.MarshalIndent(cs, "", "  "); err != nil {
		return err
	}
	return writeFileAtomic(file, b)
}

// CgroupStats is what a cgroup's controllers count of its processes.
type CgroupStats struct {
	// CPU time in ns: all, in user mode, in kernel mode.
	CPUUsage, CPUUser, CPUSystem uint64
	// CFS periods: elapsed, throttled; time throttled in ns.
	CPUPeriods, CPUThrottledPeriods, CPUThrottledTime uint64
	// Memory in bytes: in use (page cache included), the most ever used,
	// the working set (in use less inactive file pages), anonymous,
	// page cache, mapped files, swap, kernel.
	MemoryUsage, MemoryMaxUsage, MemoryWorkingSet, MemoryRSS, MemoryCache, MemoryMapped, MemorySwap, MemoryKernel uint64
	// MemoryLimit is the memory limit in bytes (0: none).
	MemoryLimit uint64
	// MemoryFailcnt counts hits of the memory limit; PageFaults and
	// MajorPageFaults the processes' page faults.
	MemoryFailcnt, PageFaults, MajorPageFaults uint64
	// OOMKills counts processes the kernel killed for want of memory in
	// the cgroup.
	OOMKills uint64
	// Pids and PidsLimit are the processes (threads) now and the most
	// allowed (0: none).
	Pids, PidsLimit uint64
	// Procs are the host PIDs of the cgroup's processes.
	Procs []int
	// Blkio is the block I/O of the cgroup's processes, by device and
	// operation (Read, Write...), as the blkio (io) controller counts it.
	Blkio []BlkioStat
}

// BlkioStat is one device's count of one operation.
type BlkioStat struct {
	Major, Minor uint64
	Op           string
	// Bytes and Ops are the bytes moved and the operations done.
	Bytes, Ops uint64
}

// ContainerStats reads the cgroup of the container name.
func (p *Pod) ContainerStats(name string) (CgroupStats, error) {
	cs, err := p.Container(name)
	if err != nil {
		return CgroupStats{}, err
	}
	if cs.Cgroup == "" {
		return CgroupStats{}, errclass.New(ErrNotFound, "container %s in pod %s has no cgroup", name, p.name)
	}
	return cgroupStats(cs.Cgroup)
}

// Stats reads the pod's cgroup: its containers', and pause's when the
// pod has limits.
func (p *Pod) Stats() (CgroupStats, error) {
	return cgroupStats(p.podCgroup())
}

// OOMKilled tells whether the kernel killed a process of the container
// name for want of memory in its cgroup.
func (p *Pod) OOMKilled(name string) bool {
	n, _ := oomKills(p.containerCgroup(name))
	return n > 0
}

func cgroupStats(path string) (CgroupStats, error) {
	var out CgroupStats
	if _, err := os.Stat(cgroupDir(path, "memory")); err != nil {
		return out, fmt.Errorf("cgroup %s: %w", path, err)
	}
	m, err := cgroupManagerOf(path, &cgroups.Resources{SkipDevices: true})
	if err != nil {
		return out, err
	}
	st, err := m.GetStats()
	if err != nil {
		return out, fmt.Errorf("cgroup %s: %w", path, err)
	}
	c, mem := st.CpuStats, st.MemoryStats
	out.CPUUsage, out.CPUUser, out.CPUSystem = c.CpuUsage.TotalUsage, c.CpuUsage.UsageInUsermode, c.CpuUsage.UsageInKernelmode
	out.CPUPeriods, out.CPUThrottledPeriods, out.CPUThrottledTime = c.ThrottlingData.Periods, c.ThrottlingData.ThrottledPeriods, c.ThrottlingData.ThrottledTime
	out.MemoryUsage, out.MemoryMaxUsage, out.MemoryFailcnt = mem.Usage.Usage, mem.Usage.MaxUsage, mem.Usage.Failcnt
	if mem.Usage.Limit < 1<<62 {
		out.MemoryLimit = mem.Usage.Limit
	}
	out.MemoryKernel = mem.KernelUsage.Usage
	s := mem.Stats
	if cgroups.IsCgroup2UnifiedMode() {
		out.MemoryRSS, out.MemoryCache, out.MemoryMapped = s["anon"], s["file"], s["file_mapped"]
		out.MemorySwap = mem.SwapOnlyUsage.Usage
		out.PageFaults, out.MajorPageFaults = s["pgfault"], s["pgmajfault"]
	} else {
		out.MemoryRSS, out.MemoryCache, out.MemoryMapped = s["total_rss"], s["total_cache"], s["total_mapped_file"]
		out.MemorySwap = s["total_swap"]
		out.PageFaults, out.MajorPageFaults = s["total_pgfault"], s["total_pgmajfault"]
	}
	inactive := s["total_inactive_file"]
	if cgroups.IsCgroup2UnifiedMode() {
		inactive = s["inactive_file"]
	}
	if out.MemoryUsage > inactive {
		out.MemoryWorkingSet = out.MemoryUsage - inactive
	}
	out.Pids, out.PidsLimit = st.PidsStats.Current, st.PidsStats.Limit
	out.OOMKills, _ = oomKills(path)
	if dir := procsDir(m); dir != "" {
		out.Procs, _ = cgroups.GetPids(dir)
	}
	ops := map[[2]uint64]map[string]uint64{}
	for _, e := range st.BlkioStats.IoServicedRecursive {
		k := [2]uint64{e.Major, e.Minor}
		if ops[k] == nil {
			ops[k] = map[string]uint64{}
		}
		ops[k][e.Op] = e.Value
	}
	for _, e := range st.BlkioStats.IoServiceBytesRecursive {
		if e.Op == "Total" || e.Op == "" {
			continue
		}
		out.Blkio = append(out.Blkio, BlkioStat{Major: e.Major, Minor: e.Minor, Op: e.Op, Bytes: e.Value, Ops: ops[[2]uint64{e.Major, e.Minor}][e.Op]})
	}
	return out, nil
}

// HasController tells whether this machine's cgroups have the controller
// name (cpu, memory, pids, hugetlb...).
func HasController(name string) bool {
	if cgroups.IsCgroup2UnifiedMode() {
		b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
		return err == nil && slices.Contains(strings.Fields(string(b)), name)
	}
	_, err := os.Stat(filepath.Join("/sys/fs/cgroup", name))
	return err == nil
}

// cgroupDir is the directory of the cgroup at path, of controller on
// cgroup v1.
func cgroupDir(path, controller string) string {
	if cgroups.IsCgroup2UnifiedMode() {
		return filepath.Join("/sys/fs/cgroup", path)
	}
	return filepath.Join("/sys/fs/cgroup", controller, path)
}

// oomKills reads the OOM kill count of the cgroup at path: oom_kill of
// memory.oom_control (v1) or memory.events (v2).
func oomKills(path string) (uint64, error) {
	file := filepath.Join(cgroupDir(path, "memory"), "memory.oom_control")
	if cgroups.IsCgroup2UnifiedMode() {
		file = filepath.Join(cgroupDir(path, "memory"), "memory.events")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	return oomKillField(b), nil
}

// oomKillField finds the value of the "oom_kill N" line of a memory
// controller's file.
func oomKillField(b []byte) uint64 {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if k, v, ok := bytes.Cut(sc.Bytes(), []byte(" ")); ok && string(k) == "oom_kill" {
			n, _ := strconv.ParseUint(string(v), 10, 64)
			return n
		}
	}
	return 0
}

// DiskUsage is what a container's writable layer holds.
type DiskUsage struct {
	// Dir is the layer's directory (the overlay's upper) on the host.
	Dir string
	// Bytes and Inodes are what its files use.
	Bytes, Inodes uint64
}

// ContainerDiskUsage measures the writable layer of the container name (a
// container from image layers; ErrNotFound for another).
func (p *Pod) ContainerDiskUsage(name string) (DiskUsage, error) {
	var u DiskUsage
	if err := validateContainerName(name); err != nil {
		return u, err
	}
	ov := filepath.Join(p.containerDir(name), "overlay")
	if b, err := os.ReadFile(filepath.Join(p.containerDir(name), upperRecord)); err == nil {
		ov = string(b)
	}
	u.Dir = filepath.Join(ov, "upper")
	if _, err := os.Lstat(u.Dir); err != nil {
		return u, errclass.New(ErrNotFound, "container %s in pod %s has no writable layer", name, p.name)
	}
	err := filepath.WalkDir(u.Dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return nil // gone meanwhile
		}
		u.Inodes++
		if info, err := d.Info(); err == nil {
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				u.Bytes += uint64(st.Blocks) * 512
			}
		}
		return nil
	})
	return u, err
}

// procsDir is where a cgroup's processes are listed: the pids hierarchy's
// directory (v1), or the unified one. Not the devices hierarchy's, where
// fs's GetPids and GetAllPids look and containers have no cgroup.
func procsDir(m cgroups.Manager) string {
	if dir := m.Path("pids"); dir != "" {
		return dir
	}
	return m.Path("")
}
