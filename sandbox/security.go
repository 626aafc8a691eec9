package sandbox

import (
	"fmt"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/setup"
)

// Security is what the processes of a pod, or one command, may do.
type Security struct {
	// CapAdd and CapDrop change the capabilities, by name (CAP_ optional,
	// any case), or "ALL": a pod's (Config.Security) are DefaultCaps
	// changed; a command's (ExecConfig.Security) are the pod's changed, so
	// what the pod dropped stays dropped unless the command adds it.
	CapAdd, CapDrop []string
	// Privileged keeps every capability, and turns off no_new_privs, the
	// seccomp filter and, for a pod, the masking of /proc.
	Privileged bool
	// Unconfined turns off the default seccomp filter alone
	// (--security-opt seccomp=unconfined).
	Unconfined bool
	// Seccomp, if set, is a seccomp profile in the OCI (Docker) JSON
	// format that replaces the default filter (unless Privileged or
	// Unconfined). It is compiled to a BPF filter for this architecture:
	// CheckSeccomp tells what it cannot express.
	Seccomp string `json:"seccomp,omitempty"`
	// NewPrivs leaves no_new_privs off, so that set-user-ID programs raise
	// privileges (the CRI's no_new_privs false); podsb's own default is on.
	NewPrivs bool `json:"newPrivs,omitempty"`
}

// privilegeOps are the last operations before a process of a pod runs:
// the capability sets (bounding before, the others after the user changes,
// as runc orders them: uid 0 keeps mask, others end with none), then
// no_new_privs and the seccomp filter.
func (s Security) privilegeOps(uid uint32, mask uint64, all bool, setIDs []setup.Op) ([]setup.Op, error) {
	var ops []setup.Op
	if !all {
		ops = append(ops, setup.Op{Code: setup.Caps, Num: mask})
	}
	ops = append(ops, setIDs...)
	if !all && uid == 0 {
		ops = append(ops, setup.Op{Code: setup.CapSet, Num: mask})
	}
	if s.Privileged {
		return ops, nil
	}
	var filter []setup.Op
	if !s.Unconfined {
		if all {
			mask = ^uint64(0)
		}
		var f []byte
		var err error
		if s.Seccomp != "" {
			f, err = profileFilter(s.Seccomp, mask)
		} else {
			f, err = seccompFilter(mask)
		}
		if err != nil {
			return nil, err
		}
		filter = []setup.Op{{Code: setup.Seccomp, Str: []string{string(f)}}}
	}
	if !s.NewPrivs {
		ops = append(ops, setup.Op{Code: setup.NoNewPrivs})
		return append(ops, filter...), nil
	}
	// Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: it
	// goes in while the process is still root with every capability,
	// before the user changes (as runc orders it). The filter then sees
	// the user change, which every profile worth using allows.
	at := 0
	if !all {
		at = 1 // after the bounding set
	}
	ops = append(ops[:at:at], append(filter, ops[at:]...)...)
	return ops, nil
}

// DefaultCaps are the capabilities a pod's processes keep, as Docker's and
// the OCI runtimes' default configuration gives them.
var DefaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

var capNumbers = map[string]int{
	"CAP_CHOWN": unix.CAP_CHOWN, "CAP_DAC_OVERRIDE": unix.CAP_DAC_OVERRIDE, "CAP_DAC_READ_SEARCH": unix.CAP_DAC_READ_SEARCH,
	"CAP_FOWNER": unix.CAP_FOWNER, "CAP_FSETID": unix.CAP_FSETID, "CAP_KILL": unix.CAP_KILL, "CAP_SETGID": unix.CAP_SETGID,
	"CAP_SETUID": unix.CAP_SETUID, "CAP_SETPCAP": unix.CAP_SETPCAP, "CAP_LINUX_IMMUTABLE": unix.CAP_LINUX_IMMUTABLE,
	"CAP_NET_BIND_SERVICE": unix.CAP_NET_BIND_SERVICE, "CAP_NET_BROADCAST": unix.CAP_NET_BROADCAST, "CAP_NET_ADMIN": unix.CAP_NET_ADMIN,
	"CAP_NET_RAW": unix.CAP_NET_RAW, "CAP_IPC_LOCK": unix.CAP_IPC_LOCK, "CAP_IPC_OWNER": unix.CAP_IPC_OWNER,
	"CAP_SYS_MODULE": unix.CAP_SYS_MODULE, "CAP_SYS_RAWIO": unix.CAP_SYS_RAWIO, "CAP_SYS_CHROOT": unix.CAP_SYS_CHROOT,
	"CAP_SYS_PTRACE": unix.CAP_SYS_PTRACE, "CAP_SYS_PACCT": unix.CAP_SYS_PACCT, "CAP_SYS_ADMIN": unix.CAP_SYS_ADMIN,
	"CAP_SYS_BOOT": unix.CAP_SYS_BOOT, "CAP_SYS_NICE": unix.CAP_SYS_NICE, "CAP_SYS_RESOURCE": unix.CAP_SYS_RESOURCE,
	"CAP_SYS_TIME": unix.CAP_SYS_TIME, "CAP_SYS_TTY_CONFIG": unix.CAP_SYS_TTY_CONFIG, "CAP_MKNOD": unix.CAP_MKNOD,
	"CAP_LEASE": unix.CAP_LEASE, "CAP_AUDIT_WRITE": unix.CAP_AUDIT_WRITE, "CAP_AUDIT_CONTROL": unix.CAP_AUDIT_CONTROL,
	"CAP_SETFCAP": unix.CAP_SETFCAP, "CAP_MAC_OVERRIDE": unix.CAP_MAC_OVERRIDE, "CAP_MAC_ADMIN": unix.CAP_MAC_ADMIN,
	"CAP_SYSLOG": unix.CAP_SYSLOG, "CAP_WAKE_ALARM": unix.CAP_WAKE_ALARM, "CAP_BLOCK_SUSPEND": unix.CAP_BLOCK_SUSPEND,
	"CAP_AUDIT_READ": unix.CAP_AUDIT_READ, "CAP_PERFMON": unix.CAP_PERFMON, "CAP_BPF": unix.CAP_BPF,
	"CAP_CHECKPOINT_RESTORE": unix.CAP_CHECKPOINT_RESTORE,
}

// capName normalizes a capability name: "net_admin" is CAP_NET_ADMIN.
func capName(s string) string {
	s = strings.ToUpper(s)
	if s != "ALL" && !strings.HasPrefix(s, "CAP_") {
		s = "CAP_" + s
	}
	return s
}

// capMask returns the capabilities to keep as a bit mask, or all when every
// capability stays (Privileged, or ALL added and none dropped), starting
// from DefaultCaps: the set of a pod's pause.
func (s Security) capMask() (mask uint64, all bool, err error) {
	return s.capMaskFrom(defaultMask(), false)
}

// commandCaps returns the capabilities of a command (exec or run) in a pod
// created with pod: the command's CapDrop and CapAdd change the pod's set,
// DefaultCaps with the pod's own drops and adds, so a capability dropped at
// create stays dropped unless the command adds it back. The pod's
// Privileged and Unconfined are its pause's alone.
func (s Security) commandCaps(pod Security) (mask uint64, all bool, err error) {
	pod = Security{CapAdd: pod.CapAdd, CapDrop: pod.CapDrop}
	base, baseAll, err := pod.capMask()
	if err != nil {
		return 0, false, fmt.Errorf("the pod's capabilities: %w", err)
	}
	return s.capMaskFrom(base, baseAll)
}

// defaultMask is DefaultCaps as a bit mask.
func defaultMask() uint64 {
	var mask uint64
	for _, c := range DefaultCaps {
		mask |= 1 << uint(capNumbers[c])
	}
	return mask
}

// capMaskFrom applies s to base, or to every capability with baseAll.
func (s Security) capMaskFrom(base uint64, baseAll bool) (mask uint64, all bool, err error) {
	if s.Privileged {
		return 0, true, nil
	}
	set := map[int]bool{}
	for _, v := range capNumbers {
		if baseAll || base&(1<<uint(v)) != 0 {
			set[v] = true
		}
	}
	all = baseAll && len(s.CapDrop) == 0
	// Drops first, then adds, as Docker: --cap-drop ALL --cap-add X keeps X.
	for _, c := range s.CapDrop {
		switch n := capName(c); {
		case n == "ALL":
			set = map[int]bool{}
		case capNumbers[n] == 0 && n != "CAP_CHOWN":
			return 0, false, invalidf("--cap-drop %s: no such capability", c)
		default:
			delete(set, capNumbers[n])
		}
	}
	for _, c := range s.CapAdd {
		switch n := capName(c); {
		case n == "ALL":
			for _, v := range capNumbers {
				set[v] = true
			}
			all = true
		case capNumbers[n] == 0 && n != "CAP_CHOWN":
			return 0, false, invalidf("--cap-add %s: no such capability", c)
		default:
			set[capNumbers[n]] = true
		}
	}
	if all {
		return 0, true, nil
	}
	for c := range set {
		mask |= 1 << uint(c)
	}
	return mask, false, nil
}

// CapNames lists the names in a capability mask, sorted.
func CapNames(mask uint64) []string {
	var out []string
	for n, c := range capNumbers {
		if mask&(1<<uint(c)) != 0 {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// IsCap reports whether name is a capability podsb knows (CAP_ optional,
// any case) or ALL.
func IsCap(name string) bool {
	n := capName(name)
	_, ok := capNumbers[n]
	return ok || n == "ALL"
}
