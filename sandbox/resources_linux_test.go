package sandbox

import (
	"errors"
	"strings"
	"testing"
)

func TestResourcesCheck(t *testing.T) {
	for _, c := range []struct {
		name string
		r    Resources
		want string // "" for valid; else a part of the error
	}{
		{"none", Resources{}, ""},
		{"all", Resources{CPUShares: 512, CPUQuota: 20000, CPUPeriod: 100000, Memory: 64 << 20, MemorySwap: 64 << 20, Pids: 10, CpusetCPUs: "0-1,3", CpusetMems: "0", OOMScoreAdj: -999}, ""},
		{"unlimited quota and swap", Resources{CPUQuota: -1, Memory: 64 << 20, MemorySwap: -1}, ""},
		{"shares 1", Resources{CPUShares: 1}, "cpu shares"},
		{"shares too many", Resources{CPUShares: 262145}, "cpu shares"},
		{"quota small", Resources{CPUQuota: 999}, "cpu quota"},
		{"quota negative", Resources{CPUQuota: -2}, "cpu quota"},
		{"period small", Resources{CPUPeriod: 999}, "cpu period"},
		{"period large", Resources{CPUPeriod: 1000001}, "cpu period"},
		{"memory negative", Resources{Memory: -1}, "memory limit"},
		{"memory small", Resources{Memory: 1 << 20}, "memory limit"},
		{"swap below memory", Resources{Memory: 64 << 20, MemorySwap: 32 << 20}, "memory swap"},
		{"swap without memory", Resources{MemorySwap: 64 << 20}, "memory swap"},
		{"pids negative", Resources{Pids: -1}, "pids limit"},
		{"pids too many", Resources{Pids: MaxPids + 1}, "pids limit"},
		{"oom adj", Resources{OOMScoreAdj: 1001}, "oom score adj"},
		{"cpuset letters", Resources{CpusetCPUs: "0-x"}, "cpuset cpus"},
		{"cpuset empty part", Resources{CpusetCPUs: "0,,1"}, "cpuset cpus"},
		{"mems", Resources{CpusetMems: "-1"}, "cpuset mems"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.r.Check()
			switch {
			case c.want == "" && err != nil:
				t.Errorf("Check: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrInvalid)):
				t.Errorf("Check: %v, want ErrInvalid naming %q", err, c.want)
			}
		})
	}
}

func TestResetFrom(t *testing.T) {
	old := Resources{CPUShares: 512, CPUQuota: 20000, CPUPeriod: 50000, Memory: 64 << 20, MemorySwap: 64 << 20, Pids: 10}
	c := Resources{Memory: 128 << 20}.resetFrom(old)
	if c.CpuShares != 1024 || c.CpuQuota != -1 || c.CpuPeriod != cpuPeriod || c.Memory != 128<<20 || c.MemorySwap != -1 || c.PidsLimit == nil || *c.PidsLimit != -1 {
		t.Errorf("resetFrom: %+v", c)
	}
	if c := (Resources{}).resetFrom(Resources{}); c.CpuShares != 0 || c.CpuQuota != 0 || c.Memory != 0 || c.PidsLimit != nil {
		t.Errorf("resetFrom of nothing sets %+v", c)
	}
}

func TestOOMKillField(t *testing.T) {
	for in, want := range map[string]uint64{
		"oom_kill_disable 0\nunder_oom 0\noom_kill 3\n":               3,
		"low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\noom_group_kill 0\n": 2,
		"oom_kill_disable 0\nunder_oom 0\n":                           0,
		"":                                                            0,
	} {
		if got := oomKillField([]byte(in)); got != want {
			t.Errorf("oomKillField(%q) = %d, want %d", in, got, want)
		}
	}
}
