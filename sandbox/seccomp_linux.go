package sandbox

import (
	"encoding/binary"
	"errors"
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
	prof, err := profiles.GetDefaultProfile(capSpec(caps))
	if err != nil {
		return nil, fmt.Errorf("seccomp profile: %w", err)
	}
	return compileProfile(prof, false)
}

// capSpec is the part of an OCI spec a profile's includes and excludes
// read: the capabilities.
func capSpec(caps uint64) *specs.Spec {
	return &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: CapNames(caps)}}}
}

// profileFilter compiles a seccomp profile in the OCI (Docker) JSON
// format, for a process with the capabilities in caps: once per profile,
// mask and process.
func profileFilter(profile string, caps uint64) ([]byte, error) {
	key := profileKey{profile, caps}
	if f, ok := profileFilters.Load(key); ok {
		return f.([]byte), nil
	}
	prof, err := profiles.LoadProfile(profile, capSpec(caps))
	if err != nil {
		return nil, invalidf("seccomp profile: %v", err)
	}
	if prof == nil {
		return nil, invalidf("seccomp profile: no defaultAction and no syscalls")
	}
	f, err := compileProfile(prof, true)
	if err != nil {
		return nil, invalidf("seccomp profile: %v", err)
	}
	profileFilters.Store(key, f)
	return f, nil
}

type profileKey struct {
	profile string
	caps    uint64
}

var profileFilters sync.Map // profileKey -> filter

// CheckSeccomp reports whether a seccomp profile (Security.Seccomp) can
// be compiled: valid JSON, and only what the filter can express (no
// notify action or listener, argument checks of the kinds conditions
// knows). Its errors are ErrInvalid.
func CheckSeccomp(profile string) error {
	_, err := profileFilter(profile, defaultMask())
	return err
}

// action is the return value of a seccomp rule's action.
func action(a specs.LinuxSeccompAction, errno *uint) (seccomp.Action, error) {
	data := uint32(unix.EPERM)
	if errno != nil {
		data = uint32(*errno) & unix.SECCOMP_RET_DATA
	}
	switch a {
	case specs.ActAllow:
		return seccomp.ActionAllow, nil
	case specs.ActErrno:
		return seccomp.Action(unix.SECCOMP_RET_ERRNO | data), nil
	case specs.ActTrace:
		return seccomp.Action(unix.SECCOMP_RET_TRACE | data), nil
	case specs.ActKill, specs.ActKillThread:
		return seccomp.ActionKillThread, nil
	case specs.ActKillProcess:
		return seccomp.ActionKillProcess, nil
	case specs.ActTrap:
		return seccomp.ActionTrap, nil
	case specs.ActLog:
		return seccomp.ActionLog, nil
	}
	return 0, fmt.Errorf("action %q is not supported", a)
}

// compileProfile assembles prof with elastic/go-seccomp-bpf into raw
// sock_filter bytes for the Seccomp operation. With strict (a user's
// profile), what cannot be expressed is an error; without (the default
// profile), such a rule is left out and the default action denies.
// Syscalls the library's table does not know (newer than it) are left to
// the default action.
func compileProfile(prof *specs.LinuxSeccomp, strict bool) ([]byte, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return nil, err
	}
	if prof.ListenerPath != "" {
		return nil, errors.New("listenerPath (user notification) is not supported")
	}
	def, err := action(prof.DefaultAction, prof.DefaultErrnoRet)
	if err != nil {
		return nil, fmt.Errorf("defaultAction: %w", err)
	}
	// One group per action: go-seccomp-bpf ORs the conditions of a
	// syscall within a group (the profile allows socket by several rules,
	// one per address family), and an unconditional rule wins.
	type rule struct {
		always bool
		conds  []seccomp.ArgumentConditions
	}
	rules := map[seccomp.Action]map[string]*rule{}
	var actions []seccomp.Action
	var order []string
	seen := map[string]bool{}
	for i, sc := range prof.Syscalls {
		act, err := action(sc.Action, sc.ErrnoRet)
		if err != nil {
			if !strict {
				continue
			}
			return nil, fmt.Errorf("syscalls[%d]: %w", i, err)
		}
		conds, ok := conditions(sc.Args)
		if !ok {
			if !strict {
				continue
			}
			return nil, fmt.Errorf("syscalls[%d]: an argument check podsb cannot express", i)
		}
		if act == def {
			continue // the default does it
		}
		if rules[act] == nil {
			rules[act] = map[string]*rule{}
			actions = append(actions, act)
		}
		for _, name := range sc.Names {
			if _, known := info.SyscallNames[name]; !known {
				continue
			}
			r := rules[act][name]
			if r == nil {
				r = &rule{}
				rules[act][name] = r
				if !seen[name] {
					seen[name] = true
					order = append(order, name)
				}
			}
			if len(conds) == 0 {
				r.always = true
			} else {
				r.conds = append(r.conds, conds)
			}
		}
	}
	// The library takes only a plain action as the default, not an errno:
	// a plain action no rule has stands for it, and is rewritten after.
	defaultMarker := def
	for _, m := range []seccomp.Action{seccomp.ActionTrace, seccomp.ActionTrap, seccomp.ActionLog, seccomp.ActionKillProcess, seccomp.ActionKillThread, seccomp.ActionAllow} {
		if rules[m] == nil {
			defaultMarker = m
			break
		}
	}
	policy := seccomp.Policy{DefaultAction: defaultMarker}
	for _, act := range actions {
		group := seccomp.SyscallGroup{Action: act}
		for _, name := range order {
			r := rules[act][name]
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
	if len(policy.Syscalls) == 0 {
		// The library wants a group: one that does what the default does.
		policy.Syscalls = []seccomp.SyscallGroup{{Action: defaultMarker, Names: []string{"getpid"}}}
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
		if ins.Op == unix.BPF_RET|unix.BPF_K && k == uint32(defaultMarker) {
			k = uint32(def)
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
