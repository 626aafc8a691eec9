package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
)

// ErrConfig is the class of the errors of a conf directory that yields no
// network: missing, unreadable, or holding no valid configuration.
var ErrConfig = errors.New("cni config")

// DefaultIfName is the pod's interface name that the plugins make.
const DefaultIfName = "eth0"

// extensions are the names of the files a conf directory's configurations
// are read from, as libcni and kubelet setups name them.
var extensions = []string{".conflist", ".conf", ".json"}

// Options locate the plugins and their configurations.
type Options struct {
	// ConfDir holds the network configurations: the first valid one in
	// lexical order of the file names is the pods' network.
	ConfDir string
	// BinDirs are where the plugins' executables are looked up.
	BinDirs []string
	// CacheDir is libcni's cache of results; required.
	CacheDir string
}

// Check tells whether o can be used: the conf directory exists and the
// plugin directories do, without reading the configurations.
func (o Options) Check() error {
	if o.ConfDir == "" {
		return fmt.Errorf("%w: no conf directory", ErrConfig)
	}
	if fi, err := os.Stat(o.ConfDir); err != nil {
		return fmt.Errorf("%w: conf directory: %w", ErrConfig, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("%w: conf directory %s: not a directory", ErrConfig, o.ConfDir)
	}
	if len(o.BinDirs) == 0 {
		return fmt.Errorf("%w: no plugin directory", ErrConfig)
	}
	for _, d := range o.BinDirs {
		if fi, err := os.Stat(d); err != nil {
			return fmt.Errorf("%w: plugin directory: %w", ErrConfig, err)
		} else if !fi.IsDir() {
			return fmt.Errorf("%w: plugin directory %s: not a directory", ErrConfig, d)
		}
	}
	if o.CacheDir == "" {
		return fmt.Errorf("%w: no cache directory", ErrConfig)
	}
	return nil
}

// Network is a loaded network configuration list and the plugins that run
// it.
type Network struct {
	// File is the configuration's file.
	File string
	list *libcni.NetworkConfigList
	cfg  *libcni.CNIConfig
}

// Load reads the first valid network configuration of o.ConfDir: a
// .conflist, or a single plugin's .conf or .json made into a list. Files
// that do not parse are passed over, and named in the error if none does.
func Load(o Options) (*Network, error) {
	if err := o.Check(); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(o.ConfDir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	var names []string
	for _, e := range ents {
		if !e.IsDir() && hasExt(e.Name()) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var bad []string
	for _, n := range names {
		path := filepath.Join(o.ConfDir, n)
		list, err := readList(path)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", n, err))
			continue
		}
		return fromList(o, path, list), nil
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: %s holds no network configuration (*.conflist, *.conf, *.json)", ErrConfig, o.ConfDir)
	}
	return nil, fmt.Errorf("%w: %s holds no valid network configuration: %s", ErrConfig, o.ConfDir, strings.Join(bad, "; "))
}

// FromBytes makes the network of a configuration list as Load reads it, for
// one recorded earlier (what a pod was added with is what it is deleted
// with, whatever the conf directory holds since).
func FromBytes(o Options, file string, b []byte) (*Network, error) {
	list, err := parseList(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrConfig, file, err)
	}
	return fromList(o, file, list), nil
}

func fromList(o Options, file string, list *libcni.NetworkConfigList) *Network {
	return &Network{File: file, list: list, cfg: libcni.NewCNIConfigWithCacheDir(o.BinDirs, o.CacheDir, nil)}
}

func hasExt(name string) bool {
	for _, e := range extensions {
		if strings.HasSuffix(name, e) {
			return true
		}
	}
	return false
}

// readList reads one file: a list if it has "plugins", else one plugin's
// configuration.
func readList(path string) (*libcni.NetworkConfigList, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseList(b)
}

func parseList(b []byte) (*libcni.NetworkConfigList, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if _, ok := probe["plugins"]; !ok {
		// One plugin's configuration: the list of it alone, with its
		// name and version (what libcni's deprecated ConfListFromConf
		// does).
		if _, err := libcni.NetworkPluginConfFromBytes(b); err != nil {
			return nil, err
		}
		m := map[string]json.RawMessage{"plugins": json.RawMessage("[" + string(b) + "]")}
		for _, k := range []string{"name", "cniVersion"} {
			if v, ok := probe[k]; ok {
				m[k] = v
			}
		}
		list, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		b = list
	}
	// libcni refuses a list without a name or plugins, and a plugin
	// without a type.
	return libcni.NetworkConfFromBytes(b)
}

// Name is the network's name.
func (n *Network) Name() string { return n.list.Name }

// Bytes is the configuration list as read, for FromBytes.
func (n *Network) Bytes() []byte { return n.list.Bytes }

// HasCapability tells whether a plugin of the network declares the
// capability c (e.g. "portMappings").
func (n *Network) HasCapability(c string) bool {
	for _, p := range n.list.Plugins {
		if p.Network.Capabilities[c] {
			return true
		}
	}
	return false
}

// PortMapping is a published port, as the portMappings capability has it.
type PortMapping struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// Attachment is a pod's place on the network.
type Attachment struct {
	// ID is the pod's ID, the plugins' container ID.
	ID string
	// NetNS is the path of the pod's pinned network namespace.
	NetNS string
	// IfName is the pod's interface; DefaultIfName if empty.
	IfName string
	// Args are CNI_ARGS (the K8S_POD_* keys kubelet setups pass).
	Args [][2]string
	// Ports are the pod's published ports.
	Ports []PortMapping
}

func (n *Network) runtimeConf(a Attachment) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{ContainerID: a.ID, NetNS: a.NetNS, IfName: a.IfName, Args: a.Args}
	if rt.IfName == "" {
		rt.IfName = DefaultIfName
	}
	if len(a.Ports) > 0 {
		rt.CapabilityArgs = map[string]interface{}{"portMappings": a.Ports}
	}
	return rt
}

// Result is what ADD gave the pod.
type Result struct {
	// IPs are the pod's addresses on its interface (those of the result
	// with no interface, or the sandbox's), IPv4 first.
	IPs []netip.Addr
}

// Add runs the plugins' ADD for a. If one fails, what the others did is
// undone with DEL, and the error names the network and the plugin's
// message.
func (n *Network) Add(ctx context.Context, a Attachment) (Result, error) {
	rt := n.runtimeConf(a)
	res, err := n.cfg.AddNetworkList(ctx, n.list, rt)
	if err != nil {
		if derr := n.cfg.DelNetworkList(context.WithoutCancel(ctx), n.list, rt); derr != nil {
			return Result{}, fmt.Errorf("cni network %s: add: %w (and undoing it: %v)", n.Name(), err, derr)
		}
		return Result{}, fmt.Errorf("cni network %s: add: %w", n.Name(), err)
	}
	r, err := resultOf(res, rt.IfName, a.NetNS)
	if err != nil {
		n.cfg.DelNetworkList(context.WithoutCancel(ctx), n.list, rt)
		return Result{}, fmt.Errorf("cni network %s: add: %w", n.Name(), err)
	}
	return r, nil
}

// resultOf picks the pod's addresses out of an ADD result.
func resultOf(res types.Result, ifName, netns string) (Result, error) {
	cur, err := current.NewResultFromResult(res)
	if err != nil {
		return Result{}, fmt.Errorf("result: %w", err)
	}
	var r Result
	for _, ip := range cur.IPs {
		if ip.Interface != nil {
			i := *ip.Interface
			if i < 0 || i >= len(cur.Interfaces) {
				continue
			}
			ifc := cur.Interfaces[i]
			if ifc.Name != ifName || (ifc.Sandbox != "" && ifc.Sandbox != netns) {
				continue
			}
		}
		a, ok := netip.AddrFromSlice(ip.Address.IP)
		if !ok {
			continue
		}
		r.IPs = append(r.IPs, a.Unmap())
	}
	if len(r.IPs) == 0 {
		return Result{}, errors.New("result has no address for the pod")
	}
	sort.SliceStable(r.IPs, func(i, j int) bool { return r.IPs[i].Is4() && !r.IPs[j].Is4() })
	return r, nil
}

// Check runs the plugins' CHECK for a pod added before.
func (n *Network) Check(ctx context.Context, a Attachment) error {
	if err := n.cfg.CheckNetworkList(ctx, n.list, n.runtimeConf(a)); err != nil {
		return fmt.Errorf("cni network %s: check: %w", n.Name(), err)
	}
	return nil
}

// Del runs the plugins' DEL for a: it removes what ADD made, and succeeds
// for a pod not added, or deleted already.
func (n *Network) Del(ctx context.Context, a Attachment) error {
	if err := n.cfg.DelNetworkList(ctx, n.list, n.runtimeConf(a)); err != nil {
		return fmt.Errorf("cni network %s: del: %w", n.Name(), err)
	}
	return nil
}
