package sandbox

import "strings"

// Resources are a container's resource limits, enforced with a cgroup of
// its own below the pod's (so the pod's Limits bound them too). A field
// left 0 (or empty) sets no limit.
type Resources struct {
	// CPUShares is the container's relative CPU weight (cpu.shares,
	// cpu.weight on cgroup v2): 2 to 262144.
	CPUShares uint64 `json:"cpuShares,omitempty"`
	// CPUQuota is the CPU time in µs the container may use per CPUPeriod;
	// -1 for no quota, else at least 1000.
	CPUQuota int64 `json:"cpuQuota,omitempty"`
	// CPUPeriod is the CFS period in µs, 1000 to 1000000 (100000 if 0).
	CPUPeriod uint64 `json:"cpuPeriod,omitempty"`
	// Memory is the most memory in bytes, at least MinMemory.
	Memory int64 `json:"memory,omitempty"`
	// MemorySwap is the most memory plus swap in bytes: at least Memory,
	// or -1 for unlimited swap.
	MemorySwap int64 `json:"memorySwap,omitempty"`
	// Pids is the most processes: 1 to MaxPids.
	Pids int64 `json:"pids,omitempty"`
	// CpusetCPUs and CpusetMems are the CPUs and memory nodes the
	// container may use, in the kernel's list format ("0-2,4").
	CpusetCPUs string `json:"cpusetCpus,omitempty"`
	CpusetMems string `json:"cpusetMems,omitempty"`
	// OOMScoreAdj is the container's processes' oom_score_adj: -1000 to
	// 1000.
	OOMScoreAdj int `json:"oomScoreAdj,omitempty"`
	// Hugepages limits the container's huge pages of each size ("2MB",
	// "1GB") in bytes; it needs the hugetlb controller.
	Hugepages map[string]uint64 `json:"hugepages,omitempty"`
}

// Check refuses resources the kernel would refuse, misread or silently
// ignore: each with one error naming the field.
func (r Resources) Check() error {
	switch {
	case r.CPUShares == 1 || r.CPUShares > 262144:
		return invalidf("cpu shares %d: want 2 to 262144", r.CPUShares)
	case r.CPUQuota < -1 || (r.CPUQuota > 0 && r.CPUQuota < 1000):
		return invalidf("cpu quota %d: want -1 (none) or at least 1000 µs", r.CPUQuota)
	case r.CPUPeriod != 0 && (r.CPUPeriod < 1000 || r.CPUPeriod > 1000000):
		return invalidf("cpu period %d: want 1000 to 1000000 µs", r.CPUPeriod)
	case r.Memory < 0 || (r.Memory > 0 && r.Memory < MinMemory):
		return invalidf("memory limit %d: want at least 4 MiB", r.Memory)
	case r.MemorySwap < -1 || (r.MemorySwap > 0 && r.MemorySwap < r.Memory):
		return invalidf("memory swap limit %d: want -1 (unlimited) or at least the memory limit %d", r.MemorySwap, r.Memory)
	case r.MemorySwap > 0 && r.Memory == 0:
		return invalidf("memory swap limit %d: without a memory limit", r.MemorySwap)
	case r.Pids < 0 || r.Pids > MaxPids:
		return invalidf("pids limit %d: want 1 to %d processes", r.Pids, MaxPids)
	case r.OOMScoreAdj < -1000 || r.OOMScoreAdj > 1000:
		return invalidf("oom score adj %d: want -1000 to 1000", r.OOMScoreAdj)
	case !cpuList(r.CpusetCPUs):
		return invalidf("cpuset cpus %q: want a list such as 0-2,4", r.CpusetCPUs)
	case !cpuList(r.CpusetMems):
		return invalidf("cpuset mems %q: want a list such as 0-1", r.CpusetMems)
	}
	return nil
}

// cpuList tells whether s is empty or in the kernel's list format: numbers
// and ranges, comma-separated.
func cpuList(s string) bool {
	if s == "" {
		return true
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		if !digits(lo) || (isRange && !digits(hi)) {
			return false
		}
	}
	return true
}

func digits(s string) bool {
	return s != "" && len(s) <= 6 && strings.Trim(s, "0123456789") == ""
}
