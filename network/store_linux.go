package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// config is a network's persisted configuration, fixed on first use.
type config struct {
	Bridge string       `json:"bridge"`
	Subnet netip.Prefix `json:"subnet"`
}

// Network is a state root's bridge network, opened with its lock held.
type Network struct {
	root string // the state root that owns it
	dir  string // ROOT/.network
	cfg  config
	lock *os.File
	// keepEmpty: Close leaves an unused network in place (Options).
	keepEmpty bool

	// Trace, if set, is called after each step of Attach that changes the
	// host or the pod, with the step's name.
	Trace func(step string)
	// Batch, if set, makes Release leave the pod's veth, lease and ports
	// to the batch's Flush.
	Batch *Batch
}

func (n *Network) step(name string) {
	if n.Trace != nil {
		n.Trace(name)
	}
}

// Options choose a network's bridge and subnet on its first use; zero
// values take the defaults. Later uses must ask for the same or nothing.
type Options struct {
	Bridge string
	Subnet netip.Prefix
	// Existing opens the network only if the root has one: Open makes
	// nothing and fails with ErrNoNetwork otherwise (to release, there
	// is nothing to make).
	Existing bool
	// KeepEmpty makes Close leave the network (bridge, NAT table, state)
	// in place when no pod holds an address any more: for a caller that
	// will make pods again soon (podsb cri, whose pods come and go one at
	// a time), which removes it itself with Prune and Close. Tearing the
	// network down and making it again costs tens of milliseconds.
	KeepEmpty bool
}

// ErrNoNetwork means the state root has no network (Options.Existing).
var ErrNoNetwork = fmt.Errorf("no network: %w", os.ErrNotExist)

// Open opens the network of a state root, creating its directory and
// configuration on first use, and takes its lock. Close releases it.
func Open(root string, opts Options) (*Network, error) {
	dir := filepath.Join(root, ".network")
	// Only the directory is made before the lock: its entries are made
	// under it, or they could be made inside a directory that the last
	// pod's Close is removing, which then fails (ENOTEMPTY).
	if !opts.Existing {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
	}
	lock, err := os.Open(dir)
	if opts.Existing && errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoNetwork
	}
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		lock.Close()
		return nil, &os.PathError{Op: "flock", Path: dir, Err: err}
	}
	// The last pod's Close removes the directory: a lock taken on it
	// while that happened locks nothing. Start again.
	var locked, now unix.Stat_t
	if unix.Fstat(int(lock.Fd()), &locked) != nil || unix.Stat(dir, &now) != nil || locked.Ino != now.Ino {
		lock.Close()
		return Open(root, opts)
	}
	n := &Network{root: root, dir: dir, lock: lock, keepEmpty: opts.KeepEmpty}
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if opts.Existing && errors.Is(err, os.ErrNotExist) {
		// An Open killed before it wrote the configuration: no pod has
		// an address without one. Remove what it made, under the lock
		// (an Open waiting for it finds the directory gone and starts
		// again).
		err := os.RemoveAll(dir)
		n.Close() // no configuration: Close removes nothing more
		if err != nil {
			return nil, err
		}
		return nil, ErrNoNetwork
	}
	for _, d := range []string{filepath.Join(dir, "leases"), filepath.Join(dir, "ports")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			n.Close()
			return nil, err
		}
	}
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &n.cfg); err != nil {
			n.Close()
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "config.json"), err)
		}
		if opts.Bridge != "" && opts.Bridge != n.cfg.Bridge || opts.Subnet.IsValid() && opts.Subnet != n.cfg.Subnet {
			n.Close()
			return nil, invalidf("the network of %s is bridge %s with subnet %s; remove its pods to change it", root, n.cfg.Bridge, n.cfg.Subnet)
		}
	case errors.Is(err, os.ErrNotExist):
		n.cfg = config{Bridge: opts.Bridge, Subnet: opts.Subnet}
		if n.cfg.Bridge == "" {
			n.cfg.Bridge = DefaultBridge
		}
		if !n.cfg.Subnet.IsValid() {
			n.cfg.Subnet = DefaultSubnet
		}
		if err := ValidateBridge(n.cfg.Bridge); err != nil {
			n.Close()
			return nil, err
		}
		if err := checkSubnetFree(n.cfg.Subnet, n.cfg.Bridge); err != nil {
			n.Close()
			return nil, err
		}
		b, _ := json.MarshalIndent(n.cfg, "", "  ")
		if err := writeFileAtomic(filepath.Join(dir, "config.json"), b); err != nil {
			n.Close()
			return nil, err
		}
	default:
		n.Close()
		return nil, err
	}
	return n, nil
}

// Close releases the network's lock. If no pod holds an address any more, it
// first removes the network: bridge, NAT table and directory.
func (n *Network) Close() error {
	if n.lock == nil {
		return nil
	}
	defer func() { n.lock.Close(); n.lock = nil }()
	if n.cfg.Bridge == "" || n.keepEmpty {
		return nil
	}
	// One entry read, not all: Close ends every create and rm.
	if emptyDir(filepath.Join(n.dir, "leases")) {
		return n.remove()
	}
	return nil
}

// Bridge returns the bridge's name; Subnet and Gateway its addresses.
func (n *Network) Bridge() string       { return n.cfg.Bridge }
func (n *Network) Subnet() netip.Prefix { return n.cfg.Subnet }
func (n *Network) Gateway() netip.Addr  { return gateway(n.cfg.Subnet) }
func (n *Network) table() string        { return "podsb_" + n.cfg.Bridge }
func (n *Network) leasePath(a netip.Addr) string {
	return filepath.Join(n.dir, "leases", a.String())
}
func portKey(p Port) string { return p.Proto + "-" + strconv.Itoa(int(p.HostPort)) }

// Lease is what a pod holds of the network.
type Lease struct {
	Addr    netip.Prefix `json:"address"` // the pod's address with the subnet's length
	Gateway netip.Addr   `json:"gateway"`
	Bridge  string       `json:"bridge"`
	Veth    string       `json:"veth"` // host end of the pod's veth pair
	Ports   []Port       `json:"ports,omitempty"`
}

// Reserve gives pod an address (want, if valid, else the first free one)
// and reserves its published ports. On failure nothing is reserved.
func (n *Network) Reserve(pod string, want netip.Addr, ports []Port) (*Lease, error) {
	l := &Lease{Gateway: n.Gateway(), Bridge: n.cfg.Bridge, Veth: vethName(n.root, pod)}
	var addr netip.Addr
	if want.IsValid() {
		if err := checkPodAddr(n.cfg.Subnet, want); err != nil {
			return nil, err
		}
		if err := createExcl(n.leasePath(want), pod); err != nil {
			if errors.Is(err, os.ErrExist) {
				return nil, fmt.Errorf("address %s: %w", want, ErrConflict)
			}
			return nil, err
		}
		addr = want
	} else {
		var err error
		if addr, err = n.allocate(pod); err != nil {
			return nil, err
		}
	}
	l.Addr = netip.PrefixFrom(addr, n.cfg.Subnet.Bits())
	for i, p := range ports {
		if err := n.reservePort(pod, p, ports[:i]); err != nil {
			n.Release(l, pod)
			return nil, err
		}
		l.Ports = append(l.Ports, p)
	}
	return l, nil
}

// allocate takes the lowest free address of the subnet. It starts from
// the network's free-from mark, below which every address is taken, so
// that the n-th pod does not read the n-1 leases before it (a create
// would cost O(n)). A full pool is a clear error; the pods that hold its
// addresses are not touched.
func (n *Network) allocate(pod string) (netip.Addr, error) {
	last := broadcast(n.cfg.Subnet)
	for a := n.freeFrom(); a.Less(last); a = a.Next() {
		if err := createExcl(n.leasePath(a), pod); err == nil {
			// A crash before this write leaves the mark lower than it
			// could be, which only costs a longer search.
			writeFileAtomic(filepath.Join(n.dir, freeFromFile), []byte(a.Next().String()))
			return a, nil
		} else if !errors.Is(err, os.ErrExist) {
			return netip.Addr{}, err
		}
	}
	return netip.Addr{}, fmt.Errorf("subnet %s: %w", n.cfg.Subnet, ErrFull)
}

// freeFromFile, in the network's directory, holds the free-from mark: an
// address such that every pod address of the subnet below it is leased.
// An address is freed only after the mark is lowered to it (freed), so
// the mark is never above a free address.
const freeFromFile = "free-from"

// freeFrom returns the free-from mark, or the first pod address if there
// is none (or it is not of the subnet).
func (n *Network) freeFrom() netip.Addr {
	first := gateway(n.cfg.Subnet).Next()
	b, err := os.ReadFile(filepath.Join(n.dir, freeFromFile))
	if err != nil {
		return first
	}
	a, err := netip.ParseAddr(string(b))
	if err != nil || !n.cfg.Subnet.Contains(a) || a.Less(first) {
		return first
	}
	return a
}

// freed lowers the free-from mark to a, which is about to be freed.
func (n *Network) freed(a netip.Addr) {
	if a.Less(n.freeFrom()) {
		writeFileAtomic(filepath.Join(n.dir, freeFromFile), []byte(a.String()))
	}
}

// reservePort reserves p for pod: no other pod may publish it, and no
// socket of the host may be bound to it.
func (n *Network) reservePort(pod string, p Port, earlier []Port) error {
	for _, q := range earlier {
		if q.Proto == p.Proto && q.HostPort == p.HostPort {
			return invalidf("port %d/%s published twice", p.HostPort, p.Proto)
		}
	}
	path := filepath.Join(n.dir, "ports", portKey(p))
	if err := createExcl(path, pod); err != nil {
		if errors.Is(err, os.ErrExist) {
			owner, _ := os.ReadFile(path)
			return fmt.Errorf("host port %d/%s: %w by pod %s", p.HostPort, p.Proto, ErrConflict, owner)
		}
		return err
	}
	if err := portFree(p); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// portFree tries to bind the host port, as a server would.
func portFree(p Port) error {
	host := "0.0.0.0"
	if p.HostIP.IsValid() {
		host = p.HostIP.String()
	}
	addr := net.JoinHostPort(host, strconv.Itoa(int(p.HostPort)))
	var err error
	if p.Proto == "udp" {
		var c net.PacketConn
		if c, err = net.ListenPacket("udp4", addr); err == nil {
			c.Close()
		}
	} else {
		var l net.Listener
		if l, err = net.Listen("tcp4", addr); err == nil {
			l.Close()
		}
	}
	if errors.Is(err, unix.EADDRNOTAVAIL) {
		return invalidf("publish %s: %s is not an address of this host", p, host)
	}
	if err != nil {
		return fmt.Errorf("host port %d/%s: %w on the host (%v)", p.HostPort, p.Proto, ErrConflict, errors.Unwrap(err))
	}
	return nil
}

// Release gives back what Reserve and Attach gave pod: its NAT rules, its
// veth, its ports and its address (with a Batch, later: Batch.Flush). It
// is idempotent, and releases only what pod holds.
func (n *Network) Release(l *Lease, pod string) error {
	if n.Batch != nil {
		return n.Batch.hold(l)
	}
	var errs []error
	if len(l.Ports) > 0 {
		if err := n.unpublish(pod); err != nil {
			errs = append(errs, err)
		}
	}
	if err := deleteLink(l.Veth); err != nil {
		errs = append(errs, err)
	}
	for _, p := range l.Ports {
		removeOwned(filepath.Join(n.dir, "ports", portKey(p)), pod)
	}
	if l.Addr.IsValid() {
		if owned(n.leasePath(l.Addr.Addr()), pod) {
			n.freed(l.Addr.Addr())
		}
		removeOwned(n.leasePath(l.Addr.Addr()), pod)
	}
	return errors.Join(errs...)
}

// Prune releases the leases and ports of pods that no longer exist (left
// by a crash; exists, the caller's, tells which do), then, via Close, the
// network itself if no pod uses it.
func (n *Network) Prune(exists func(pod string) bool) error {
	var errs []error
	for _, sub := range []string{"leases", "ports"} {
		ents, _ := os.ReadDir(filepath.Join(n.dir, sub))
		for _, e := range ents {
			path := filepath.Join(n.dir, sub, e.Name())
			owner, err := os.ReadFile(path)
			if err != nil {
				continue
			}
			pod := string(owner)
			if pod != "" && exists(pod) {
				continue
			}
			if err := n.unpublish(pod); err != nil {
				errs = append(errs, err)
			}
			deleteLink(vethName(n.root, pod))
			if a, err := netip.ParseAddr(e.Name()); err == nil && sub == "leases" {
				n.freed(a)
			}
			os.Remove(path)
		}
	}
	return errors.Join(errs...)
}

func createExcl(path, content string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func removeOwned(path, pod string) {
	if owned(path, pod) {
		os.Remove(path)
	}
}

// owned tells whether the lease or port file at path is pod's.
func owned(path, pod string) bool {
	b, err := os.ReadFile(path)
	return err == nil && string(b) == pod
}

// emptyDir tells whether the directory dir has no entry; it reads at most
// one.
func emptyDir(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	names, _ := f.Readdirnames(1)
	return len(names) == 0
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
