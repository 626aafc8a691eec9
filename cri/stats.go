package cri

import (
	"context"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podsb/podsb/sandbox"
)

// Container stats come from /proc until containers have cgroups of their
// own: a container's processes are those in its mount namespace (its
// pinned handle's), its CPU the sum of their user and system time, its
// memory the sum of their resident sets. Children that exited are not
// counted, and shared pages count once per process: an estimate, which
// ContainerStats documents as such in docs/cri.md.

// clockTicks is the kernel's USER_HZ, the unit of /proc/PID/stat times:
// 100 on every Linux architecture podsb runs on.
const clockTicks = 100

// usage is what /proc says of a container's processes now.
type usage struct {
	cpuNanos uint64
	rssBytes uint64
}

// usageOf sums the usage of the processes in the mount namespace pinned at
// handle.
func usageOf(handle string) (usage, bool) {
	var u usage
	var want unix.Stat_t
	if err := unix.Stat(handle, &want); err != nil {
		return u, false
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return u, false
	}
	page := uint64(os.Getpagesize())
	for _, e := range ents {
		pid := e.Name()
		if pid[0] < '0' || pid[0] > '9' {
			continue
		}
		var st unix.Stat_t
		if unix.Stat("/proc/"+pid+"/ns/mnt", &st) != nil || st.Ino != want.Ino || st.Dev != want.Dev {
			continue
		}
		b, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command, which may hold spaces and parens.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 22 {
			continue
		}
		utime, _ := strconv.ParseUint(f[11], 10, 64)
		stime, _ := strconv.ParseUint(f[12], 10, 64)
		rss, _ := strconv.ParseUint(f[21], 10, 64)
		u.cpuNanos += (utime + stime) * uint64(time.Second/clockTicks)
		u.rssBytes += rss * page
	}
	return u, true
}

// statsOf is the ContainerStats of rec.
func (s *Server) statsOf(rec *containerRecord) *runtimeapi.ContainerStats {
	now := time.Now().UnixNano()
	st := &runtimeapi.ContainerStats{
		Attributes: &runtimeapi.ContainerAttributes{Id: rec.ID, Metadata: rec.metadata(), Labels: rec.Labels, Annotations: rec.Annotations},
		Cpu:        &runtimeapi.CpuUsage{Timestamp: now, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{}},
		Memory:     &runtimeapi.MemoryUsage{Timestamp: now, WorkingSetBytes: &runtimeapi.UInt64Value{}, RssBytes: &runtimeapi.UInt64Value{}},
	}
	if rec.State != stateRunning {
		return st
	}
	p, err := sandbox.Load(s.root, rec.PodID)
	if err != nil {
		return st
	}
	cs, err := p.Container(rec.ID)
	if err != nil {
		return st
	}
	if u, ok := usageOf(cs.MountNamespace); ok {
		st.Cpu.UsageCoreNanoSeconds.Value = u.cpuNanos
		st.Memory.WorkingSetBytes.Value = u.rssBytes
		st.Memory.RssBytes.Value = u.rssBytes
	}
	return st
}

// ContainerStats reports a container's CPU and memory use (see above).
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
	s.mu.Lock()
	recs := make([]containerRecord, 0, len(s.containers))
	for _, r := range s.containers {
		recs = append(recs, *r)
	}
	s.mu.Unlock()
	resp := &runtimeapi.ListContainerStatsResponse{}
	for i := range recs {
		r := &recs[i]
		if !strings.HasPrefix(r.ID, f.GetId()) || !strings.HasPrefix(r.PodID, f.GetPodSandboxId()) || !labelsMatch(r.Labels, f.GetLabelSelector()) {
			continue
		}
		s.refresh(r)
		resp.Stats = append(resp.Stats, s.statsOf(r))
	}
	return resp, nil
}
