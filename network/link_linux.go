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

// ensureBridge creates the bridge with its gateway address, up, unless it
// exists; an existing link of that name must be this root's bridge.
func (n *Network) ensureBridge() (netlink.Link, error) {
	name := n.cfg.Bridge
	if l, err := netlink.LinkByName(name); err == nil {
		if l.Type() != "bridge" || l.Attrs().Alias != n.alias() {
			return nil, fmt.Errorf("bridge %s: %w: a host link of that name is not this state root's bridge", name, ErrConflict)
		}
		return l, nil
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
	if err := netlink.LinkAdd(br); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("bridge %s: %w", name, ErrConflict)
		}
		return nil, fmt.Errorf("create bridge %s: %w", name, err)
	}
	l, err := netlink.LinkByName(name)
	if err == nil {
		err = netlink.LinkSetAlias(l, n.alias())
	}
	if err == nil {
		gw := &net.IPNet{IP: n.Gateway().AsSlice(), Mask: net.CIDRMask(n.cfg.Subnet.Bits(), 32)}
		err = netlink.AddrAdd(l, &netlink.Addr{IPNet: gw})
	}
	if err == nil {
		// Connections from the host's 127.0.0.1 to a published port are
		// routed into the bridge after DNAT: the kernel allows a loopback
		// source on a link only with route_localnet.
		err = os.WriteFile("/proc/sys/net/ipv4/conf/"+name+"/route_localnet", []byte("1"), 0)
	}
	if err == nil {
		err = netlink.LinkSetUp(l)
	}
	if err != nil {
		netlink.LinkDel(br)
		return nil, fmt.Errorf("set up bridge %s: %w", name, err)
	}
	return l, nil
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
		LinkAttrs: netlink.LinkAttrs{Name: l.Veth, MTU: mtu, MasterIndex: br.Attrs().Index},
		PeerName:  "eth0",
		// Created directly in the pod: no rename, no clash with a host
		// link called eth0.
		PeerNamespace: netlink.NsFd(netnsFD),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("create veth %s: %w", l.Veth, err)
	}
	host, err := netlink.LinkByName(l.Veth)
	if err == nil {
		err = netlink.LinkSetUp(host)
	}
	if err == nil {
		err = configurePod(l, netnsFD)
	}
	if err == nil && len(l.Ports) > 0 {
		err = n.publish(pod, l)
	}
	if err != nil {
		deleteLink(l.Veth)
		return err
	}
	return nil
}

// configurePod sets eth0's address and state and the default route,
// through a netlink socket opened in the pod's namespace. (eth0 has the
// bridge's MTU from its creation.)
func configurePod(l *Lease, netnsFD int) error {
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
	if err := h.LinkSetUp(eth0); err != nil {
		return fmt.Errorf("pod eth0 up: %w", err)
	}
	route := &netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: l.Gateway.AsSlice()}
	if err := h.RouteAdd(route); err != nil {
		return fmt.Errorf("pod default route: %w", err)
	}
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

// remove deletes the bridge, the NAT table and the network's directory.
// Called with the lock held when no pod holds an address. A bridge of that
// name that is not this root's, and its table, belong to someone else.
func (n *Network) remove() error {
	var errs []error
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
