package network

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// vethName is the host end of pod's veth pair: a name unique to the state
// root and the pod, within the 15 bytes of an interface name.
func vethName(root, pod string) string {
	sum := sha256.Sum256([]byte(root + "\x00" + pod))
	return "pv" + hex.EncodeToString(sum[:])[:12]
}

// alias marks the bridge as this state root's.
func (n *Network) alias() string { return "podsb:" + n.root }

// checkSubnetFree refuses a subnet that overlaps an address of the host,
// other than one on our own bridge.
func checkSubnetFree(subnet netip.Prefix, bridge string) error {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list host addresses: %w", err)
	}
	for _, a := range addrs {
		p, ok := netip.AddrFromSlice(a.IP.To4())
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		hp := netip.PrefixFrom(p, ones).Masked()
		if hp.Overlaps(subnet) {
			if l, err := netlink.LinkByIndex(a.LinkIndex); err == nil && l.Attrs().Name == bridge {
				continue
			}
			return fmt.Errorf("subnet %s: %w: it overlaps %s on the host", subnet, ErrConflict, netip.PrefixFrom(p, ones))
		}
	}
	return nil
}

// tmpBridge is the name a state root's bridge is made under, unique to
// the root: the kernel ignores an alias given at creation
// (IFLA_IFALIAS in RTM_NEWLINK), so a bridge is recognisable as the root's
// by its alias only once a second message has set it. Until then, and until
// it has its address and guard, it carries this name, which marks a link left
// by a create killed on the way as this root's own, to delete.
func tmpBridge(root string) string {
	sum := sha256.Sum256([]byte(root))
	return "pb" + hex.EncodeToString(sum[:])[:12]
}

// deleteTmpBridge deletes the root's half-made bridge, if there is one.
func (n *Network) deleteTmpBridge() error {
	name := tmpBridge(n.root)
	if l, err := netlink.LinkByName(name); err == nil && l.Type() == "bridge" {
		if err := netlink.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("delete half-made bridge %s: %w", name, err)
		}
	}
	return nil
}

// ensureBridge creates the bridge with its gateway address, up, unless it
// exists; an existing link of that name must be this root's bridge.
//
// The bridge is made under its temporary name, given its alias, address,
// the localnet guard and route_localnet, then renamed and brought up: a
// create killed at any point leaves either the temporary link, or a bridge
// with this root's alias, both of which this root deletes or completes.
func (n *Network) ensureBridge() (netlink.Link, error) {
	name := n.cfg.Bridge
	if l, err := netlink.LinkByName(name); err == nil {
		if l.Type() != "bridge" || l.Attrs().Alias != n.alias() {
			return nil, fmt.Errorf("bridge %s: %w: a host link of that name is not this state root's bridge", name, ErrConflict)
		}
		// A bridge of an earlier podsb may lack the guard; one whose
		// create was killed after the rename is down.
		if err := n.guardLocalnet(); err != nil {
			return nil, err
		}
		if l.Attrs().Flags&net.FlagUp == 0 {
			if err := netlink.LinkSetUp(l); err != nil {
				return nil, fmt.Errorf("bridge %s up: %w", name, err)
			}
		}
		return l, nil
	}
	if err := n.deleteTmpBridge(); err != nil {
		return nil, err
	}
	tmp := tmpBridge(n.root)
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: tmp}}); err != nil {
		return nil, fmt.Errorf("create bridge %s: %w", tmp, err)
	}
	n.step("bridge: create")
	l, err := netlink.LinkByName(tmp)
	if err != nil {
		n.deleteTmpBridge()
		return nil, fmt.Errorf("create bridge %s: %w", tmp, err)
	}
	if err := n.setUpBridge(l); err != nil {
		netlink.LinkDel(l) // by index: under either name
		return nil, err
	}
	return l, nil
}

// setUpBridge makes l, the new bridge under its temporary name, this
// root's bridge: alias, address, guard, route_localnet, its name, up.
func (n *Network) setUpBridge(l netlink.Link) error {
	name := n.cfg.Bridge
	if err := netlink.LinkSetAlias(l, n.alias()); err != nil {
		return fmt.Errorf("bridge %s alias: %w", name, err)
	}
	n.step("bridge: alias")
	gw := &net.IPNet{IP: n.Gateway().AsSlice(), Mask: net.CIDRMask(n.cfg.Subnet.Bits(), 32)}
	if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: gw}); err != nil {
		return fmt.Errorf("bridge %s address %s: %w", name, gw, err)
	}
	n.step("bridge: address")
	// Before route_localnet: pods must never reach 127.0.0.0/8.
	if err := n.guardLocalnet(); err != nil {
		return err
	}
	n.step("bridge: localnet guard")
	// Connections from the host's 127.0.0.1 to a published port are routed
	// into the bridge after DNAT: the kernel allows a loopback source on a
	// link only with route_localnet. (The setting follows the rename.)
	if err := os.WriteFile("/proc/sys/net/ipv4/conf/"+l.Attrs().Name+"/route_localnet", []byte("1"), 0); err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	n.step("bridge: route_localnet")
	// A link is renamed only while down.
	if err := netlink.LinkSetName(l, name); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("bridge %s: %w", name, ErrConflict)
		}
		return fmt.Errorf("rename bridge %s to %s: %w", l.Attrs().Name, name, err)
	}
	l.Attrs().Name = name
	n.step("bridge: rename")
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("bridge %s up: %w", name, err)
	}
	n.step("bridge: up")
	return nil
}

// Attach connects the pod whose network namespace is netnsFD to the bridge
// as lease says: a veth pair with eth0 inside, its address, its default
// route, and the NAT rules of its published ports.
func (n *Network) Attach(l *Lease, pod string, netnsFD int) error {
	br, err := n.ensureBridge()
	if err != nil {
		return err
	}
	if _, err := netlink.LinkByName(l.Veth); err == nil {
		return fmt.Errorf("link %s: %w on the host", l.Veth, ErrConflict)
	}
	mtu := br.Attrs().MTU
	veth := &netlink.Veth{
		// One queue each way on both ends: the kernel's default is one
		// per possible CPU (queue structures allocated per pod, on a
		// large machine tens of KiB), of which a veth uses one.
		LinkAttrs: netlink.LinkAttrs{Name: l.Veth, MTU: mtu, MasterIndex: br.Attrs().Index, NumTxQueues: 1, NumRxQueues: 1},
		PeerName:  "eth0",
		// Created directly in the pod: no rename, no clash with a host
		// link called eth0.
		PeerNamespace: netlink.NsFd(netnsFD),
	}
	// One message makes the pair, on the bridge and in the pod: a kill
	// after it leaves a link named for the pod, which its rm deletes.
	if err := netlink.LinkAdd(veth); err != nil {
		if errors.Is(err, unix.EXFULL) {
			// BR_MAX_PORTS: port numbers are 10 bits, 0 unused.
			return fmt.Errorf("create veth %s: bridge %s is full: a Linux bridge has at most 1023 ports: %w", l.Veth, n.cfg.Bridge, err)
		}
		return fmt.Errorf("create veth %s: %w", l.Veth, err)
	}
	n.step("veth: create")
	host, err := netlink.LinkByName(l.Veth)
	if err == nil {
		if err = netlink.LinkSetUp(host); err == nil {
			n.step("veth: up")
		}
	}
	if err == nil {
		err = configurePod(l, netnsFD, n.step)
	}
	if err == nil && len(l.Ports) > 0 {
		if err = n.publish(pod, l); err == nil {
			n.step("publish")
		}
	}
	if err != nil {
		deleteLink(l.Veth)
		return err
	}
	return nil
}

// configurePod sets eth0's address and state and the default route,
// through a netlink socket opened in the pod's namespace. (eth0 has the
// bridge's MTU from its creation.) step is called after each change.
func configurePod(l *Lease, netnsFD int, step func(string)) error {
	h, err := netlink.NewHandleAt(netns.NsHandle(netnsFD))
	if err != nil {
		return fmt.Errorf("netlink in pod: %w", err)
	}
	defer h.Close()
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("pod eth0: %w", err)
	}
	addr := &net.IPNet{IP: l.Addr.Addr().AsSlice(), Mask: net.CIDRMask(l.Addr.Bits(), 32)}
	if err := h.AddrAdd(eth0, &netlink.Addr{IPNet: addr}); err != nil {
		return fmt.Errorf("pod address %s: %w", l.Addr, err)
	}
	step("pod: address")
	if err := h.LinkSetUp(eth0); err != nil {
		return fmt.Errorf("pod eth0 up: %w", err)
	}
	step("pod: eth0 up")
	route := &netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: l.Gateway.AsSlice()}
	if err := h.RouteAdd(route); err != nil {
		return fmt.Errorf("pod default route: %w", err)
	}
	step("pod: route")
	return nil
}

// deleteLink deletes a host link; a missing one is fine.
func deleteLink(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return err
	}
	if err := netlink.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

// remove deletes the bridge (and a half-made one under its temporary
// name), the nftables table and the network's directory. Called with the
// lock held when no pod holds an address. A bridge of that name that is not
// this root's, and its table, belong to someone else.
func (n *Network) remove() error {
	var errs []error
	if err := n.deleteTmpBridge(); err != nil {
		errs = append(errs, err)
	}
	ours := true
	if l, err := netlink.LinkByName(n.cfg.Bridge); err == nil {
		if ours = l.Attrs().Alias == n.alias(); ours {
			if err := netlink.LinkDel(l); err != nil {
				errs = append(errs, fmt.Errorf("delete bridge %s: %w", n.cfg.Bridge, err))
			}
		}
	}
	if ours {
		if err := n.deleteTable(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		errs = append(errs, os.RemoveAll(n.dir))
	}
	return errors.Join(errs...)
}
