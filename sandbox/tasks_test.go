package sandbox

import (
	"slices"
	"testing"
)

// TestPidsCgroupDirs checks which pids cgroups limit a create: its own
// and each ancestor below the root, in the v1 pids hierarchy (alone or
// with other controllers) or the unified one.
func TestPidsCgroupDirs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cgroup  string
		unified bool
		want    []string
	}{
		{"v1", "9:name=systemd:/\n8:pids:/a/b\n4:memory:/x\n0::/\n", false,
			[]string{"/sys/fs/cgroup/pids/a/b", "/sys/fs/cgroup/pids/a"}},
		{"v1 joined", "3:cpu,pids:/a\n", false, []string{"/sys/fs/cgroup/cpu,pids/a"}},
		{"v1 root", "8:pids:/\n", false, nil},
		{"hybrid", "8:memory:/m\n0::/u/v\n", false,
			[]string{"/sys/fs/cgroup/unified/u/v", "/sys/fs/cgroup/unified/u"}},
		{"unified", "0::/system.slice/x.service\n", true,
			[]string{"/sys/fs/cgroup/system.slice/x.service", "/sys/fs/cgroup/system.slice"}},
		{"not pids", "5:pidsx:/a\n", false, nil},
		{"garbage", "nonsense\n\n", true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := pidsCgroupDirs([]byte(tc.cgroup), tc.unified); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseLoadavgTasks(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"6.49 9.36 7.51 4/797 15357\n", 797, true},
		{"0.00 0.00 0.00 1/1 1", 1, true},
		{"6.49 9.36 7.51", 0, false},
		{"6.49 9.36 7.51 4-797 15357", 0, false},
		{"6.49 9.36 7.51 4/x 15357", 0, false},
	} {
		if n, ok := parseLoadavgTasks(tc.in); n != tc.want || ok != tc.ok {
			t.Errorf("%q: %d %v, want %d %v", tc.in, n, ok, tc.want, tc.ok)
		}
	}
}
