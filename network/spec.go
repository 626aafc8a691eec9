package network

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/podsb/podsb/internal/errclass"
)

// Defaults of a network's first use.
const (
	DefaultBridge = "podsb0"
)

// DefaultSubnet is the subnet of a network unless its first use names one.
var DefaultSubnet = netip.MustParsePrefix("10.89.0.0/16")

// ErrInvalid marks bad input: a subnet, an address, a port.
var ErrInvalid = errors.New("invalid network argument")

func invalidf(format string, args ...any) error {
	return errclass.New(ErrInvalid, format, args...)
}

// ErrConflict means an address, a port or a link name is taken.
var ErrConflict = errors.New("already in use")

// ErrFull means the subnet has no free address left for another pod.
var ErrFull = errors.New("no free address")

// ParseSubnet parses an IPv4 subnet in CIDR form, such as 10.89.0.0/16. It
// must be the network's own address and leave room for a gateway and pods.
func ParseSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, invalidf("subnet %q: want an IPv4 subnet such as 10.89.0.0/16", s)
	}
	if p.Bits() < 8 || p.Bits() > 29 {
		return netip.Prefix{}, invalidf("subnet %q: prefix length must be 8 to 29", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, invalidf("subnet %q: host bits set; did you mean %s?", s, p.Masked())
	}
	return p, nil
}

// ValidateBridge checks a bridge name: a Linux interface name.
func ValidateBridge(name string) error {
	if name == "" || len(name) > 15 || strings.ContainsAny(name, "/: \t\n") || name == "." || name == ".." {
		return invalidf("bridge name %q: want 1 to 15 characters, no '/', ':' or spaces", name)
	}
	return nil
}

// Port is a published port: connections to HostIP:HostPort (any local
// address if HostIP is zero) reach the pod's PodPort.
type Port struct {
	HostIP   netip.Addr `json:"hostIP,omitzero"`
	HostPort uint16     `json:"hostPort"`
	PodPort  uint16     `json:"podPort"`
	Proto    string     `json:"proto"` // "tcp" or "udp"
}

func (p Port) String() string {
	s := ""
	if p.HostIP.IsValid() {
		s = p.HostIP.String() + ":"
	}
	return fmt.Sprintf("%s%d:%d/%s", s, p.HostPort, p.PodPort, p.Proto)
}

// ParsePort parses [HOSTIP:]HOSTPORT:PODPORT[/tcp|/udp]. A HOSTIP of
// 0.0.0.0 means every local address, as no HOSTIP does; a broadcast or
// multicast one is refused.
func ParsePort(s string) (Port, error) {
	spec, proto, hasProto := strings.Cut(s, "/")
	p := Port{Proto: "tcp"}
	if hasProto {
		if proto != "tcp" && proto != "udp" {
			return Port{}, invalidf("publish %q: protocol %q is not tcp or udp", s, proto)
		}
		p.Proto = proto
	}
	parts := strings.Split(spec, ":")
	switch len(parts) {
	case 2:
	case 3:
		a, err := netip.ParseAddr(parts[0])
		if err != nil || !a.Is4() {
			return Port{}, invalidf("publish %q: host address %q is not an IPv4 address", s, parts[0])
		}
		// The DNAT rule matches the destination address: one that no
		// packet for this host carries would publish nothing.
		switch {
		case a == netip.IPv4Unspecified():
			a = netip.Addr{} // every address, as Docker reads it
		case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
			return Port{}, invalidf("publish %q: host address %s is a broadcast address", s, a)
		case a.IsMulticast():
			return Port{}, invalidf("publish %q: host address %s is a multicast address", s, a)
		}
		p.HostIP = a
		parts = parts[1:]
	default:
		return Port{}, invalidf("publish %q: want [HOSTIP:]HOSTPORT:PODPORT[/tcp|/udp]", s)
	}
	var err error
	if p.HostPort, err = parsePortNumber(parts[0]); err != nil {
		return Port{}, invalidf("publish %q: host port: %v", s, err)
	}
	if p.PodPort, err = parsePortNumber(parts[1]); err != nil {
		return Port{}, invalidf("publish %q: pod port: %v", s, err)
	}
	return p, nil
}

func parsePortNumber(s string) (uint16, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%q is not a port (1 to 65535)", s)
	}
	return uint16(n), nil
}

// gateway returns the bridge's address in subnet: its first host address.
func gateway(subnet netip.Prefix) netip.Addr { return subnet.Addr().Next() }

// broadcast returns the last address of subnet.
func broadcast(subnet netip.Prefix) netip.Addr {
	a := subnet.Addr().As4()
	host := uint32(1)<<(32-subnet.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// checkPodAddr checks that a is a usable pod address in subnet.
func checkPodAddr(subnet netip.Prefix, a netip.Addr) error {
	switch {
	case !a.Is4():
		return invalidf("address %s: not IPv4", a)
	case !subnet.Contains(a):
		return invalidf("address %s: outside the network's subnet %s", a, subnet)
	case a == subnet.Addr() || a == broadcast(subnet):
		return invalidf("address %s: the subnet's network or broadcast address", a)
	case a == gateway(subnet):
		return invalidf("address %s: the bridge's gateway address", a)
	}
	return nil
}
