package cri

import (
	"context"
	"errors"
	"path"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podsb/podsb/sandbox"
)

// resourcesOf checks a container's linux.resources and turns them into
// the limits of its podsb cgroup. Each refusal names the field.
func resourcesOf(name string, r *runtimeapi.LinuxContainerResources) (sandbox.Resources, error) {
	var res sandbox.Resources
	if r == nil {
		return res, nil
	}
	bad := func(field string, v any, want string) (sandbox.Resources, error) {
		return res, invalidf("container %s: linux.resources.%s %v: want %s", name, field, v, want)
	}
	switch {
	case r.GetCpuShares() < 0 || r.GetCpuShares() == 1 || r.GetCpuShares() > 262144:
		return bad("cpu_shares", r.GetCpuShares(), "0 (none) or 2 to 262144")
	case r.GetCpuQuota() < -1 || (r.GetCpuQuota() > 0 && r.GetCpuQuota() < 1000):
		return bad("cpu_quota", r.GetCpuQuota(), "0 or -1 (none), or at least 1000 µs")
	case r.GetCpuPeriod() < 0 || (r.GetCpuPeriod() > 0 && (r.GetCpuPeriod() < 1000 || r.GetCpuPeriod() > 1000000)):
		return bad("cpu_period", r.GetCpuPeriod(), "0 (default) or 1000 to 1000000 µs")
	case r.GetMemoryLimitInBytes() < 0 || (r.GetMemoryLimitInBytes() > 0 && r.GetMemoryLimitInBytes() < sandbox.MinMemory):
		return bad("memory_limit_in_bytes", r.GetMemoryLimitInBytes(), "0 (none) or at least 4 MiB")
	case r.GetMemorySwapLimitInBytes() < -1 || (r.GetMemorySwapLimitInBytes() > 0 && r.GetMemorySwapLimitInBytes() < r.GetMemoryLimitInBytes()):
		return bad("memory_swap_limit_in_bytes", r.GetMemorySwapLimitInBytes(), "0 or -1 (none), or at least memory_limit_in_bytes")
	case r.GetMemorySwapLimitInBytes() > 0 && r.GetMemoryLimitInBytes() == 0:
		return bad("memory_swap_limit_in_bytes", r.GetMemorySwapLimitInBytes(), "0 without memory_limit_in_bytes")
	case r.GetOomScoreAdj() < -1000 || r.GetOomScoreAdj() > 1000:
		return bad("oom_score_adj", r.GetOomScoreAdj(), "-1000 to 1000")
	case len(r.GetUnified()) > 0:
		return res, unimplementedf("container %s: linux.resources.unified: cgroup v2 settings are not supported by podsb yet", name)
	}
	res = sandbox.Resources{
		CPUShares: uint64(r.GetCpuShares()), CPUQuota: r.GetCpuQuota(), CPUPeriod: uint64(r.GetCpuPeriod()),
		Memory: r.GetMemoryLimitInBytes(), MemorySwap: r.GetMemorySwapLimitInBytes(),
		CpusetCPUs: r.GetCpusetCpus(), CpusetMems: r.GetCpusetMems(), OOMScoreAdj: int(r.GetOomScoreAdj()),
	}
	for _, h := range r.GetHugepageLimits() {
		if h.GetPageSize() == "" {
			return res, invalidf("container %s: linux.resources.hugepage_limits: a limit without page_size", name)
		}
		if !sandbox.HasController("hugetlb") {
			return res, unimplementedf("container %s: linux.resources.hugepage_limits: this machine has no hugetlb cgroup controller", name)
		}
		if res.Hugepages == nil {
			res.Hugepages = map[string]uint64{}
		}
		res.Hugepages[h.GetPageSize()] = h.GetLimit()
	}
	// The cpuset lists (and what the fields above missed).
	if err := res.Check(); err != nil {
		return res, invalidf("container %s: linux.resources: %v", name, err)
	}
	return res, nil
}

// criResources is what ContainerStatus reports of a container's limits.
func criResources(r sandbox.Resources) *runtimeapi.ContainerResources {
	return &runtimeapi.ContainerResources{Linux: &runtimeapi.LinuxContainerResources{
		CpuShares: int64(r.CPUShares), CpuQuota: r.CPUQuota, CpuPeriod: int64(r.CPUPeriod),
		MemoryLimitInBytes: r.Memory, MemorySwapLimitInBytes: r.MemorySwap,
		CpusetCpus: r.CpusetCPUs, CpusetMems: r.CpusetMems, OomScoreAdj: int64(r.OOMScoreAdj),
	}}
}

// UpdateContainerResources gives a running container new limits in its
// cgroup, and records them; a container not running yet gets them when it
// starts.
func (s *Server) UpdateContainerResources(ctx context.Context, req *runtimeapi.UpdateContainerResourcesRequest) (*runtimeapi.UpdateContainerResourcesResponse, error) {
	rec, err := s.findContainer(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	if req.GetWindows() != nil {
		return nil, invalidf("update container %s: windows resources on a Linux runtime", rec.ID)
	}
	res, err := resourcesOf(rec.Name, req.GetLinux())
	if err != nil {
		return nil, err
	}
	s.refresh(&rec)
	switch rec.State {
	case stateRunning:
		p, err := sandbox.Load(s.root, rec.PodID)
		if err == nil {
			err = p.UpdateContainer(ctx, rec.ID, res)
		}
		if errors.Is(err, sandbox.ErrNotRunning) {
			return nil, failedPreconditionf("update container %s: it exited meanwhile", rec.ID)
		}
		if err != nil {
			return nil, grpcError("update container "+rec.ID, err)
		}
	case stateExited:
		return nil, failedPreconditionf("update container %s: it has exited", rec.ID)
	}
	rec.Run.Resources = res
	if err := s.updateContainer(&rec); err != nil {
		return nil, err
	}
	return &runtimeapi.UpdateContainerResourcesResponse{}, nil
}

// cgroupParentOf checks a pod's linux.cgroup_parent: a cgroupfs path (as
// kubelet's cgroupfs driver sends) that the pod's cgroup is made in.
// systemd slices are refused; a missing cgroup is refused by
// sandbox.Create.
func cgroupParentOf(p string) (string, error) {
	switch {
	case p == "":
		return "", nil
	case strings.HasSuffix(p, ".slice"):
		return "", unimplementedf("pod sandbox config: linux.cgroup_parent %q: systemd slices are not supported by podsb (use kubelet's cgroupfs driver)", p)
	case !path.IsAbs(p) || path.Clean(p) != p || p == "/":
		return "", invalidf("pod sandbox config: linux.cgroup_parent %q: want a clean absolute path below the cgroup root", p)
	}
	return p, nil
}

// RuntimeConfig tells kubelet the cgroup driver: podsb manages cgroups
// itself, by path (cgroupfs), so cgroup_parent is a path, not a slice.
func (s *Server) RuntimeConfig(context.Context, *runtimeapi.RuntimeConfigRequest) (*runtimeapi.RuntimeConfigResponse, error) {
	return &runtimeapi.RuntimeConfigResponse{Linux: &runtimeapi.LinuxRuntimeConfiguration{CgroupDriver: runtimeapi.CgroupDriver_CGROUPFS}}, nil
}
