package sandbox

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestCommandCaps checks that a command's capabilities start from its
// pod's: what create dropped stays dropped unless the command adds it back
// (issue 11), and that the pod's Privileged is its pause's alone.
func TestCommandCaps(t *testing.T) {
	def := defaultMask()
	raw := uint64(1) << unix.CAP_NET_RAW
	admin := uint64(1) << unix.CAP_NET_ADMIN
	for _, tc := range []struct {
		name     string
		pod, cmd Security
		mask     uint64
		all      bool
	}{
		{"defaults", Security{}, Security{}, def, false},
		{"pod drops", Security{CapDrop: []string{"net_raw"}}, Security{}, def &^ raw, false},
		{"command adds back", Security{CapDrop: []string{"NET_RAW"}}, Security{CapAdd: []string{"net_raw"}}, def, false},
		{"pod adds", Security{CapAdd: []string{"net_admin"}}, Security{}, def | admin, false},
		{"command drops what pod added", Security{CapAdd: []string{"net_admin"}}, Security{CapDrop: []string{"net_admin"}}, def, false},
		{"pod drops all", Security{CapDrop: []string{"all"}}, Security{}, 0, false},
		{"pod drops all, command adds one", Security{CapDrop: []string{"all"}}, Security{CapAdd: []string{"chown"}}, 1 << unix.CAP_CHOWN, false},
		{"pod adds all", Security{CapAdd: []string{"all"}}, Security{}, 0, true},
		{"pod adds all, command drops one", Security{CapAdd: []string{"all"}}, Security{CapDrop: []string{"sys_admin"}}, allMask() &^ (1 << unix.CAP_SYS_ADMIN), false},
		{"privileged pod", Security{Privileged: true, CapDrop: []string{"net_raw"}}, Security{}, def &^ raw, false},
		{"privileged command", Security{CapDrop: []string{"net_raw"}}, Security{Privileged: true}, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mask, all, err := tc.cmd.commandCaps(tc.pod)
			if err != nil {
				t.Fatal(err)
			}
			if mask != tc.mask || all != tc.all {
				t.Errorf("mask %#x all %v, want %#x %v", mask, all, tc.mask, tc.all)
			}
		})
	}
	if _, _, err := (Security{CapAdd: []string{"nosuch"}}).commandCaps(Security{}); err == nil {
		t.Error("an unknown capability is accepted")
	}
}

func allMask() uint64 {
	var m uint64
	for _, v := range capNumbers {
		m |= 1 << uint(v)
	}
	return m
}
