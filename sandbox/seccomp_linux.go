package sandbox

import (
	"encoding/binary"
	"fmt"
	"sync"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	profiles "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// seccompFilter returns the BPF program of the default seccomp profile
// (Docker's, from moby/profiles, specialized for the capabilities in caps:
// a rule that needs a capability is in only if caps has it), assembled with
// elastic/go-seccomp-bpf, as raw sock_filter bytes for the Seccomp
// operation.
//
// Two rules of the profile need care. go-seccomp-bpf returns EPERM for
// every errno action, but clone3 must fail with ENOSYS (C libraries then
// fall back to clone, whose flags the profile can check): its rule is
// assembled with the trace action as a marker, and those returns are
// rewritten to ENOSYS. Syscalls the library's table does not know (newer
// than it) are left to the default action, EPERM.
func seccompFilter(caps uint64) ([]byte, error) {
	// Assembling costs about half a millisecond, a third of a CLI
	// command's own work: the default capability set's filter is
	// precomputed (seccomp_table_GOARCH.go, checked by TestSeccompTable).
	// The profile's one kernel condition (ptrace allowed from 4.8) holds
	// on every kernel podsb runs on (pidfd_open needs 5.3).
	if caps == tableCaps && tableFilter != "" {
		return []byte(tableFilter), nil
	}
	// Others: once per mask and process.
	if f, ok := filters.Load(caps); ok {
		return f.([]byte), nil
	}
	f, err := assembleFilter(caps)
	if err == nil {
		filters.Store(caps, f)
	}
	return f, err
}

var filters sync.Map // capability mask -> filter

func assembleFilter(caps uint64) ([]byte, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return nil, err
	}
	spec := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: CapNames(caps)}}}
	prof, err := profiles.GetDefaultProfile(spec)
	if err != nil {
		return nil, fmt.Errorf("seccomp profile: %w", err)
	}
	// One group per action: go-seccomp-bpf ORs the conditions of a
	// syscall within a group (the profile allows socket by several rules,
	// one per address family), and an unconditional rule wins.
	type rule struct {
		always bool
		conds  []seccomp.ArgumentConditions
	}
	rules := map[seccomp.Action]map[string]*rule{}
	var order []string
	for _, sc := range prof.Syscalls {
		action := seccomp.ActionAllow
		switch {
		case sc.Action == specs.ActAllow:
		case sc.Action == specs.ActErrno && sc.ErrnoRet != nil && *sc.ErrnoRet == uint(unix.ENOSYS):
			action = seccomp.ActionTrace // marker: ENOSYS, see above
		case sc.Action == specs.ActErrno:
			action = seccomp.ActionErrno
		default:
			continue // no other action in the default profile
		}
		conds, ok := conditions(sc.Args)
		if !ok {
			continue
		}
		if rules[action] == nil {
			rules[action] = map[string]*rule{}
		}
		for _, name := range sc.Names {
			if _, known := info.SyscallNames[name]; !known {
				continue
			}
			r := rules[action][name]
			if r == nil {
				r = &rule{}
				rules[action][name] = r
				order = append(order, name)
			}
			if len(conds) == 0 {
				r.always = true
			} else {
				r.conds = append(r.conds, conds)
			}
		}
	}
	policy := seccomp.Policy{DefaultAction: seccomp.ActionErrno}
	for _, action := range []seccomp.Action{seccomp.ActionAllow, seccomp.ActionErrno, seccomp.ActionTrace} {
		group := seccomp.SyscallGroup{Action: action}
		for _, name := range order {
			r := rules[action][name]
			switch {
			case r == nil:
			case r.always:
				group.Names = append(group.Names, name)
			default:
				for _, c := range r.conds {
					group.NamesWithCondtions = append(group.NamesWithCondtions, seccomp.NameWithConditions{Name: name, Conditions: c})
				}
			}
		}
		if len(group.Names)+len(group.NamesWithCondtions) > 0 {
			policy.Syscalls = append(policy.Syscalls, group)
		}
	}
	prog, err := policy.Assemble()
	if err != nil {
		return nil, fmt.Errorf("seccomp filter: %w", err)
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, 8*len(raw))
	for _, ins := range raw {
		k := ins.K
		if ins.Op == unix.BPF_RET|unix.BPF_K && k == uint32(seccomp.ActionTrace) {
			k = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
		}
		out = binary.NativeEndian.AppendUint16(out, ins.Op)
		out = append(out, ins.Jt, ins.Jf)
		out = binary.NativeEndian.AppendUint32(out, k)
	}
	return out, nil
}

// conditions translates a rule's argument checks; ok is false for one the
// filter library cannot express (the rule is then left out, and the
// default action denies).
func conditions(args []specs.LinuxSeccompArg) (seccomp.ArgumentConditions, bool) {
	var out seccomp.ArgumentConditions
	for _, a := range args {
		c := seccomp.Condition{Argument: uint32(a.Index), Value: a.Value}
		switch a.Op {
		case specs.OpEqualTo:
			c.Operation = seccomp.Equal
		case specs.OpNotEqual:
			c.Operation = seccomp.NotEqual
		case specs.OpLessThan:
			c.Operation = seccomp.LessThan
		case specs.OpLessEqual:
			c.Operation = seccomp.LessOrEqual
		case specs.OpGreaterThan:
			c.Operation = seccomp.GreaterThan
		case specs.OpGreaterEqual:
			c.Operation = seccomp.GreaterOrEqual
		case specs.OpMaskedEqual:
			switch a.ValueTwo {
			case 0:
				c.Operation = seccomp.BitsNotSet // (arg & mask) == 0
			case a.Value:
				c.Operation = seccomp.BitsSet // (arg & mask) == mask
			default:
				return nil, false
			}
		default:
			return nil, false
		}
		out = append(out, c)
	}
	return out, true
}
