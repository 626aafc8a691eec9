package cri

import (
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podsb/podsb/sandbox"
)

// podNamespaces applies a pod's namespace options to sc: NODE network and
// IPC become the host's namespaces; a NODE PID namespace and user
// namespaces are refused. A PID mode of CONTAINER or TARGET at the pod's
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
	if ns.GetPid() == runtimeapi.NamespaceMode_NODE {
		return unimplementedf("pod sandbox config: namespace_options.pid: the host's PID namespace (NODE) is not supported by podsb: " +
			"pause, which records the exits of the pod's processes, must be their PID namespace's init")
	}
	// POD is the zero mode: no user namespace options is the host's.
	if u := ns.GetUsernsOptions(); u != nil && u.GetMode() == runtimeapi.NamespaceMode_POD {
		return unimplementedf("pod sandbox config: namespace_options.userns_options: user namespaces are not supported by podsb yet")
	}
	return nil
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
	return o
}

// pidModeOf is a container's PID namespace: the pod's (POD), one of its
// own (CONTAINER), or another container's (TARGET, by target_id); the
// host's (NODE) is refused as for pods.
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
		return sandbox.PIDMode{}, unimplementedf("container %s: namespace_options.pid: the host's PID namespace (NODE) is not supported by podsb", name)
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
