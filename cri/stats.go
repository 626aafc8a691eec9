package cri

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podsb/podsb/sandbox"
)

// Stats come from cgroups: a container's from its own cgroup (below its
// pod's), a pod's from the pod's cgroup, which holds its containers'
// (and pause, when the pod has limits). The writable layer is the
// container's overlay upper directory, measured by walking it. A pod's
// network is what its network namespace counts of its interfaces
// (/proc/PID/net/dev of its pause), loopback left out.

// containerStats reads the cgroup and writable layer of rec's container;
// ok is false for one with no cgroup (not running, or gone).
func (s *Server) containerStats(rec *containerRecord) (st sandbox.CgroupStats, du sandbox.DiskUsage, ok bool) {
	p, err := sandbox.Load(s.root, rec.PodID)
	if err != nil {
		return st, du, false
	}
	du, _ = p.ContainerDiskUsage(rec.ID)
	st, err = p.ContainerStats(rec.ID)
	return st, du, err == nil
}

// statsOf is the ContainerStats of rec.
func (s *Server) statsOf(rec *containerRecord) *runtimeapi.ContainerStats {
	now := time.Now().UnixNano()
	out := &runtimeapi.ContainerStats{
		Attributes: &runtimeapi.ContainerAttributes{Id: rec.ID, Metadata: rec.metadata(), Labels: rec.Labels, Annotations: rec.Annotations},
		Cpu:        &runtimeapi.CpuUsage{Timestamp: now, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{}},
		Memory:     &runtimeapi.MemoryUsage{Timestamp: now, WorkingSetBytes: &runtimeapi.UInt64Value{}},
	}
	st, du, ok := s.containerStats(rec)
	if du.Dir != "" {
		out.WritableLayer = &runtimeapi.FilesystemUsage{
			Timestamp: now, FsId: &runtimeapi.FilesystemIdentifier{Mountpoint: du.Dir},
			UsedBytes: &runtimeapi.UInt64Value{Value: du.Bytes}, InodesUsed: &runtimeapi.UInt64Value{Value: du.Inodes},
		}
	}
	if ok {
		out.Cpu, out.Memory = cpuOf(now, st), memoryOf(now, st)
	}
	return out
}

func cpuOf(now int64, st sandbox.CgroupStats) *runtimeapi.CpuUsage {
	return &runtimeapi.CpuUsage{Timestamp: now, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: st.CPUUsage}}
}

func memoryOf(now int64, st sandbox.CgroupStats) *runtimeapi.MemoryUsage {
	m := &runtimeapi.MemoryUsage{
		Timestamp:       now,
		WorkingSetBytes: &runtimeapi.UInt64Value{Value: st.MemoryWorkingSet},
		UsageBytes:      &runtimeapi.UInt64Value{Value: st.MemoryUsage},
		RssBytes:        &runtimeapi.UInt64Value{Value: st.MemoryRSS},
		PageFaults:      &runtimeapi.UInt64Value{Value: st.PageFaults},
		MajorPageFaults: &runtimeapi.UInt64Value{Value: st.MajorPageFaults},
	}
	if st.MemoryLimit > 0 && st.MemoryLimit > st.MemoryWorkingSet {
		m.AvailableBytes = &runtimeapi.UInt64Value{Value: st.MemoryLimit - st.MemoryWorkingSet}
	}
	return m
}

// ContainerStats reports a container's CPU, memory and writable layer use.
func (s *Server) ContainerStats(_ context.Context, req *runtimeapi.ContainerStatsRequest) (*runtimeapi.ContainerStatsResponse, error) {
	rec, err := s.findContainer(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	s.refresh(&rec)
	return &runtimeapi.ContainerStatsResponse{Stats: s.statsOf(&rec)}, nil
}

// ListContainerStats reports the stats of the containers that pass the
// filter: an ID or prefix, a pod sandbox ID or prefix, labels.
func (s *Server) ListContainerStats(_ context.Context, req *runtimeapi.ListContainerStatsRequest) (*runtimeapi.ListContainerStatsResponse, error) {
	f := req.GetFilter()
	resp := &runtimeapi.ListContainerStatsResponse{}
	for _, r := range s.containerRecords() {
		if !strings.HasPrefix(r.ID, f.GetId()) || !strings.HasPrefix(r.PodID, f.GetPodSandboxId()) || !labelsMatch(r.Labels, f.GetLabelSelector()) {
			continue
		}
		s.refresh(&r)
		resp.Stats = append(resp.Stats, s.statsOf(&r))
	}
	return resp, nil
}

func (s *Server) containerRecords() []containerRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	recs := make([]containerRecord, 0, len(s.containers))
	for _, r := range s.containers {
		recs = append(recs, *r)
	}
	return recs
}

func (s *Server) podRecords() []podRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	recs := make([]podRecord, 0, len(s.pods))
	for _, r := range s.pods {
		recs = append(recs, *r)
	}
	return recs
}

// netStats is what a network namespace counts of one interface.
type netStats struct {
	name                                    string
	rxBytes, rxPackets, rxErrors, rxDropped uint64
	txBytes, txPackets, txErrors, txDropped uint64
}

// podNetwork reads the interfaces of the network namespace of the pod
// whose pause has host PID pid, loopback left out.
func podNetwork(pid int) []netStats {
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/dev", pid))
	if err != nil {
		return nil
	}
	defer f.Close()
	return parseNetDev(f)
}

// parseNetDev reads /proc/net/dev's format: two header lines, then
// "NAME: rx bytes packets errs drop fifo frame compressed multicast, tx
// bytes packets errs drop ...".
func parseNetDev(r interface{ Read([]byte) (int, error) }) []netStats {
	var out []netStats
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		name = strings.TrimSpace(name)
		f := strings.Fields(rest)
		if !ok || name == "lo" || len(f) < 12 {
			continue
		}
		n := make([]uint64, 12)
		for i := range n {
			n[i], _ = strconv.ParseUint(f[i], 10, 64)
		}
		out = append(out, netStats{name: name, rxBytes: n[0], rxPackets: n[1], rxErrors: n[2], rxDropped: n[3],
			txBytes: n[8], txPackets: n[9], txErrors: n[10], txDropped: n[11]})
	}
	return out
}

// pausePID is the host PID of the running pod id's pause, or 0.
func (s *Server) pausePID(id string) (*sandbox.Pod, int) {
	p, err := sandbox.Load(s.root, id)
	if err != nil {
		return nil, 0
	}
	st := p.State()
	if st.Status != "running" || st.Pid <= 0 {
		return p, 0
	}
	return p, st.Pid
}

// podStatsOf is the PodSandboxStats of pod.
func (s *Server) podStatsOf(pod *podRecord) *runtimeapi.PodSandboxStats {
	now := time.Now().UnixNano()
	out := &runtimeapi.PodSandboxStats{
		Attributes: &runtimeapi.PodSandboxAttributes{Id: pod.ID, Metadata: pod.metadata(), Labels: pod.Labels, Annotations: pod.Annotations},
		Linux:      &runtimeapi.LinuxPodSandboxStats{},
	}
	p, pid := s.pausePID(pod.ID)
	if p != nil {
		if st, err := p.Stats(); err == nil {
			out.Linux.Cpu, out.Linux.Memory = cpuOf(now, st), memoryOf(now, st)
			out.Linux.Process = &runtimeapi.ProcessUsage{Timestamp: now, ProcessCount: &runtimeapi.UInt64Value{Value: st.Pids}}
		}
	}
	if pid > 0 {
		ns := &runtimeapi.NetworkUsage{Timestamp: now}
		for i, n := range podNetwork(pid) {
			u := &runtimeapi.NetworkInterfaceUsage{
				Name:     n.name,
				RxBytes:  &runtimeapi.UInt64Value{Value: n.rxBytes},
				RxErrors: &runtimeapi.UInt64Value{Value: n.rxErrors},
				TxBytes:  &runtimeapi.UInt64Value{Value: n.txBytes},
				TxErrors: &runtimeapi.UInt64Value{Value: n.txErrors},
			}
			if i == 0 {
				ns.DefaultInterface = u
			} else {
				ns.Interfaces = append(ns.Interfaces, u)
			}
		}
		out.Linux.Network = ns
	}
	for _, r := range s.containerRecords() {
		if r.PodID != pod.ID {
			continue
		}
		s.refresh(&r)
		if r.State == stateRunning {
			out.Linux.Containers = append(out.Linux.Containers, s.statsOf(&r))
		}
	}
	return out
}

// PodSandboxStats reports a pod's CPU, memory, processes and network, and
// its running containers' stats.
func (s *Server) PodSandboxStats(_ context.Context, req *runtimeapi.PodSandboxStatsRequest) (*runtimeapi.PodSandboxStatsResponse, error) {
	pod, err := s.find(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	return &runtimeapi.PodSandboxStatsResponse{Stats: s.podStatsOf(&pod)}, nil
}

// ListPodSandboxStats reports the stats of the pods that pass the filter:
// an ID or prefix, labels.
func (s *Server) ListPodSandboxStats(_ context.Context, req *runtimeapi.ListPodSandboxStatsRequest) (*runtimeapi.ListPodSandboxStatsResponse, error) {
	f := req.GetFilter()
	resp := &runtimeapi.ListPodSandboxStatsResponse{}
	for _, pod := range s.podRecords() {
		if !strings.HasPrefix(pod.ID, f.GetId()) || !labelsMatch(pod.Labels, f.GetLabelSelector()) {
			continue
		}
		resp.Stats = append(resp.Stats, s.podStatsOf(&pod))
	}
	return resp, nil
}
