package cri

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podsb/podsb/cni"
	"github.com/podsb/podsb/sandbox"
)

// cniRecord is a CNI pod's network, in its podRecord: the configuration it
// was added with (what DEL runs, whatever the conf directory holds since),
// and what ADD gave it.
type cniRecord struct {
	// File and Config are the network configuration list and its file.
	File   string `json:"file"`
	Config []byte `json:"config"`
	// BinDirs are where its plugins were found: DEL runs them even if
	// the server runs without CNI since.
	BinDirs []string `json:"binDirs"`
	// Ports are the published ports passed to the plugins.
	Ports []cni.PortMapping `json:"ports,omitempty"`
	// Added is true from before ADD runs until DEL has succeeded: a pod
	// whose ADD was cut short by a crash is deleted too.
	Added bool `json:"added"`
	// IPs are the pod's addresses from ADD's result, IPv4 first.
	IPs []string `json:"ips,omitempty"`
}

// openCNI checks the CNI options of a server and loads its network once,
// so that a conf directory that is missing or holds no valid network is an
// error at start. Without a conf directory it returns nil: the pods are on
// podsb's bridge.
func openCNI(confDir string, binDirs []string, stateDir string) (*cni.Options, error) {
	if confDir == "" {
		if len(binDirs) > 0 {
			return nil, errors.New("cni: a plugin directory without a conf directory (--cni-conf-dir)")
		}
		return nil, nil
	}
	o := &cni.Options{ConfDir: confDir, BinDirs: binDirs, CacheDir: filepath.Join(stateDir, "cni")}
	if len(o.BinDirs) == 0 {
		o.BinDirs = []string{DefaultCNIBinDir}
	}
	if _, err := cni.Load(*o); err != nil {
		return nil, err
	}
	return o, nil
}

// SplitDirs splits a comma-separated list of directories, as
// --cni-bin-dir takes.
func SplitDirs(s string) []string {
	var dirs []string
	for _, d := range strings.Split(s, ",") {
		if d = strings.TrimSpace(d); d != "" {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// DefaultCNIBinDir is where the CNI plugins are looked up when
// --cni-bin-dir is not given: Debian's containernetworking-plugins'.
const DefaultCNIBinDir = "/usr/lib/cni"

// cniAttachment is the pod's attachment: its ID, pinned network namespace
// and the K8S_POD_* arguments that kubelet setups' plugins read.
func cniAttachment(rec *podRecord, netns string) cni.Attachment {
	a := cni.Attachment{ID: rec.ID, NetNS: netns, Args: [][2]string{
		{"IgnoreUnknown", "1"},
		{"K8S_POD_NAMESPACE", rec.Namespace},
		{"K8S_POD_NAME", rec.Name},
		{"K8S_POD_INFRA_CONTAINER_ID", rec.ID},
		{"K8S_POD_UID", rec.UID},
	}}
	if rec.CNI != nil {
		a.Ports = rec.CNI.Ports
	}
	return a
}

// cniPorts turns the pod's published ports into the portMappings
// capability's.
func cniPorts(ports []sandbox.Port) []cni.PortMapping {
	var pm []cni.PortMapping
	for _, p := range ports {
		m := cni.PortMapping{HostPort: int(p.HostPort), ContainerPort: int(p.PodPort), Protocol: p.Proto}
		if p.HostIP.IsValid() {
			m.HostIP = p.HostIP.String()
		}
		pm = append(pm, m)
	}
	return pm
}

// cniPrepare loads the network for a new pod and records it in rec, not
// added yet: what RunPodSandbox writes before the pod is made.
func (s *Server) cniPrepare(rec *podRecord, ports []sandbox.Port) error {
	n, err := cni.Load(*s.cni)
	if err != nil {
		return failedPreconditionf("pod network: %v", err)
	}
	if len(ports) > 0 && !n.HasCapability("portMappings") {
		return invalidf("port mappings: the CNI network %s (%s) has no plugin with the portMappings capability (portmap)", n.Name(), n.File)
	}
	rec.CNI = &cniRecord{File: n.File, Config: n.Bytes(), BinDirs: s.cni.BinDirs, Ports: cniPorts(ports)}
	return nil
}

// cniAdd runs ADD for the pod just made, in its pinned network namespace,
// and records the pod's addresses. On failure ADD's plugins have undone
// their part (cni.Network.Add); the caller removes the pod.
func (s *Server) cniAdd(ctx context.Context, rec *podRecord, pod *sandbox.Pod) error {
	n, err := cni.FromBytes(*s.cni, rec.CNI.File, rec.CNI.Config)
	if err != nil {
		return internalf("pod network: %v", err)
	}
	next := *rec.CNI
	next.Added = true
	if err := s.setCNI(rec.ID, &next); err != nil {
		return internalf("pod %s: %v", rec.ID, err)
	}
	res, err := n.Add(ctx, cniAttachment(rec, pod.NamespacePath(specs.NetworkNamespace)))
	if err != nil {
		return internalf("pod network: %v", err)
	}
	for _, ip := range res.IPs {
		next.IPs = append(next.IPs, ip.String())
	}
	if err := s.setCNI(rec.ID, &next); err != nil {
		return internalf("pod %s: %v", rec.ID, err)
	}
	return nil
}

// cniDel runs DEL for a pod added to a CNI network (with the
// configuration it was added with), and records it deleted. A pod not
// added, or deleted already, is left alone.
func (s *Server) cniDel(ctx context.Context, id string) error {
	rec, err := s.find(id)
	if err != nil || rec.CNI == nil || !rec.CNI.Added {
		return nil
	}
	o := cni.Options{CacheDir: filepath.Join(s.store.dir, "cni"), BinDirs: rec.CNI.BinDirs}
	if s.cni != nil {
		o = *s.cni
	}
	n, err := cni.FromBytes(o, rec.CNI.File, rec.CNI.Config)
	if err != nil {
		return internalf("pod %s: network: %v", id, err)
	}
	p, err := sandbox.Load(s.root, id)
	netns := ""
	switch {
	case err == nil:
		netns = p.NamespacePath(specs.NetworkNamespace)
	case !errors.Is(err, sandbox.ErrNotFound):
		return grpcError("pod "+id, err)
	}
	if err := n.Del(ctx, cniAttachment(&rec, netns)); err != nil {
		return internalf("pod %s: %v", id, err)
	}
	next := *rec.CNI
	next.Added, next.IPs = false, nil
	return s.setCNI(id, &next)
}

// setCNI records c as the pod's network.
func (s *Server) setCNI(id string, c *cniRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.pods[id]
	if !ok {
		return notFoundf("pod sandbox %s: removed meanwhile", id)
	}
	next := *rec
	next.CNI = c
	if err := s.store.write(&next); err != nil {
		return fmt.Errorf("record network of pod %s: %w", id, err)
	}
	s.pods[id] = &next
	return nil
}
