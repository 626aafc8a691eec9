package cri

import (
	"slices"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podsb/podsb/sandbox"
)

// podNamespaces applies a pod's namespace options to sc: NODE network and
// IPC become the host's namespaces, a NODE PID namespace lets its
// containers use the host's; user namespaces as podUserNS. A PID mode of CONTAINER or TARGET at the pod's
// level says what its containers ask for (their own options decide).
func podNamespaces(ns *runtimeapi.NamespaceOption, sc *sandbox.Config) error {
	if ns == nil {
		return nil
	}
	switch ns.GetNetwork() {
	case runtimeapi.NamespaceMode_POD:
	case runtimeapi.NamespaceMode_NODE:
		sc.HostNetwork = true
	default:
		return invalidf("pod sandbox config: namespace_options.network: mode %s is not one of POD, NODE", ns.GetNetwork())
	}
	switch ns.GetIpc() {
	case runtimeapi.NamespaceMode_POD:
	case runtimeapi.NamespaceMode_NODE:
		sc.HostIPC = true
	default:
		return invalidf("pod sandbox config: namespace_options.ipc: mode %s is not one of POD, NODE", ns.GetIpc())
	}
	switch ns.GetPid() {
	case runtimeapi.NamespaceMode_POD, runtimeapi.NamespaceMode_CONTAINER, runtimeapi.NamespaceMode_TARGET:
	case runtimeapi.NamespaceMode_NODE:
		// pause keeps a PID namespace of its own; the containers that
		// ask for NODE run in the host's (sandbox.PIDMode.Host).
		sc.HostPID = true
	default:
		return invalidf("pod sandbox config: namespace_options.pid: unknown mode %s", ns.GetPid())
	}
	return podUserNS(ns.GetUsernsOptions(), sc)
}

// podUserNS applies a pod's user namespace options to sc: none, or mode
// NODE, is the host's user namespace; mode POD, one of the pod's own with
// the options' maps (kubelet allocates the host IDs; podsb refuses maps
// whose host IDs another of its pods maps, or that map the host's root).
// CONTAINER and TARGET are refused, as by Kubernetes' runtimes.
func podUserNS(u *runtimeapi.UserNamespace, sc *sandbox.Config) error {
	if u == nil {
		return nil
	}
	switch u.GetMode() {
	case runtimeapi.NamespaceMode_NODE:
		if len(u.GetUids())+len(u.GetGids()) > 0 {
			return invalidf("pod sandbox config: namespace_options.userns_options: mode NODE (the host's user namespace) with uids or gids")
		}
		return nil
	case runtimeapi.NamespaceMode_POD:
	default:
		return invalidf("pod sandbox config: namespace_options.userns_options.mode: %s is not one of POD, NODE", u.GetMode())
	}
	for _, m := range []struct {
		field string
		in    []*runtimeapi.IDMapping
		out   *[]sandbox.IDMap
	}{{"uids", u.GetUids(), &sc.UIDMap}, {"gids", u.GetGids(), &sc.GIDMap}} {
		if len(m.in) == 0 {
			return invalidf("pod sandbox config: namespace_options.userns_options.%s: mode POD needs a mapping", m.field)
		}
		for _, e := range m.in {
			*m.out = append(*m.out, sandbox.IDMap{ContainerID: e.GetContainerId(), HostID: e.GetHostId(), Size: e.GetLength()})
		}
		if err := sandbox.CheckIDMap("pod sandbox config: namespace_options.userns_options."+m.field, *m.out); err != nil {
			return invalidf("%v", err)
		}
	}
	return nil
}

// containerUserNS checks a container's user namespace options against its
// pod's: none, or the pod's own (NODE in a pod of the host's user
// namespace, POD with the pod's maps in a pod of its own). A container
// cannot have a user namespace other than its pod's.
func containerUserNS(name string, u *runtimeapi.UserNamespace, pod *podRecord) error {
	if u == nil {
		return nil
	}
	own := len(pod.UIDMap) > 0
	switch {
	case u.GetMode() == runtimeapi.NamespaceMode_NODE && !own:
		return nil
	case u.GetMode() == runtimeapi.NamespaceMode_POD && own:
		var sc sandbox.Config
		if err := podUserNS(u, &sc); err == nil && slices.Equal(sc.UIDMap, pod.UIDMap) && slices.Equal(sc.GIDMap, pod.GIDMap) {
			return nil
		}
	}
	return invalidf("container %s: namespace_options.userns_options: mode %s with its maps is not the user namespace of pod sandbox %s: a container shares its pod's", name, u.GetMode(), pod.ID)
}

// userNSOption is a pod's user namespace, as PodSandboxStatus reports it:
// nil for the host's.
func (r *podRecord) userNSOption() *runtimeapi.UserNamespace {
	if len(r.UIDMap) == 0 {
		return nil
	}
	conv := func(m []sandbox.IDMap) []*runtimeapi.IDMapping {
		var out []*runtimeapi.IDMapping
		for _, e := range m {
			out = append(out, &runtimeapi.IDMapping{ContainerId: e.ContainerID, HostId: e.HostID, Length: e.Size})
		}
		return out
	}
	return &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: conv(r.UIDMap), Gids: conv(r.GIDMap)}
}

// podSysctls turns the pod's sysctls into podsb's, which sandbox.Create
// checks.
func podSysctls(m map[string]string) []sandbox.Sysctl {
	var out []sandbox.Sysctl
	for k, v := range m {
		out = append(out, sandbox.Sysctl{Key: k, Value: v})
	}
	return out
}

// namespaceOption is the pod's namespace options, as PodSandboxStatus
// reports them.
func (r *podRecord) namespaceOption() *runtimeapi.NamespaceOption {
	o := &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_POD, Ipc: runtimeapi.NamespaceMode_POD}
	if r.HostNetwork {
		o.Network = runtimeapi.NamespaceMode_NODE
	}
	if r.HostIPC {
		o.Ipc = runtimeapi.NamespaceMode_NODE
	}
	if r.HostPID {
		o.Pid = runtimeapi.NamespaceMode_NODE
	}
	o.UsernsOptions = r.userNSOption()
	return o
}

// pidModeOf is a container's PID namespace: the pod's (POD), one of its
// own (CONTAINER), another container's (TARGET, by target_id), or the
// host's (NODE, in a pod whose own option is NODE: hostPIDOf checks).
func pidModeOf(name string, ns *runtimeapi.NamespaceOption) (sandbox.PIDMode, error) {
	switch ns.GetPid() {
	case runtimeapi.NamespaceMode_POD:
		return sandbox.PIDMode{}, nil
	case runtimeapi.NamespaceMode_CONTAINER:
		return sandbox.PIDMode{Own: true}, nil
	case runtimeapi.NamespaceMode_TARGET:
		if ns.GetTargetId() == "" {
			return sandbox.PIDMode{}, invalidf("container %s: namespace_options.target_id is empty (PID mode TARGET)", name)
		}
		return sandbox.PIDMode{Target: ns.GetTargetId()}, nil
	case runtimeapi.NamespaceMode_NODE:
		return sandbox.PIDMode{Host: true}, nil
	}
	return sandbox.PIDMode{}, invalidf("container %s: namespace_options.pid: unknown mode %s", name, ns.GetPid())
}

// pidTarget checks that a container's PID namespace target, if any, is a
// container of the same pod, and returns its full ID.
func (s *Server) pidTarget(name, podID, target string) (string, error) {
	if target == "" {
		return "", nil
	}
	t, err := s.findContainer(target)
	if err != nil || t.PodID != podID {
		return "", invalidf("container %s: namespace_options.target_id %q: no such container in pod sandbox %s", name, target, podID)
	}
	return t.ID, nil
}

// hostPIDOf checks that a container asks for the host's PID namespace only
// in a pod that does: only such a pod's removal ends processes there.
func hostPIDOf(name string, m sandbox.PIDMode, pod *podRecord) error {
	if m.Host && !pod.HostPID {
		return invalidf("container %s: namespace_options.pid: NODE (the host's PID namespace) in pod sandbox %s, whose namespace_options.pid is not NODE", name, pod.ID)
	}
	return nil
}
