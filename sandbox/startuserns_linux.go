package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// startUserNS is Start for a pod with a user namespace of its own. Its
// network, IPC and UTS namespaces belong to the old pause's user
// namespace, which no Go thread can join (setns(2) refuses a user
// namespace to a multi-threaded process), and which a new user namespace
// could not own: a pause in a new user namespace, with the old network
// namespace, would have no capability over it. So, as at create, the new
// pause is born in a new user namespace with the pod's recorded maps
// (State.UserNS; its record in UserNSRecords stays), which owns new PID,
// mount, network, IPC and UTS namespaces; the launcher attaches the
// idmapped trees of its root as at create (podUserNS.attach). Once it is
// pause, every pinned handle (ns/user included) is replaced, and the pod
// gets its place on the bridge again (its address and published ports,
// in the new network namespace, which /run/netns/NAME, a link to the
// handle, names), its hostname and its sysctls. What lived only in the
// old namespaces (IPC objects, a sysctl or route set after create) is
// gone with them.
func (p *Pod) startUserNS(ctx context.Context, lock *podDir, st *State) error {
	dir := p.Dir()
	spec := startSpec(dir, st)
	// Its range is recorded until rm; a record lost (a reboot emptied
	// /run, a state root elsewhere kept the pod) is made again, unless
	// another pod took the IDs meanwhile.
	if _, err := os.Stat(UserNSRecord(p.root, p.name)); errors.Is(err, os.ErrNotExist) {
		if _, err := reserveUserNS(p.root, p.name, Config{UIDMap: st.UserNS.UIDMap, GIDMap: st.UserNS.GIDMap}); err != nil {
			return err
		}
	}
	if err := makeExitsDir(dir); err != nil {
		return err
	}
	// The old init's working directory: mount points only, whose mounts
	// were in the old mount namespace.
	if err := os.RemoveAll(filepath.Join(dir, usernsAttach)); err != nil {
		return err
	}
	u := &podUserNS{ns: st.UserNS}
	head, err := prepareUserNS(u, &spec, dir)
	if err != nil {
		return err
	}
	sysctls, err := sysctlPaths(st.Sysctls, false, false)
	if err != nil {
		return err
	}
	ops, err := initProgram(&spec, st.Hostname, st.Security, true, sysctls, dir)
	if err != nil {
		return err
	}
	ops = append(head, ops[1:]...)
	child, err := startInit(ops, cloneFlags, u, nil)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			child.kill()
		}
	}()
	os.WriteFile("/proc/"+strconv.Itoa(child.pid)+"/oom_score_adj", []byte(pauseOOMScoreAdj), 0)
	// The handles are the new init's before it may become pause (before
	// launch sends its program): rm and gc find a pause by the pinned PID
	// namespace, and would neither see nor end one whose start died while
	// ns/pid still pinned the old namespace. A start that dies before the
	// program is sent leaves an init that exits when it reads no program.
	names := make([]string, len(NamespaceTypes))
	for i, t := range NamespaceTypes {
		names[i] = procName(t)
	}
	if err := repin(child.pid, filepath.Join(dir, "ns"), names); err != nil {
		return err
	}
	if err := p.launch(ctx, lock, st, child, func() error { return u.attach(child.pid) }); err != nil {
		return err
	}
	if st.Network != nil {
		l, err := reattachNetwork(p.root, p.name, st.Network, p.NamespacePath(specs.NetworkNamespace))
		if err != nil {
			return fmt.Errorf("attach its network again: %w", err)
		}
		st.Network = l
	}
	if err := p.markRunning(lock, st); err != nil {
		return err
	}
	ok = true
	return nil
}
