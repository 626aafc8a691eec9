package sandbox

import (
	"errors"
	"os"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/network"
	"github.com/podsb/podsb/rootfs"
)

// DefaultRoot is the state root when none is given. It is under /run, a
// tmpfs on most systems, so a reboot forgets every pod, as it kills them.
const DefaultRoot = "/run/podsb"

const stateFile = "state.json"

// NamespaceTypes are the namespaces a pod owns, in the order they are
// pinned and joined.
var NamespaceTypes = []specs.LinuxNamespaceType{
	specs.PIDNamespace, specs.UTSNamespace, specs.IPCNamespace, specs.MountNamespace, specs.NetworkNamespace,
	specs.UserNamespace, // the host's, for a pod without one of its own
}

// procName maps a namespace type to its name under /proc/PID/ns.
func procName(t specs.LinuxNamespaceType) string {
	switch t {
	case specs.NetworkNamespace:
		return "net"
	case specs.MountNamespace:
		return "mnt"
	}
	return string(t)
}

// Namespace is a persisted namespace handle.
type Namespace struct {
	Type specs.LinuxNamespaceType `json:"type"`
	// Path is the bind mount of /proc/PID/ns/* that pins the namespace.
	Path string `json:"path"`
	// Inode is the namespace's inode number (as in /proc/PID/ns/* links).
	Inode uint64 `json:"inode"`
}

// State is what podsb keeps of a pod in ROOT/NAME/state.json. The embedded
// OCI state gives ociVersion, id (the pod's name), status, pid (the host PID
// of pause), bundle (the pod's state directory) and annotations.
type State struct {
	specs.State
	// Created is when the pod was created.
	Created time.Time `json:"created"`
	// StartTime is pause's start time in clock ticks after boot (field 22
	// of /proc/PID/stat). With BootID it tells pause from a later process
	// that reuses its PID.
	StartTime uint64 `json:"pauseStartTime"`
	// BootID is the kernel's boot ID when the pod was created.
	BootID string `json:"bootID"`
	// Hostname is the pod's hostname.
	Hostname string `json:"hostname"`
	// Rootfs is the host directory used as root; empty for the default root.
	Rootfs string `json:"rootfs,omitempty"`
	// ReadOnly tells whether the root is read-only.
	ReadOnly bool `json:"readOnly,omitempty"`
	// Volumes are the host paths bound into the pod.
	Volumes []rootfs.Volume `json:"volumes,omitempty"`
	// Namespaces are the pinned namespace handles.
	Namespaces []Namespace `json:"namespaces,omitempty"`
	// NetNS is the path under /run/netns where the pod's network namespace
	// is registered for ip netns.
	NetNS string `json:"netns,omitempty"`
	// Cgroup is the path of the pod's cgroup, with its Limits; empty
	// without limits.
	Cgroup string `json:"cgroup,omitempty"`
	Limits Limits `json:"limits,omitzero"`
	// ResolvConf is Config.ResolvConf, which Start writes again.
	ResolvConf string `json:"resolvConf,omitempty"`
	// Security is what the pod's pause may do (and Start needs again).
	Security Security `json:"security,omitzero"`
	// HostNetwork and HostIPC say the pod uses the host's network and UTS,
	// and IPC, namespaces (Config.HostNetwork, HostIPC).
	HostNetwork bool `json:"hostNetwork,omitempty"`
	HostIPC     bool `json:"hostIPC,omitempty"`
	// HostPID says its containers may use the host's PID namespace
	// (Config.HostPID).
	HostPID bool `json:"hostPID,omitempty"`

	// UserNS is the pod's own user namespace, if it has one: its maps.
	UserNS *UserNS `json:"userNS,omitempty"`
	// Sysctls are Config.Sysctls, which Start sets again in a pod with a
	// user namespace of its own (its namespaces are new at each start).
	Sysctls []Sysctl `json:"sysctls,omitempty"`
	// Rootless is set for a pod made without root: the maps of its user
	// namespace, the user's own IDs as 0 (rootless_linux.go). Its
	// Namespaces are links to pause's /proc/PID/ns/*, not bind mounts.
	Rootless *UserNS `json:"rootless,omitempty"`
	// Network is the pod's place on the bridge network: address, gateway,
	// bridge, host veth, published ports. Nil without one.
	Network *network.Lease `json:"network,omitempty"`
}

// writeFileAtomic writes b to path (mode 0600) so that readers see the old
// or the new file, never a part: to path.tmp, then renamed. Neither is
// opened through a symbolic link in its place, and a failed write removes
// path.tmp.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

func isNotExist(err error) bool { return errors.Is(err, os.ErrNotExist) }
