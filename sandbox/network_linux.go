package sandbox

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/network"
)

// NetworkConfig connects a pod to the bridge network of its state root.
type NetworkConfig struct {
	// Bridge and Subnet choose the network on its first use (defaults
	// network.DefaultBridge and network.DefaultSubnet); later pods must
	// leave them empty or give the same.
	Bridge string
	Subnet netip.Prefix
	// IP asks for a specific free address of the subnet.
	IP netip.Addr
	// Publish are host ports forwarded to the pod.
	Publish []Port
}

// Port is a published port.
type Port = network.Port

// ParsePort parses [HOSTIP:]HOSTPORT:PODPORT[/tcp|/udp].
func ParsePort(s string) (Port, error) {
	p, err := network.ParsePort(s)
	if err != nil {
		return p, invalid(err)
	}
	return p, nil
}

// ParseSubnet parses an IPv4 subnet such as 10.89.0.0/16.
func ParseSubnet(s string) (netip.Prefix, error) {
	p, err := network.ParseSubnet(s)
	if err != nil {
		return p, invalid(err)
	}
	return p, nil
}

// netError turns the network's bad-input errors into ErrInvalid.
func netError(err error) error {
	if errors.Is(err, network.ErrInvalid) {
		return invalid(err)
	}
	return err
}

// reserveNetwork reserves the pod's address and ports.
func reserveNetwork(root, name string, nc *NetworkConfig) (*network.Lease, error) {
	if nc.Bridge != "" {
		if err := network.ValidateBridge(nc.Bridge); err != nil {
			return nil, invalid(err)
		}
	}
	n, err := network.Open(root, network.Options{Bridge: nc.Bridge, Subnet: nc.Subnet})
	if err != nil {
		return nil, netError(err)
	}
	l, err := n.Reserve(name, nc.IP, nc.Publish)
	// Close removes the network only when no address is leased, which is
	// not the case after a successful Reserve.
	n.Close()
	if err != nil {
		return nil, netError(err)
	}
	return l, nil
}

// attachNetwork wires the pod, through its pinned network namespace, to the
// bridge. step is called after each of its steps (Config.Trace).
func attachNetwork(root, name string, l *network.Lease, netns string, step func(string)) error {
	fd, err := unix.Open(netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: netns, Err: err}
	}
	defer unix.Close(fd)
	n, err := network.Open(root, network.Options{})
	if err != nil {
		return err
	}
	n.Trace = step
	err = n.Attach(l, name, fd)
	if cerr := n.Close(); err == nil {
		err = cerr
	}
	return netError(err)
}

// reattachNetwork wires a stopped pod to the bridge again as its lease l
// says, whatever a killed rm or a crash left of it (no address, no veth,
// no NAT rules, or no network at all): under the network's lock, it
// releases what remains of l, reserves the same address and ports again
// and attaches the pod's network namespace netns. It fails if another pod
// took the address or a port meanwhile.
func reattachNetwork(root, name string, l *network.Lease, netns string) (*network.Lease, error) {
	fd, err := unix.Open(netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: netns, Err: err}
	}
	defer unix.Close(fd)
	n, err := network.Open(root, network.Options{Bridge: l.Bridge, Subnet: l.Addr.Masked()})
	if err != nil {
		return nil, netError(err)
	}
	err = n.Release(l, name)
	var nl *network.Lease
	if err == nil {
		nl, err = n.Reserve(name, l.Addr.Addr(), l.Ports)
	}
	if err == nil {
		if err = n.Attach(nl, name, fd); err != nil {
			n.Release(nl, name)
		}
	}
	if cerr := n.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, netError(err)
	}
	return nl, nil
}

// releaseNetwork gives back the pod's lease; without one (a create that
// died before writing its state), whatever the network holds for pods that
// are gone. The last pod removes the network.
func releaseNetwork(root, name string, l *network.Lease, keep bool) error {
	return releaseNetworkTo(root, name, l, keep, nil)
}

// releaseNetworkTo is releaseNetwork, with the veth, the address and the
// ports left to batch if it is not nil.
func releaseNetworkTo(root, name string, l *network.Lease, keep bool, batch *network.Batch) error {
	n, err := network.Open(root, network.Options{Existing: true, KeepEmpty: keep})
	if errors.Is(err, network.ErrNoNetwork) {
		return nil // never used, or removed by the last pod
	}
	if err != nil {
		return err
	}
	if l != nil {
		n.Batch = batch
		err = n.Release(l, name)
	} else {
		err = n.Prune(func(pod string) bool { return isPodDir(root, pod) })
	}
	if cerr := n.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("release network of %s: %w", name, err)
	}
	return nil
}

// isPodDir tells whether ROOT/name is a pod: a directory, not a link, with
// the pod marker (which create writes before it reserves an address).
func isPodDir(root, name string) bool {
	if ValidateName(name) != nil {
		return false
	}
	if fi, err := os.Lstat(filepath.Join(root, name)); err != nil || !fi.IsDir() {
		return false
	}
	fi, err := os.Lstat(filepath.Join(root, name, markerFile))
	return err == nil && fi.Mode().IsRegular()
}

// PruneNetwork releases what the network of a state root holds for pods
// that no longer exist, and removes the network (bridge, NAT table, state)
// if no pod uses it.
func PruneNetwork(root string) error {
	root, err := absRoot(root)
	if err != nil {
		return err
	}
	return releaseNetwork(root, "", nil, false)
}

// netipAddr returns the pod's address, or the zero Addr without a network.
func netipAddr(st *State) netip.Addr {
	if st == nil || st.Network == nil {
		return netip.Addr{}
	}
	return st.Network.Addr.Addr()
}
