package cri

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestResourcesOf(t *testing.T) {
	type R = runtimeapi.LinuxContainerResources
	for _, c := range []struct {
		name  string
		r     *R
		code  codes.Code
		field string
	}{
		{"nil", nil, codes.OK, ""},
		{"kubelet burstable", &R{CpuShares: 2, CpuPeriod: 100000, MemoryLimitInBytes: 64 << 20, MemorySwapLimitInBytes: 64 << 20, OomScoreAdj: 1000}, codes.OK, ""},
		{"shares negative", &R{CpuShares: -1}, codes.InvalidArgument, "linux.resources.cpu_shares"},
		{"quota", &R{CpuQuota: -5}, codes.InvalidArgument, "linux.resources.cpu_quota"},
		{"period", &R{CpuPeriod: 10}, codes.InvalidArgument, "linux.resources.cpu_period"},
		{"memory", &R{MemoryLimitInBytes: -1}, codes.InvalidArgument, "linux.resources.memory_limit_in_bytes"},
		{"swap", &R{MemoryLimitInBytes: 64 << 20, MemorySwapLimitInBytes: 1 << 20}, codes.InvalidArgument, "linux.resources.memory_swap_limit_in_bytes"},
		{"oom", &R{OomScoreAdj: -1001}, codes.InvalidArgument, "linux.resources.oom_score_adj"},
		{"cpuset", &R{CpusetCpus: "a"}, codes.InvalidArgument, "cpuset cpus"},
		{"unified", &R{Unified: map[string]string{"memory.high": "1"}}, codes.Unimplemented, "linux.resources.unified"},
		{"hugepage without size", &R{HugepageLimits: []*runtimeapi.HugepageLimit{{Limit: 1}}}, codes.InvalidArgument, "linux.resources.hugepage_limits"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := resourcesOf("ctr", c.r)
			if got := status.Code(err); got != c.code || (err != nil && !strings.Contains(err.Error(), c.field)) {
				t.Fatalf("resourcesOf: %v (%s), want %s naming %s", err, got, c.code, c.field)
			}
			if c.name == "kubelet burstable" && (res.CPUShares != 2 || res.Memory != 64<<20 || res.OOMScoreAdj != 1000) {
				t.Errorf("resources: %+v", res)
			}
		})
	}
}

func TestCgroupParentOf(t *testing.T) {
	for in, want := range map[string]codes.Code{
		"": codes.OK, "/kubepods/burstable/pod1": codes.OK,
		"kubepods": codes.InvalidArgument, "/a/../b": codes.InvalidArgument, "/": codes.InvalidArgument, "/a/": codes.InvalidArgument,
		"kubepods-burstable.slice": codes.Unimplemented, "/test.slice": codes.Unimplemented,
	} {
		_, err := cgroupParentOf(in)
		if got := status.Code(err); got != want || (err != nil && !strings.Contains(err.Error(), "linux.cgroup_parent")) {
			t.Errorf("cgroupParentOf(%q): %v, want %s naming linux.cgroup_parent", in, err, want)
		}
	}
}

func TestParseNetDev(t *testing.T) {
	in := `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0
  eth0:    1500      10    1    2    0     0          0         0      700       5    3    4    0     0       0          0
`
	got := parseNetDev(strings.NewReader(in))
	want := []netStats{{name: "eth0", rxBytes: 1500, rxPackets: 10, rxErrors: 1, rxDropped: 2, txBytes: 700, txPackets: 5, txErrors: 3, txDropped: 4}}
	if len(got) != 1 || got[0] != want[0] {
		t.Errorf("parseNetDev: %+v, want %+v", got, want)
	}
}

// TestMetricLabels: every metric a container or pod reports has a
// descriptor, and as many label values as the descriptor has keys (critest
// checks both).
func TestMetricLabels(t *testing.T) {
	descs := map[string]int{}
	resp, _ := (&Server{}).ListMetricDescriptors(t.Context(), nil)
	for _, d := range resp.Descriptors {
		if d.Help == "" || len(d.LabelKeys) == 0 {
			t.Errorf("descriptor %s: no help or labels", d.Name)
		}
		descs[d.Name] = len(d.LabelKeys)
	}
	m := metricSet{labels: make([]string, len(metricLabels))}
	for _, d := range metricDescs {
		m.add(d.name, 1, d.extra...)
	}
	for _, x := range m.out {
		if n, ok := descs[x.Name]; !ok || n != len(x.LabelValues) {
			t.Errorf("metric %s: %d label values, descriptor has %d (found %v)", x.Name, len(x.LabelValues), n, ok)
		}
	}
}
