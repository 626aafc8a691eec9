package sandbox

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/nsenter"
	"github.com/podsb/podsb/rootfs"
)

// ErrRunning means the pod's pause process is alive.
var ErrRunning = errors.New("pod is running")

// Start restarts a stopped pod: a new pause, as PID 1 of a fresh PID
// namespace with a fresh mount namespace and root, in the pod's persisted
// network, IPC and UTS namespaces, so that its hostname, address, routes
// and published ports stay. The pinned PID and mount handles are replaced;
// the pod's processes and containers of before are gone with the old PID
// namespace. A pod with a user namespace of its own gets every namespace
// anew instead (startUserNS).
func (p *Pod) Start(ctx context.Context) error {
	return opError("start", p.name, "", p.start(ctx))
}

func (p *Pod) start(ctx context.Context) error {
	dir := p.Dir()
	lock, err := p.lock(ctx)
	if err != nil {
		return err
	}
	defer lock.Close()
	st, err := readState(lock)
	if err != nil {
		return fmt.Errorf("no state: remove the pod: %w", err)
	}
	p.state = st
	// No recorded handles: the pod's create died before it finished,
	// and there is no whole pod to start again.
	if len(st.Namespaces) == 0 {
		return invalidf("pod %s was left half-made by a create that died: remove it (podsb rm -f)", p.name)
	}
	if p.pauseLives(lock) {
		if st.Status != specs.StateCreating {
			return fmt.Errorf("%s: %w", p.name, ErrRunning)
		}
		// Under the pod's lock, which create and start hold to their end,
		// a state still creating is a start that died half-way (SIGKILL):
		// its pause is replaced, as a dead one would be.
		if err := p.stop(lock, RemoveOptions{Force: true}); err != nil {
			return err
		}
	}
	p.reapZombie()
	if st.UserNS != nil {
		return p.startUserNS(ctx, lock, st)
	}
	// The persisted namespaces must still be there (a reboot loses them).
	var nss []nsenter.Namespace
	for _, t := range []struct {
		flag int
		ns   specs.LinuxNamespaceType
	}{{unix.CLONE_NEWUTS, specs.UTSNamespace}, {unix.CLONE_NEWIPC, specs.IPCNamespace}, {unix.CLONE_NEWNET, specs.NetworkNamespace}} {
		nss = append(nss, nsenter.Namespace{Type: t.flag, Path: p.NamespacePath(t.ns)})
	}
	h, err := p.openNS(nss)
	if err != nil {
		return fmt.Errorf("lost its namespaces (%w): remove it", err)
	}
	defer h.Close()
	// Its place on the bridge, as its state says: an rm killed after it
	// released the network leaves the pod with loopback only.
	if st.Network != nil {
		l, err := reattachNetwork(p.root, p.name, st.Network, p.NamespacePath(specs.NetworkNamespace))
		if err != nil {
			return fmt.Errorf("attach its network again: %w", err)
		}
		st.Network = l
	}
	// The old PID and mount namespaces go: unpin them.
	nsDir := filepath.Join(dir, "ns")
	for _, name := range []string{"pid", "mnt"} {
		if err := unmount(filepath.Join(nsDir, name)); err != nil {
			return err
		}
	}

	spec := startSpec(dir, st)
	// The exits directory (which a pod made by an older podsb lacks), with
	// no name of the old pause's processes left in it.
	if err := makeExitsDir(dir); err != nil {
		return err
	}
	ops, err := initProgram(&spec, st.Hostname, st.Security, false, nil, dir)
	if err != nil {
		return err
	}
	var child *initProc
	err = h.Do(func() error {
		var err error
		child, err = startInit(ops, unix.CLONE_NEWPID|unix.CLONE_NEWNS, nil, nil)
		return err
	})
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			child.kill()
		}
	}()
	if err := p.launch(ctx, lock, st, child, nil); err != nil {
		return err
	}
	if err := repin(child.pid, nsDir, []string{"pid", "mnt"}); err != nil {
		return err
	}
	if err := p.markRunning(lock, st); err != nil {
		return err
	}
	ok = true
	return nil
}

// launch records a new pause, child, in the pod's state (creating), runs
// before (if not nil), puts it in the pod's cgroup, sends its program and
// waits until it is pause.
func (p *Pod) launch(ctx context.Context, lock *podDir, st *State, child *initProc, before func() error) error {
	ps, err := readStat(child.pid)
	if err != nil {
		return err
	}
	st.Pid, st.StartTime, st.BootID, st.Status = child.pid, ps.startTime, bootID(), specs.StateCreating
	if err := writeState(lock, st); err != nil {
		return err
	}
	if before != nil {
		if err := before(); err != nil {
			return err
		}
	}
	if err := p.joinCgroup(child.pid); err != nil {
		return err
	}
	if err := child.send(); err != nil {
		return err
	}
	return child.await(ctx)
}

// repin pins the namespaces names (as under /proc/PID/ns) of pid at
// nsDir/NAME, in place of what was pinned there.
func repin(pid int, nsDir string, names []string) error {
	for _, name := range names {
		at := filepath.Join(nsDir, name)
		if err := unmount(at); err != nil {
			return err
		}
		if err := mount("/proc/"+strconv.Itoa(pid)+"/ns/"+name, at, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("pin %s namespace: %w", name, err)
		}
	}
	return nil
}

// markRunning records the pinned handles' inodes, the join record and
// the state, running.
func (p *Pod) markRunning(lock *podDir, st *State) error {
	for i, ns := range st.Namespaces {
		if ino, err := nsInode(ns.Path); err == nil {
			st.Namespaces[i].Inode = ino
		}
	}
	st.Status = specs.StateRunning
	if err := writeJoin(p.Dir(), st); err != nil {
		return err
	}
	return writeState(lock, st)
}

// startSpec is the root a stopped pod's start makes again, from its state.
func startSpec(dir string, st *State) rootfs.Spec {
	spec := rootfs.Spec{
		Dir:       st.Rootfs,
		Target:    filepath.Join(dir, "rootfs"),
		ReadOnly:  st.ReadOnly,
		Etc:       etcFiles(st.Hostname, netipAddr(st), st.ResolvConf),
		Volumes:   st.Volumes,
		Mask:      !st.Security.Privileged,
		NoDev:     !st.Security.Privileged,
		EtcCopies: st.UserNS != nil || st.Rootless != nil,
	}
	if spec.Dir != "" {
		spec.EtcDir = filepath.Join(dir, "etc")
	}
	return spec
}
