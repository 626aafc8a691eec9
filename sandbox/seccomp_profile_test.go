package sandbox

import (
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/setup"
)

// rets are the return values of a compiled filter's RET K instructions.
func rets(f []byte) map[uint32]bool {
	out := map[uint32]bool{}
	for i := 0; i+8 <= len(f); i += 8 {
		if binary.NativeEndian.Uint16(f[i:]) == unix.BPF_RET|unix.BPF_K {
			out[binary.NativeEndian.Uint32(f[i+4:])] = true
		}
	}
	return out
}

// TestProfileFilter compiles profiles in the OCI JSON format: actions with
// their errno, the default action, and refusals of what the filter cannot
// express.
func TestProfileFilter(t *testing.T) {
	f, err := profileFilter(`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
		{"names": ["sethostname"], "action": "SCMP_ACT_ERRNO"},
		{"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
		{"names": ["no_such_syscall_yet"], "action": "SCMP_ACT_KILL"}]}`, defaultMask())
	if err != nil {
		t.Fatal(err)
	}
	r := rets(f)
	for _, want := range []uint32{unix.SECCOMP_RET_ALLOW, unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM), unix.SECCOMP_RET_ERRNO | uint32(unix.EACCES)} {
		if !r[want] {
			t.Errorf("no RET %#x in %v", want, r)
		}
	}
	// Only a default action: still a filter.
	if f, err := profileFilter(`{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1}`, defaultMask()); err != nil || !rets(f)[unix.SECCOMP_RET_ERRNO|1] {
		t.Errorf("default-only profile: %v, %v", rets(f), err)
	}
	for _, tc := range []struct{ name, profile, want string }{
		{"not JSON", `{"defaultAction": `, "Decoding"},
		{"empty", `{}`, "no defaultAction"},
		{"notify", `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}`, "SCMP_ACT_NOTIFY"},
		{"listener", `{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/l.sock", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO"}]}`, "listenerPath"},
		{"bad default", `{"defaultAction": "SCMP_ACT_FLY"}`, "defaultAction"},
		{"masked-equal mask", `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["clone"], "action": "SCMP_ACT_ERRNO",
			"args": [{"index": 0, "value": 3, "valueTwo": 1, "op": "SCMP_CMP_MASKED_EQ"}]}]}`, "argument check"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckSeccomp(tc.profile)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want ErrInvalid with %q", err, tc.want)
			}
		})
	}
}

// TestPrivilegeOpsNewPrivs checks the order of a process's last
// operations: with no_new_privs, the filter after it, last; without, the
// filter while still root (before SetIDs), and no NoNewPrivs at all.
func TestPrivilegeOpsNewPrivs(t *testing.T) {
	setIDs := []setup.Op{{Code: setup.SetIDs, Num: 1000}}
	codes := func(ops []setup.Op) []setup.Code {
		var out []setup.Code
		for _, o := range ops {
			out = append(out, o.Code)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		sec  Security
		all  bool
		want []setup.Code
	}{
		{"default", Security{}, false, []setup.Code{setup.Caps, setup.SetIDs, setup.NoNewPrivs, setup.Seccomp}},
		{"new privileges", Security{NewPrivs: true}, false, []setup.Code{setup.Caps, setup.Seccomp, setup.SetIDs}},
		{"new privileges, all capabilities", Security{NewPrivs: true}, true, []setup.Code{setup.Seccomp, setup.SetIDs}},
		{"new privileges, unconfined", Security{NewPrivs: true, Unconfined: true}, false, []setup.Code{setup.Caps, setup.SetIDs}},
		{"profile", Security{Seccomp: `{"defaultAction": "SCMP_ACT_ALLOW"}`}, false, []setup.Code{setup.Caps, setup.SetIDs, setup.NoNewPrivs, setup.Seccomp}},
		{"privileged ignores the profile", Security{Privileged: true, Seccomp: `{"defaultAction": "SCMP_ACT_ALLOW"}`}, true, []setup.Code{setup.SetIDs}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ops, err := tc.sec.privilegeOps(1000, defaultMask(), tc.all, setIDs)
			if err != nil {
				t.Fatal(err)
			}
			if got := codes(ops); !slices.Equal(got, tc.want) {
				t.Errorf("ops %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := (Security{Seccomp: "nope"}).privilegeOps(0, defaultMask(), false, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("a bad profile: %v", err)
	}
}
