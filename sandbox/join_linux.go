package sandbox

import (
	"os"
	"path/filepath"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/setup"
)

// writeJoin writes (or, for a pod with a cgroup, removes) dir's join
// record, ROOT/NAME/join, atomically: Go's plan of a command run with the
// default ExecConfig (as root, the default Security, and so the pod's
// capabilities, the default environment, in /), which the fast path (package fastexec) runs before
// the Go runtime starts, putting in only the command line. It is written
// once per pause, at create and start; its format is internal/setup.Join.
// A pod with a cgroup has none: a command must join the cgroup, which only
// Pod.Exec does.
func writeJoin(dir string, st *State) error {
	path := filepath.Join(dir, setup.JoinFile)
	if st.Cgroup != "" {
		if err := os.Remove(path); err != nil && !isNotExist(err) {
			return err
		}
		return nil
	}
	prog, err := defaultExec()
	if len(st.Security.CapAdd)+len(st.Security.CapDrop) > 0 {
		prog, err = execProgram(st.Security)
	}
	if err != nil {
		return err
	}
	if st.UserNS != nil {
		// Joined by pause run from ExtraFD, as Pod.Exec does
		// (setup.Join.Namespaces).
		prog = append([]setup.Op{{Code: setup.SetNS, Num: setup.ExtraFD}}, prog...)
	}
	if st.Rootless != nil {
		// As Pod.Exec's rootlessIDs: with the single-ID map, no SetIDs
		// (setgroups is denied there).
		if prog, err = (&Pod{state: st}).rootlessIDs(prog, execUser{home: "/root"}); err != nil {
			return err
		}
	}
	u := execUser{home: "/root"}
	env, wd := commandEnv(ExecConfig{}, u, st.Hostname)
	j := setup.Join{
		Name: st.ID, PID: uint64(st.Pid), Start: st.StartTime, BootID: st.BootID,
		Env: env, Dir: wd, Program: prog,
	}
	// In Pod.Exec's order: the mount namespace last.
	// A rootless pod's handles are pause's own /proc/PID/ns files, each
	// checked against its inode; its user namespace is the one the
	// rootless exec joined before the fast path runs (UserNSFDEnv).
	j.ProcNS = st.Rootless != nil
	var mnt []setup.JoinNS
	for _, ns := range st.Namespaces {
		rel, err := filepath.Rel(dir, ns.Path)
		if err != nil {
			return err
		}
		if ns.Type == specs.UserNamespace && (st.UserNS == nil || j.ProcNS) {
			continue // the host's, or joined already
		}
		jn := setup.JoinNS{Type: uint32(nsFlags[ns.Type]), Path: rel}
		if j.ProcNS {
			jn.Path, jn.Inode = filepath.Base(ns.Path), ns.Inode
		}
		if ns.Type == specs.MountNamespace {
			mnt = append(mnt, jn)
		} else {
			j.Namespaces = append(j.Namespaces, jn)
		}
	}
	j.Namespaces = append(j.Namespaces, mnt...)
	b, err := j.Encode()
	if err != nil {
		return err
	}
	return writeFileAtomic(path, b)
}

// nsFlags are the namespace types' CLONE_NEW* flags.
var nsFlags = map[specs.LinuxNamespaceType]int{
	specs.PIDNamespace: unix.CLONE_NEWPID, specs.UTSNamespace: unix.CLONE_NEWUTS,
	specs.IPCNamespace: unix.CLONE_NEWIPC, specs.NetworkNamespace: unix.CLONE_NEWNET,
	specs.MountNamespace: unix.CLONE_NEWNS, specs.UserNamespace: unix.CLONE_NEWUSER,
}

// execProgram is the program of a command run as root with the default
// Security in a pod created with pod, without its Exec (the fast path adds
// it).
func execProgram(pod Security) ([]setup.Op, error) {
	ops, err := commandOps(Security{}, pod, execUser{home: "/root"}, false, "", nil)
	if err != nil {
		return nil, err
	}
	return ops[:len(ops)-1], nil
}

// defaultExec is execProgram of a pod with the default capabilities, the
// same for every such pod: made once per process.
var defaultExec = sync.OnceValues(func() ([]setup.Op, error) { return execProgram(Security{}) })
