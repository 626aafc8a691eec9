package sandbox

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"sync"

	"podsb/internal/setup"
)

// joinFile is ROOT/NAME/join: what the C part of podsb exec and rm
// (nsenter/fastexec/fastexec.c), which runs before the Go runtime starts,
// needs to attach a default command to the pod, or remove it, without this
// package. It is Go's plan for such a command, written once per pause:
//
//	"podsbJ2\n" | u64 pause's PID | u64 its start time | u32 number of ops |
//	u32 flags | u32 n, boot ID | u32 n, hostname | u32 n, the program
//	without its Exec
//
// (little-endian). The program is what Pod.Exec gives a command run as
// root with the default Security: the capability sets, no_new_privs, the
// seccomp filter and PR_SET_PDEATHSIG, in internal/setup's wire format. A pod
// with a cgroup has no join file: a command must join the cgroup, which only
// Pod.Exec does.
const joinFile = "join"

// joinNetwork is the join record's flag of a pod on the bridge network
// (its rm must release the address: Go's).
const joinNetwork = 1

// writeJoin writes (or, for a pod with a cgroup, removes) dir's join file,
// atomically.
func writeJoin(dir string, st *State) error {
	path := filepath.Join(dir, joinFile)
	if st.Cgroup != "" {
		if err := os.Remove(path); err != nil && !isNotExist(err) {
			return err
		}
		return nil
	}
	exec, err := defaultExec()
	if err != nil {
		return err
	}
	b := append([]byte{}, "podsbJ2\n"...)
	b = binary.LittleEndian.AppendUint64(b, uint64(st.Pid))
	b = binary.LittleEndian.AppendUint64(b, st.StartTime)
	b = binary.LittleEndian.AppendUint32(b, exec.ops)
	var flags uint32
	if st.Network != nil {
		flags |= joinNetwork
	}
	b = binary.LittleEndian.AppendUint32(b, flags)
	for _, s := range []string{st.BootID, st.Hostname, exec.program} {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return writeFileAtomic(path, b)
}

// execProgram is an encoded program and its number of operations.
type execProgram struct {
	ops     uint32
	program string
}

// defaultExec is the program of a command run as root with the default
// Security, without its Exec (the C part adds it), as the join and create
// records hold it. It is the same for every pod: made once per process.
var defaultExec = sync.OnceValues(func() (execProgram, error) {
	ops, err := commandOps(Security{}, execUser{home: "/root"}, false, "", nil)
	if err != nil {
		return execProgram{}, err
	}
	ops = ops[:len(ops)-1]
	return execProgram{uint32(len(ops)), string(setup.Encode(ops))}, nil
})
