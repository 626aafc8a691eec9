package sandbox

import (
	"path/filepath"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// PIDMode is a container's PID namespace. The zero PIDMode is the pod's,
// where pause is PID 1 and the container's command one of its children.
//
// Own gives the container a PID namespace of its own, nested in the
// pod's: the command is PID 1 there (its start's init forks it with
// CLONE_NEWPID before the container's root is made, so the root's /proc
// is that namespace's; in a pod with a user namespace of its own, after
// the root is made: lateProcOps), still a child of pause, which records
// its exit. When the command exits, the kernel kills what is left in the
// namespace.
//
// Target joins the PID namespace of another running container of the pod
// (its own, or the pod's). In a namespace of another container's, the
// command's parent is that container's PID 1, not pause: pause does not
// see its exit, which is then unknown (ContainerState.Exit nil; the CRI reports 255).
//
// Host puts the container in the host's (the caller's) PID namespace, in
// a pod made with Config.HostPID (hostpid_linux.go): its process cannot be
// a child of pause, which lives in the pod's PID namespace, so its start's
// init spawns it as a child of the calling process (CLONE_PARENT), which
// records its exit while it lives.
//
// All need Detach. Exec into such a container joins its PID namespace.
type PIDMode struct {
	Own    bool
	Target string
	Host   bool
}

// containerPIDNS is where a container's PID namespace is pinned, if it is
// not the pod's.
func (p *Pod) containerPIDNS(name string) string {
	return filepath.Join(p.Dir(), "ns", "pid-"+name)
}

// checkPIDMode checks a container's PID mode before anything is made.
func (p *Pod) checkPIDMode(m PIDMode, detach bool, name string) error {
	if m == (PIDMode{}) {
		return nil
	}
	if m.Own && m.Target != "" {
		return invalidf("container %s: PID namespace: its own and container %s's", name, m.Target)
	}
	if m.Host && (m.Own || m.Target != "") {
		return invalidf("container %s: PID namespace: the host's and another", name)
	}
	if m.Host && (p.state == nil || !p.state.HostPID) {
		return invalidf("container %s: the host's PID namespace needs a pod made with the host's PID namespace (pod %s is not)", name, p.name)
	}
	if !detach {
		return invalidf("container %s: a PID namespace other than the pod's needs a detached container", name)
	}
	if m.Target == "" {
		return nil
	}
	if m.Target == name {
		return invalidf("container %s: PID namespace target: the container itself", name)
	}
	cs, err := p.Container(m.Target)
	if err != nil {
		return invalidf("container %s: PID namespace target %q: no such container in pod %s", name, m.Target, p.name)
	}
	if cs.Status != specs.StateRunning {
		return invalidf("container %s: PID namespace target %s: not running", name, m.Target)
	}
	return nil
}

// pidNSPath is the handle of the PID namespace the container's init is
// forked into: the pod's, or its target's; "" for the caller's own
// (PIDMode.Host).
func (r *containerStart) pidNSPath() (string, error) {
	p := r.pod
	if r.cc.PID.Host {
		return "", nil
	}
	if r.cc.PID.Target == "" {
		return p.NamespacePath(specs.PIDNamespace), nil
	}
	cs, err := p.Container(r.cc.PID.Target)
	if err != nil {
		return "", invalidf("container %s: PID namespace target %q: no such container in pod %s", r.name, r.cc.PID.Target, p.name)
	}
	if cs.PIDNamespace != "" {
		return p.containerPIDNS(r.cc.PID.Target), nil
	}
	return p.NamespacePath(specs.PIDNamespace), nil
}

// spawnedHostPID finds the container's command by the PID its start's init
// saw it spawned with, in the namespace at nsPath (where the init ran),
// once the init is gone. It returns the command's host PID and its PID in
// the pod's namespace (0 if it is not in it: a target of its own).
func spawnedHostPID(p *Pod, own bool, nsPath string, spawned int) (host, pod int) {
	if nsPath == "" {
		return spawned, 0 // the host's namespace (PIDMode.Host)
	}
	if !own && nsPath == p.NamespacePath(specs.PIDNamespace) {
		h := hostPIDOf(p, spawned)
		return h, spawned
	}
	ino, err := nsInode(nsPath)
	if err != nil {
		return 0, 0
	}
	ps, err := readStatus(strconv.Itoa(p.state.Pid))
	if err != nil || len(ps.nspid) == 0 {
		return 0, 0
	}
	level := len(ps.nspid) - 1 // of the pod's namespace
	pids, err := listPIDs()
	if err != nil {
		return 0, 0
	}
	for _, pid := range pids {
		if own {
			// A child of pause, PID 1 of a namespace below the pod's.
			s, err := readStatus(pid)
			if err != nil || s.ppid != p.state.Pid || len(s.nspid) != level+2 || s.nspid[level] != spawned || s.nspid[level+1] != 1 {
				continue
			}
			h, _ := strconv.Atoi(pid)
			return h, spawned
		}
		if i, ok := pidNSInode(pid); !ok || i != ino {
			continue
		}
		s, err := readStatus(pid)
		if err != nil || len(s.nspid) <= level || s.nspid[len(s.nspid)-1] != spawned {
			continue
		}
		h, _ := strconv.Atoi(pid)
		return h, s.nspid[level]
	}
	return 0, 0
}
