package network

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The table of a network: ip podsb_BRIDGE, with three NAT chains and the
// guard of the host's loopback addresses.
const (
	chainPre  = "prerouting"  // DNAT of traffic arriving for a local address
	chainOut  = "output"      // DNAT of traffic the host sends to a local address
	chainPost = "postrouting" // masquerade of NATed traffic into the bridge
	chainIn   = "input"       // the localnet guard
)

// ipsDstNAT is the conntrack status bit of a destination-NATed connection.
const ipsDstNAT = 1 << 5

func (n *Network) nftTable() *nftables.Table {
	return &nftables.Table{Name: n.table(), Family: nftables.TableFamilyIPv4}
}

// guardLocalnet makes sure the network's table drops what pods send to the
// host's 127.0.0.0/8, creating the table on first use:
//
//	iifname BRIDGE ip daddr 127.0.0.0/8 ip saddr != 127.0.0.0/8
//	ct state != established,related ct status != dnat counter drop
//
// The bridge has route_localnet on, so that the host's own connections to
// 127.0.0.1 can be NATed into it; with it alone, the kernel would also
// deliver a pod's hand-made packets for 127.0.0.1 to the host's services
// bound there (CVE-2020-8558). The rule is kube-proxy's: what remains is
// the replies of the host's NATed connections.
func (n *Network) guardLocalnet() error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	t := n.nftTable()
	rules, err := c.GetRules(t, &nftables.Chain{Name: chainIn, Table: t})
	switch {
	case err == nil && len(rules) > 0:
		return nil
	case err != nil && !errors.Is(err, unix.ENOENT):
		return fmt.Errorf("nftables: list %s: %w", chainIn, err)
	}
	t = c.AddTable(t)
	in := c.AddChain(&nftables.Chain{Name: chainIn, Table: t, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter})
	loopNet := []byte{127, 0, 0, 0}
	loopMask := []byte{255, 0, 0, 0}
	c.AddRule(&nftables.Rule{Table: t, Chain: in, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(n.cfg.Bridge)},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: loopMask, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: loopNet},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: loopMask, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: loopNet},
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: ne32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED), Xor: ne32(0)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ne32(0)},
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: ne32(ipsDstNAT), Xor: ne32(0)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ne32(0)},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: guard 127.0.0.0/8 from %s: %w", n.cfg.Bridge, err)
	}
	return nil
}

// publish adds the DNAT rules of the pod's ports, tagged with its name,
// creating the table on first use.
func (n *Network) publish(pod string, l *Lease) error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	t := c.AddTable(n.nftTable())
	nat := nftables.ChainTypeNAT
	pre := c.AddChain(&nftables.Chain{Name: chainPre, Table: t, Type: nat, Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest})
	out := c.AddChain(&nftables.Chain{Name: chainOut, Table: t, Type: nat, Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest})
	post := c.AddChain(&nftables.Chain{Name: chainPost, Table: t, Type: nat, Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
	if rules, err := c.GetRules(t, post); err != nil || len(rules) == 0 {
		// oifname BRIDGE ct status dnat masquerade: the pod must answer
		// through the host, whether the client was 127.0.0.1, the host
		// itself, or a pod of the bridge.
		c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(n.cfg.Bridge)},
			&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: le32(ipsDstNAT), Xor: le32(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: le32(0)},
			&expr.Masq{},
		}})
	}
	for _, p := range l.Ports {
		for _, ch := range []*nftables.Chain{pre, out} {
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, UserData: []byte(pod), Exprs: dnatExprs(p, l)})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: publish ports of %s: %w", pod, err)
	}
	return nil
}

// dnatExprs is: fib daddr type local [ip daddr HOSTIP] meta l4proto PROTO
// th dport HOSTPORT dnat to PODIP:PODPORT. Only traffic for a local address
// is redirected, never traffic that passes through.
func dnatExprs(p Port, l *Lease) []expr.Any {
	proto := byte(unix.IPPROTO_TCP)
	if p.Proto == "udp" {
		proto = unix.IPPROTO_UDP
	}
	e := []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ne32(unix.RTN_LOCAL)},
	}
	if p.HostIP.IsValid() {
		e = append(e,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.HostIP.AsSlice()},
		)
	}
	return append(e,
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: be16(p.HostPort)},
		&expr.Immediate{Register: 1, Data: l.Addr.Addr().AsSlice()},
		&expr.Immediate{Register: 2, Data: be16(p.PodPort)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	)
}

// unpublish deletes the rules tagged with pod's name.
func (n *Network) unpublish(pod string) error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	t := n.nftTable()
	found := false
	for _, name := range []string{chainPre, chainOut} {
		rules, err := c.GetRules(t, &nftables.Chain{Name: name, Table: t})
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // no table or chain: nothing published
			}
			return fmt.Errorf("nftables: list %s: %w", name, err)
		}
		for _, r := range rules {
			if string(r.UserData) == pod {
				if err := c.DelRule(r); err != nil {
					return err
				}
				found = true
			}
		}
	}
	if !found {
		return nil
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: unpublish ports of %s: %w", pod, err)
	}
	return nil
}

// deleteTable removes the network's NAT table, if there is one.
func (n *Network) deleteTable() error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return err
	}
	for _, t := range tables {
		if t.Name == n.table() {
			c.DelTable(t)
			if err := c.Flush(); err != nil {
				return fmt.Errorf("nftables: delete table %s: %w", t.Name, err)
			}
		}
	}
	return nil
}

func ifname(s string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, s)
	return b
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

// ne32 is v in the host's byte order, as nftables compares registers that
// hold native integers (here: amd64).
func ne32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
