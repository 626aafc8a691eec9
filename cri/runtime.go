package cri

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/netip"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podsb/podsb/cni"
	"github.com/podsb/podsb/sandbox"
)

// runtimeName is what Version reports as the runtime's name.
const runtimeName = "podsb"

// criAPIVersion is the CRI version served.
const criAPIVersion = "v1"

// Version reports the runtime and the CRI version it serves.
func (s *Server) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{
		Version:           "0.1.0",
		RuntimeName:       runtimeName,
		RuntimeVersion:    buildVersion(),
		RuntimeApiVersion: criAPIVersion,
	}, nil
}

// buildVersion is the server binary's module version, or its commit.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, st := range bi.Settings {
		if st.Key == "vcs.revision" && len(st.Value) >= 12 {
			return st.Value[:12]
		}
	}
	return "devel"
}

// Status reports the runtime ready. The network is ready too: podsb's bridge
// is made on the first pod's use; with CNI, while the conf directory holds
// a valid network configuration.
func (s *Server) Status(_ context.Context, req *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	netReady := &runtimeapi.RuntimeCondition{Type: runtimeapi.NetworkReady, Status: true}
	if s.cni != nil {
		if _, err := cni.Load(*s.cni); err != nil {
			netReady.Status, netReady.Reason, netReady.Message = false, "NetworkPluginNotReady", err.Error()
		}
	}
	resp := &runtimeapi.StatusResponse{
		Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
			{Type: runtimeapi.RuntimeReady, Status: true},
			netReady,
		}},
		RuntimeHandlers: []*runtimeapi.RuntimeHandler{{Name: "", Features: &runtimeapi.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: true, UserNamespaces: true}}},
		// ContainerStatus reports the user (security.go).
		Features: &runtimeapi.RuntimeFeatures{SupplementalGroupsPolicy: true},
	}
	if req.GetVerbose() {
		resp.Info = map[string]string{"config": mustJSON(map[string]string{"root": s.root, "images": s.images.Root(), "state": s.store.dir})}
	}
	return resp, nil
}

// newID returns a random CRI pod ID: 64 hex digits.
func newID() (string, error) {
	var b [32]byte
	if _, err := unix.Getrandom(b[:], 0); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// RunPodSandbox makes a podsb pod on podsb's bridge network, named by a new
// CRI pod ID. Its record is written before the pod is made, not ready: a
// server killed in the middle leaves a pod that is listed NOTREADY and that
// RemovePodSandbox removes.
func (s *Server) RunPodSandbox(ctx context.Context, req *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	cfg := req.GetConfig()
	sc, err := podConfig(cfg, req.GetRuntimeHandler())
	if err != nil {
		return nil, err
	}
	id, err := newID()
	if err != nil {
		return nil, internalf("pod ID: %v", err)
	}
	// Room for the pod's init and the threads that make it, before
	// anything is made: the server cannot survive a thread it fails to
	// start.
	if err := sandbox.CheckTasks("create", id); err != nil {
		return nil, grpcError("run pod sandbox "+cfg.GetMetadata().GetName(), err)
	}
	md := cfg.GetMetadata()
	rec := &podRecord{
		ID: id, Name: md.GetName(), UID: md.GetUid(), Namespace: md.GetNamespace(), Attempt: md.GetAttempt(),
		Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations(), Created: time.Now().UnixNano(),
		LogDirectory: cfg.GetLogDirectory(), Hostname: sc.Hostname, RuntimeHandler: req.GetRuntimeHandler(),
		HostNetwork: sc.HostNetwork, HostIPC: sc.HostIPC, HostPID: sc.HostPID,
		UIDMap: sc.UIDMap, GIDMap: sc.GIDMap,
	}
	if rec.Hostname == "" {
		rec.Hostname = id[:12]
		sc.Hostname = rec.Hostname
	}
	if s.cni != nil && !sc.HostNetwork {
		// CNI's plugins wire the pod's network namespace, which podsb
		// makes with loopback only; a pod on the host's network has none
		// to wire, as with containerd.
		if err := s.cniPrepare(rec, sc.Network.Publish); err != nil {
			return nil, err
		}
		sc.Network = nil
	}
	unlock := s.lockPod(id)
	defer unlock()
	if err := s.reserve(rec); err != nil {
		return nil, err
	}
	sc.Root, sc.Name = s.root, id
	if sc.Network != nil {
		sc.Network.Bridge, sc.Network.Subnet = s.bridge, s.subnet
	}
	s.creating.RLock()
	pod, err := sandbox.Create(ctx, sc)
	s.creating.RUnlock()
	if err != nil {
		s.drop(rec)
		if len(sc.UIDMap) > 0 && errors.Is(err, sandbox.ErrInvalid) {
			// Its maps against the other pods' (sandbox.CheckIDMap
			// checked them alone).
			return nil, grpcError("run pod sandbox "+md.GetName()+": namespace_options.userns_options", err)
		}
		return nil, grpcError("run pod sandbox "+md.GetName(), err)
	}
	if rec.CNI != nil {
		if err := s.cniAdd(ctx, rec, pod); err != nil {
			// Add undid its plugins' work; nothing else may be left.
			pod.Remove(context.WithoutCancel(ctx), sandbox.RemoveOptions{Force: true, KeepNetwork: true})
			s.drop(rec)
			return nil, err
		}
	}
	if err := s.setReady(rec.ID, true); err != nil {
		// Nothing may be left that no record names.
		s.cniDel(context.WithoutCancel(ctx), rec.ID)
		pod.Remove(context.WithoutCancel(ctx), sandbox.RemoveOptions{Force: true, KeepNetwork: true})
		s.drop(rec)
		return nil, internalf("pod %s: %v", id, err)
	}
	s.log.Info("pod sandbox ready", "id", id, "name", rec.Name, "namespace", rec.Namespace, "attempt", rec.Attempt)
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: id}, nil
}

// podConfig checks a pod config and turns it into a podsb pod's. What podsb
// cannot do (host namespaces, SCTP) is refused, never ignored.
func podConfig(cfg *runtimeapi.PodSandboxConfig, handler string) (sandbox.Config, error) {
	var sc sandbox.Config
	if cfg == nil {
		return sc, invalidf("pod sandbox config is missing")
	}
	md := cfg.GetMetadata()
	switch {
	case md == nil:
		return sc, invalidf("pod sandbox config: metadata is missing")
	case md.GetName() == "":
		return sc, invalidf("pod sandbox config: metadata.name is empty")
	case md.GetNamespace() == "":
		return sc, invalidf("pod sandbox config: metadata.namespace is empty")
	case md.GetUid() == "":
		return sc, invalidf("pod sandbox config: metadata.uid is empty")
	}
	if handler != "" {
		return sc, invalidf("runtime handler %q: podsb has only the default handler (\"\")", handler)
	}
	if err := podNamespaces(cfg.GetLinux().GetSecurityContext().GetNamespaceOptions(), &sc); err != nil {
		return sc, err
	}
	if cfg.GetWindows() != nil {
		return sc, invalidf("pod sandbox config: windows options on a Linux runtime")
	}
	sc.Sysctls = podSysctls(cfg.GetLinux().GetSysctls())
	if err := podSecurityOf(cfg.GetLinux().GetSecurityContext(), &sc); err != nil {
		return sc, err
	}
	cp, err := cgroupParentOf(cfg.GetLinux().GetCgroupParent())
	if err != nil {
		return sc, err
	}
	sc.CgroupParent = cp
	sc.Hostname = cfg.GetHostname()
	net := &sandbox.NetworkConfig{}
	for _, pm := range cfg.GetPortMappings() {
		if pm.GetHostPort() == 0 {
			continue // a container port that is not published
		}
		p := sandbox.Port{Proto: "tcp"}
		switch pm.GetProtocol() {
		case runtimeapi.Protocol_TCP:
		case runtimeapi.Protocol_UDP:
			p.Proto = "udp"
		default:
			return sc, unimplementedf("port mapping %d: protocol %s is not supported by podsb", pm.GetHostPort(), pm.GetProtocol())
		}
		if pm.GetHostPort() < 0 || pm.GetHostPort() > 65535 || pm.GetContainerPort() <= 0 || pm.GetContainerPort() > 65535 {
			return sc, invalidf("port mapping %d:%d: ports must be 1 to 65535", pm.GetHostPort(), pm.GetContainerPort())
		}
		p.HostPort, p.PodPort = uint16(pm.GetHostPort()), uint16(pm.GetContainerPort())
		if h := pm.GetHostIp(); h != "" {
			a, err := netip.ParseAddr(h)
			if err != nil {
				return sc, invalidf("port mapping %d: host IP %q: %v", pm.GetHostPort(), h, err)
			}
			p.HostIP = a
		}
		net.Publish = append(net.Publish, p)
	}
	if !sc.HostNetwork {
		// A host-network pod's port mappings are the host's ports
		// themselves: nothing to publish (containerd ignores them too).
		sc.Network = net
	}
	if d := cfg.GetDnsConfig(); d != nil {
		rc, err := resolvConf(d)
		if err != nil {
			return sc, err
		}
		sc.ResolvConf = rc
	}
	return sc, nil
}

// resolvConf writes a DNS config as resolv.conf(5).
func resolvConf(d *runtimeapi.DNSConfig) (string, error) {
	var b strings.Builder
	for _, s := range d.GetServers() {
		if _, err := netip.ParseAddr(s); err != nil {
			return "", invalidf("dns config: server %q is not an IP address", s)
		}
		b.WriteString("nameserver " + s + "\n")
	}
	for _, list := range []struct {
		key  string
		vals []string
	}{{"search", d.GetSearches()}, {"options", d.GetOptions()}} {
		if len(list.vals) == 0 {
			continue
		}
		for _, v := range list.vals {
			if v == "" || strings.ContainsAny(v, " \t\n") {
				return "", invalidf("dns config: %s %q: empty or with white space", list.key, v)
			}
		}
		b.WriteString(list.key + " " + strings.Join(list.vals, " ") + "\n")
	}
	return b.String(), nil
}

// reserve records rec, not ready, unless a pod of the same name, UID,
// namespace and attempt exists.
func (s *Server) reserve(rec *podRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if other, ok := s.names[rec.key()]; ok {
		return alreadyExistsf("pod sandbox %s/%s (uid %s, attempt %d) exists: %s", rec.Namespace, rec.Name, rec.UID, rec.Attempt, other)
	}
	if err := s.store.write(rec); err != nil {
		return internalf("%v", err)
	}
	s.pods[rec.ID] = rec
	s.names[rec.key()] = rec.ID
	return nil
}

// drop forgets rec: its record and its name.
func (s *Server) drop(rec *podRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.store.remove(rec.ID); err != nil {
		return err
	}
	delete(s.pods, rec.ID)
	delete(s.ops, rec.ID) // a waiter holds its own pointer; a later lockPod makes a fresh one
	if s.names[rec.key()] == rec.ID {
		delete(s.names, rec.key())
	}
	return nil
}

// setReady records whether the pod is ready.
func (s *Server) setReady(id string, ready bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.pods[id]
	if !ok {
		return notFoundf("pod sandbox %s: removed meanwhile", id)
	}
	if rec.Ready == ready {
		return nil
	}
	next := *rec
	next.Ready = ready
	if err := s.store.write(&next); err != nil {
		return err
	}
	s.pods[id] = &next
	return nil
}

// find returns a copy of the record of the pod id, which may be a unique
// prefix of an ID (as crictl and containerd take).
func (s *Server) find(id string) (podRecord, error) {
	if id == "" {
		return podRecord{}, invalidf("pod sandbox ID is empty")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.pods[id]; ok {
		return *r, nil
	}
	var found *podRecord
	for k, r := range s.pods {
		if strings.HasPrefix(k, id) {
			if found != nil {
				return podRecord{}, invalidf("pod sandbox ID %q: a prefix of more than one pod's", id)
			}
			found = r
		}
	}
	if found == nil {
		return podRecord{}, notFoundf("pod sandbox %q: not found", id)
	}
	return *found, nil
}

// StopPodSandbox stops every process of the pod and gives back its address
// and ports; the pod stays, NOTREADY, until RemovePodSandbox.
func (s *Server) StopPodSandbox(ctx context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	rec, err := s.find(req.GetPodSandboxId())
	if isNotFound(err) {
		return &runtimeapi.StopPodSandboxResponse{}, nil // idempotent, as RemovePodSandbox
	}
	if err != nil {
		return nil, err
	}
	unlock := s.lockPod(rec.ID)
	defer unlock()
	if err := s.setReady(rec.ID, false); err != nil {
		return nil, grpcError("stop pod sandbox "+rec.ID, err) // NotFound: removed while we waited
	}
	// The containers first, each with SIGKILL, so that their exits are
	// recorded (pause reaps them; once pause is gone nobody would).
	for _, c := range s.podContainers(rec.ID) {
		unlockC := s.lockPod(c.ID)
		err := s.stopContainer(ctx, &c, 0)
		unlockC()
		if err != nil && !isNotFound(err) {
			return nil, err
		}
	}
	p, err := sandbox.Load(s.root, rec.ID)
	switch {
	case errors.Is(err, sandbox.ErrNotFound):
		// Gone with a reboot, or never made: nothing runs.
	case err != nil:
		return nil, grpcError("stop pod sandbox "+rec.ID, err)
	default:
		if err := p.Stop(ctx, sandbox.RemoveOptions{KeepNetwork: true}); err != nil {
			return nil, grpcError("stop pod sandbox "+rec.ID, err)
		}
	}
	// Its address and ports are given back, as podsb's bridge does.
	if err := s.cniDel(ctx, rec.ID); err != nil {
		return nil, err
	}
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

// RemovePodSandbox removes the pod and its record. Removing a pod that is
// not there succeeds, as the CRI asks (the call is idempotent).
func (s *Server) RemovePodSandbox(ctx context.Context, req *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	rec, err := s.find(req.GetPodSandboxId())
	if isNotFound(err) {
		return &runtimeapi.RemovePodSandboxResponse{}, nil // idempotent, whatever the ID's form (critest stops a UUID)
	}
	if err != nil {
		return nil, err
	}
	unlock := s.lockPod(rec.ID)
	defer unlock()
	if _, err := s.find(rec.ID); err != nil {
		return &runtimeapi.RemovePodSandboxResponse{}, nil // removed while we waited
	}
	for _, c := range s.podContainers(rec.ID) {
		unlockC := s.lockPod(c.ID)
		err := s.removeContainer(ctx, &c)
		unlockC()
		if err != nil {
			return nil, err
		}
	}
	// DEL while the pod's network namespace is pinned.
	if err := s.cniDel(ctx, rec.ID); err != nil {
		return nil, err
	}
	p, err := sandbox.Load(s.root, rec.ID)
	switch {
	case errors.Is(err, sandbox.ErrNotFound):
		// A server killed during RunPodSandbox, before the pod had its
		// name: what it made is in the work directory, and its address
		// is reserved.
		s.cleanWork()
	case err != nil:
		return nil, grpcError("remove pod sandbox "+rec.ID, err)
	default:
		if err := p.Remove(ctx, sandbox.RemoveOptions{KeepNetwork: true}); err != nil {
			return nil, grpcError("remove pod sandbox "+rec.ID, err)
		}
	}
	if err := s.drop(&rec); err != nil {
		return nil, internalf("remove record of pod sandbox %s: %v", rec.ID, err)
	}
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

// live is what the podsb pod says of a CRI pod now.
type live struct {
	ready bool
	ip    string
	// moreIPs are a CNI pod's other addresses.
	moreIPs []string
	pid     int
	netns   string
}

func (s *Server) liveOf(rec *podRecord) live {
	var l live
	p, err := sandbox.Load(s.root, rec.ID)
	if err != nil {
		return l
	}
	st := p.State()
	l.ready = rec.Ready && st.Status == specs.StateRunning
	if l.ready {
		l.pid = st.Pid
		l.netns = st.NetNS
		if st.Network != nil {
			l.ip = st.Network.Addr.Addr().String()
		}
		if rec.CNI != nil && len(rec.CNI.IPs) > 0 {
			l.ip, l.moreIPs = rec.CNI.IPs[0], rec.CNI.IPs[1:]
		}
	}
	return l
}

func (r *podRecord) metadata() *runtimeapi.PodSandboxMetadata {
	return &runtimeapi.PodSandboxMetadata{Name: r.Name, Uid: r.UID, Namespace: r.Namespace, Attempt: r.Attempt}
}

func state(ready bool) runtimeapi.PodSandboxState {
	if ready {
		return runtimeapi.PodSandboxState_SANDBOX_READY
	}
	return runtimeapi.PodSandboxState_SANDBOX_NOTREADY
}

// PodSandboxStatus reports a pod: its state, address, namespaces, metadata.
func (s *Server) PodSandboxStatus(_ context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	rec, err := s.find(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	l := s.liveOf(&rec)
	st := &runtimeapi.PodSandboxStatus{
		Id: rec.ID, Metadata: rec.metadata(), State: state(l.ready), CreatedAt: rec.Created,
		Linux:  &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{Options: rec.namespaceOption()}},
		Labels: rec.Labels, Annotations: rec.Annotations, RuntimeHandler: rec.RuntimeHandler,
	}
	if l.ip != "" {
		st.Network = &runtimeapi.PodSandboxNetworkStatus{Ip: l.ip}
		for _, ip := range l.moreIPs {
			st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtimeapi.PodIP{Ip: ip})
		}
	}
	resp := &runtimeapi.PodSandboxStatusResponse{Status: st, Timestamp: time.Now().UnixNano()}
	if req.GetVerbose() {
		resp.Info = map[string]string{"info": mustJSON(map[string]any{
			"record": rec, "root": s.root, "pid": l.pid, "netns": l.netns,
		})}
	}
	return resp, nil
}

// ListPodSandbox lists the pods that pass the filter: an ID (or a prefix of
// one), a state, and labels that must all match.
func (s *Server) ListPodSandbox(_ context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	f := req.GetFilter()
	s.mu.Lock()
	recs := make([]podRecord, 0, len(s.pods))
	for _, r := range s.pods {
		recs = append(recs, *r)
	}
	s.mu.Unlock()
	sort.Slice(recs, func(i, j int) bool { return recs[i].Created > recs[j].Created })
	resp := &runtimeapi.ListPodSandboxResponse{}
	for i := range recs {
		r := &recs[i]
		if f.GetId() != "" && !strings.HasPrefix(r.ID, f.GetId()) {
			continue
		}
		if !labelsMatch(r.Labels, f.GetLabelSelector()) {
			continue
		}
		st := state(s.liveOf(r).ready)
		if f.GetState() != nil && f.GetState().GetState() != st {
			continue
		}
		resp.Items = append(resp.Items, &runtimeapi.PodSandbox{
			Id: r.ID, Metadata: r.metadata(), State: st, CreatedAt: r.Created,
			Labels: r.Labels, Annotations: r.Annotations, RuntimeHandler: r.RuntimeHandler,
		})
	}
	return resp, nil
}

// labelsMatch tells whether labels has every key of sel with its value.
func labelsMatch(labels, sel map[string]string) bool {
	for k, v := range sel {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return `{"error":` + jsonString(err.Error()) + `}`
	}
	return string(b)
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
