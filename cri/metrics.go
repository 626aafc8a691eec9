package cri

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The CRI metrics (ListMetricDescriptors, ListPodSandboxMetrics) are
// cadvisor's container metrics, by name, read from the same sources as the
// stats (stats.go). Values are whole units of the name: a _seconds metric
// is truncated to seconds. Metrics podsb has no source for (pressure,
// hugetlb, ulimits) are not described; block I/O ones are there only for
// devices the blkio controller counted.

// metricLabels are the labels of every metric, sorted as cadvisor's.
var metricLabels = []string{"container", "id", "image", "name", "namespace", "pod"}

// metricDesc is one described metric: its help, its type, the labels it
// has after metricLabels.
type metricDesc struct {
	name, help string
	gauge      bool
	extra      []string
}

var metricDescs = []metricDesc{
	{"container_blkio_device_usage_total", "Blkio device bytes usage.", false, []string{"device", "major", "minor", "operation"}},
	{"container_fs_reads_bytes_total", "Cumulative count of bytes read.", false, []string{"device"}},
	{"container_fs_reads_total", "Cumulative count of reads completed.", false, []string{"device"}},
	{"container_fs_writes_bytes_total", "Cumulative count of bytes written.", false, []string{"device"}},
	{"container_fs_writes_total", "Cumulative count of writes completed.", false, []string{"device"}},
	{"container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", false, nil},
	{"container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", false, nil},
	{"container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled.", false, nil},
	{"container_cpu_system_seconds_total", "Cumulative system cpu time consumed in seconds.", false, nil},
	{"container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", false, nil},
	{"container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.", false, nil},
	{"container_file_descriptors", "Number of open file descriptors for the container.", true, nil},
	{"container_fs_inodes_free", "Number of available Inodes.", true, []string{"device"}},
	{"container_fs_inodes_total", "Number of Inodes.", true, []string{"device"}},
	{"container_fs_limit_bytes", "Number of bytes that can be consumed by the container on this filesystem.", true, []string{"device"}},
	{"container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.", true, []string{"device"}},
	{"container_last_seen", "Last time a container was seen by the exporter.", true, nil},
	{"container_memory_cache", "Number of bytes of page cache memory.", true, nil},
	{"container_memory_failcnt", "Number of memory usage hits limits.", false, nil},
	{"container_memory_failures_total", "Cumulative count of memory allocation failures.", false, []string{"failure_type", "scope"}},
	{"container_memory_kernel_usage", "Size of kernel memory allocated in bytes.", true, nil},
	{"container_memory_mapped_file", "Size of memory mapped files in bytes.", true, nil},
	{"container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes.", true, nil},
	{"container_memory_rss", "Size of RSS in bytes.", true, nil},
	{"container_memory_swap", "Container swap usage in bytes.", true, nil},
	{"container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed.", true, nil},
	{"container_memory_working_set_bytes", "Current working set in bytes.", true, nil},
	{"container_network_receive_bytes_total", "Cumulative count of bytes received.", false, []string{"interface"}},
	{"container_network_receive_errors_total", "Cumulative count of errors encountered while receiving.", false, []string{"interface"}},
	{"container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving.", false, []string{"interface"}},
	{"container_network_receive_packets_total", "Cumulative count of packets received.", false, []string{"interface"}},
	{"container_network_transmit_bytes_total", "Cumulative count of bytes transmitted.", false, []string{"interface"}},
	{"container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting.", false, []string{"interface"}},
	{"container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting.", false, []string{"interface"}},
	{"container_network_transmit_packets_total", "Cumulative count of packets transmitted.", false, []string{"interface"}},
	{"container_oom_events_total", "Count of out of memory events observed for the container.", false, nil},
	{"container_processes", "Number of processes running inside the container.", true, nil},
	{"container_sockets", "Number of open sockets for the container.", true, nil},
	{"container_spec_cpu_period", "CPU period of the container.", true, nil},
	{"container_spec_cpu_quota", "CPU quota of the container.", true, nil},
	{"container_spec_cpu_shares", "CPU share of the container.", true, nil},
	{"container_spec_memory_limit_bytes", "Memory limit for the container.", true, nil},
	{"container_spec_memory_swap_limit_bytes", "Memory swap limit for the container.", true, nil},
	{"container_start_time_seconds", "Start time of the container since unix epoch in seconds.", true, nil},
	{"container_threads", "Number of threads running inside the container.", true, nil},
	{"container_threads_max", "Maximum number of threads allowed inside the container, 0 for no limit.", true, nil},
}

// ListMetricDescriptors describes the metrics of ListPodSandboxMetrics.
func (s *Server) ListMetricDescriptors(context.Context, *runtimeapi.ListMetricDescriptorsRequest) (*runtimeapi.ListMetricDescriptorsResponse, error) {
	resp := &runtimeapi.ListMetricDescriptorsResponse{}
	for _, d := range metricDescs {
		resp.Descriptors = append(resp.Descriptors, &runtimeapi.MetricDescriptor{
			Name: d.name, Help: d.help, LabelKeys: append(append([]string{}, metricLabels...), d.extra...),
		})
	}
	return resp, nil
}

// metricSet gathers the metrics of one container (or pod), with the
// values of metricLabels.
type metricSet struct {
	labels []string
	out    []*runtimeapi.Metric
}

func (m *metricSet) add(name string, v uint64, extra ...string) {
	typ := runtimeapi.MetricType_COUNTER
	for _, d := range metricDescs {
		if d.name == name && d.gauge {
			typ = runtimeapi.MetricType_GAUGE
		}
	}
	m.out = append(m.out, &runtimeapi.Metric{
		Name: name, MetricType: typ, Value: &runtimeapi.UInt64Value{Value: v},
		LabelValues: append(append([]string{}, m.labels...), extra...),
	})
}

// ListPodSandboxMetrics reports the metrics of every ready pod: its
// network, and each running container's cgroup and writable layer.
func (s *Server) ListPodSandboxMetrics(context.Context, *runtimeapi.ListPodSandboxMetricsRequest) (*runtimeapi.ListPodSandboxMetricsResponse, error) {
	resp := &runtimeapi.ListPodSandboxMetricsResponse{}
	recs := s.containerRecords()
	for _, pod := range s.podRecords() {
		_, pid := s.pausePID(pod.ID)
		if pid <= 0 {
			continue
		}
		pm := &runtimeapi.PodSandboxMetrics{PodSandboxId: pod.ID}
		// The pod's own: cadvisor's pause container, named POD.
		ps := metricSet{labels: []string{"POD", pod.ID, "", pod.ID, pod.Namespace, pod.Name}}
		nets := podNetwork(pid)
		for _, n := range nets {
			ps.add("container_network_receive_bytes_total", n.rxBytes, n.name)
			ps.add("container_network_receive_errors_total", n.rxErrors, n.name)
			ps.add("container_network_receive_packets_dropped_total", n.rxDropped, n.name)
			ps.add("container_network_receive_packets_total", n.rxPackets, n.name)
			ps.add("container_network_transmit_bytes_total", n.txBytes, n.name)
			ps.add("container_network_transmit_errors_total", n.txErrors, n.name)
			ps.add("container_network_transmit_packets_dropped_total", n.txDropped, n.name)
			ps.add("container_network_transmit_packets_total", n.txPackets, n.name)
		}
		pm.Metrics = ps.out
		for _, r := range recs {
			if r.PodID != pod.ID {
				continue
			}
			s.refresh(&r)
			if r.State != stateRunning {
				continue
			}
			if cm := s.containerMetrics(&pod, &r); cm != nil {
				pm.ContainerMetrics = append(pm.ContainerMetrics, cm)
			}
		}
		resp.PodMetrics = append(resp.PodMetrics, pm)
	}
	return resp, nil
}

// containerMetrics is the metrics of the running container rec of pod.
func (s *Server) containerMetrics(pod *podRecord, rec *containerRecord) *runtimeapi.ContainerMetrics {
	st, du, ok := s.containerStats(rec)
	if !ok {
		return nil
	}
	m := metricSet{labels: []string{rec.Name, rec.ID, rec.Image, rec.ID, pod.Namespace, pod.Name}}
	m.add("container_cpu_cfs_periods_total", st.CPUPeriods)
	m.add("container_cpu_cfs_throttled_periods_total", st.CPUThrottledPeriods)
	m.add("container_cpu_cfs_throttled_seconds_total", st.CPUThrottledTime/uint64(time.Second))
	m.add("container_cpu_system_seconds_total", st.CPUSystem/uint64(time.Second))
	m.add("container_cpu_usage_seconds_total", st.CPUUsage/uint64(time.Second))
	m.add("container_cpu_user_seconds_total", st.CPUUser/uint64(time.Second))
	fds, sockets, threads := processCounts(st.Procs)
	m.add("container_file_descriptors", fds)
	m.add("container_sockets", sockets)
	m.add("container_processes", uint64(len(st.Procs)))
	m.add("container_threads", threads)
	m.add("container_threads_max", st.PidsLimit)
	if du.Dir != "" {
		var fs unix.Statfs_t
		if unix.Statfs(du.Dir, &fs) == nil {
			m.add("container_fs_inodes_free", fs.Ffree, du.Dir)
			m.add("container_fs_inodes_total", fs.Files, du.Dir)
			m.add("container_fs_limit_bytes", fs.Blocks*uint64(fs.Bsize), du.Dir)
		}
		m.add("container_fs_usage_bytes", du.Bytes, du.Dir)
	}
	for _, b := range st.Blkio {
		major, minor := strconv.FormatUint(b.Major, 10), strconv.FormatUint(b.Minor, 10)
		dev := major + ":" + minor
		m.add("container_blkio_device_usage_total", b.Bytes, dev, major, minor, b.Op)
		switch b.Op {
		case "Read":
			m.add("container_fs_reads_bytes_total", b.Bytes, dev)
			m.add("container_fs_reads_total", b.Ops, dev)
		case "Write":
			m.add("container_fs_writes_bytes_total", b.Bytes, dev)
			m.add("container_fs_writes_total", b.Ops, dev)
		}
	}
	m.add("container_last_seen", uint64(time.Now().Unix()))
	m.add("container_memory_cache", st.MemoryCache)
	m.add("container_memory_failcnt", st.MemoryFailcnt)
	m.add("container_memory_failures_total", st.PageFaults-st.MajorPageFaults, "pgfault", "container")
	m.add("container_memory_failures_total", st.MajorPageFaults, "pgmajfault", "container")
	m.add("container_memory_kernel_usage", st.MemoryKernel)
	m.add("container_memory_mapped_file", st.MemoryMapped)
	m.add("container_memory_max_usage_bytes", st.MemoryMaxUsage)
	m.add("container_memory_rss", st.MemoryRSS)
	m.add("container_memory_swap", st.MemorySwap)
	m.add("container_memory_usage_bytes", st.MemoryUsage)
	m.add("container_memory_working_set_bytes", st.MemoryWorkingSet)
	m.add("container_oom_events_total", st.OOMKills)
	res := rec.Run.Resources
	period := res.CPUPeriod
	if period == 0 {
		period = 100000
	}
	quota := uint64(0)
	if res.CPUQuota > 0 {
		quota = uint64(res.CPUQuota)
	}
	shares := res.CPUShares
	if shares == 0 {
		shares = 1024 // the kernel's default
	}
	m.add("container_spec_cpu_period", period)
	m.add("container_spec_cpu_quota", quota)
	m.add("container_spec_cpu_shares", shares)
	m.add("container_spec_memory_limit_bytes", uint64(max(res.Memory, 0)))
	m.add("container_spec_memory_swap_limit_bytes", uint64(max(res.MemorySwap, 0)))
	m.add("container_start_time_seconds", uint64(rec.Started/int64(time.Second)))
	return &runtimeapi.ContainerMetrics{ContainerId: rec.ID, Metrics: m.out}
}

// processCounts counts the open files, the sockets among them, and the
// threads of the processes pids.
func processCounts(pids []int) (fds, sockets, threads uint64) {
	for _, pid := range pids {
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		if ents, err := os.ReadDir(dir); err == nil {
			for _, e := range ents {
				fds++
				if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
					sockets++
				}
			}
		}
		if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid)); err == nil {
			threads += uint64(len(ents))
		}
	}
	return fds, sockets, threads
}
