package sandbox

import (
	"encoding/binary"
	"os"
	"path/filepath"

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
	ops, err := commandOps(Security{}, execUser{home: "/root"}, false, "", nil)
	if err != nil {
		return err
	}
	ops = ops[:len(ops)-1] // the C part adds the Exec
	b := append([]byte{}, "podsbJ2\n"...)
	b = binary.LittleEndian.AppendUint64(b, uint64(st.Pid))
	b = binary.LittleEndian.AppendUint64(b, st.StartTime)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(ops)))
	var flags uint32
	if st.Network != nil {
		flags |= joinNetwork
	}
	b = binary.LittleEndian.AppendUint32(b, flags)
	for _, s := range []string{st.BootID, st.Hostname, string(setup.Encode(ops))} {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
