package sandbox

import (
	"errors"
	"reflect"
	"testing"
)

func TestSysctlPaths(t *testing.T) {
	got, err := sysctlPaths([]Sysctl{
		{"net.ipv4.ip_unprivileged_port_start", "0"},
		{"kernel.shm_rmid_forced", "1"},
		{"fs.mqueue.msg_max", "100"},
		{"net/ipv4/conf/eth0.1/rp_filter", "2"},
		{"kernel.sem", "250 32000 32 128"},
		{"kernel.domainname", "example"},
	}, false, false)
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]string{
		{"fs/mqueue/msg_max", "100"},
		{"kernel/domainname", "example"},
		{"kernel/sem", "250 32000 32 128"},
		{"kernel/shm_rmid_forced", "1"},
		{"net/ipv4/ip_unprivileged_port_start", "0"},
		{"net/ipv4/conf/eth0.1/rp_filter", "2"}, // keys sort by their spelling
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestSysctlPathsRefused(t *testing.T) {
	for _, tc := range []struct {
		s                Sysctl
		hostNet, hostIPC bool
	}{
		{s: Sysctl{"kernel.panic", "1"}},                // not namespaced
		{s: Sysctl{"vm.swappiness", "1"}},               // not namespaced
		{s: Sysctl{"kernel.hostname", "x"}},             // the pod's hostname
		{s: Sysctl{"fs.file-max", "1"}},                 // not namespaced
		{s: Sysctl{"net", "1"}},                         // a directory
		{s: Sysctl{"net.ipv4..ip_forward", "1"}},        // empty name
		{s: Sysctl{"net/ipv4/../../kernel/panic", "1"}}, // ..
		{s: Sysctl{"net.ipv4.ip_forward/", "1"}},
		{s: Sysctl{"/net/ipv4/ip_forward", "1"}},
		{s: Sysctl{"net.ipv4.ip*", "1"}},
		{s: Sysctl{"net.ipv4.ip_forward", "1\n"}},   // newline
		{s: Sysctl{"net.ipv4.ip_forward", "1\x00"}}, // NUL
		{s: Sysctl{"net.ipv4.ip_forward", ""}},      // empty
		{s: Sysctl{"net.ipv4.ip_forward", "1"}, hostNet: true},
		{s: Sysctl{"kernel.domainname", "x"}, hostNet: true},
		{s: Sysctl{"kernel.shm_rmid_forced", "1"}, hostIPC: true},
		{s: Sysctl{"fs.mqueue.msg_max", "10"}, hostIPC: true},
	} {
		_, err := sysctlPaths([]Sysctl{tc.s}, tc.hostNet, tc.hostIPC)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%q (host net %v, IPC %v): got %v, want ErrInvalid", tc.s, tc.hostNet, tc.hostIPC, err)
		}
	}
	// The same sysctl twice, in its two spellings.
	if _, err := sysctlPaths([]Sysctl{{"net.ipv4.ip_forward", "1"}, {"net/ipv4/ip_forward", "0"}}, false, false); !errors.Is(err, ErrInvalid) {
		t.Errorf("a sysctl twice: got %v, want ErrInvalid", err)
	}
}
