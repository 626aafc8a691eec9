package network

import (
	"errors"
	"net/netip"
	"testing"
)

func TestParsePort(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Port
		err  bool
	}{
		{"8080:80", Port{HostPort: 8080, PodPort: 80, Proto: "tcp"}, false},
		{"8080:80/udp", Port{HostPort: 8080, PodPort: 80, Proto: "udp"}, false},
		{"127.0.0.1:8080:80/tcp", Port{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 8080, PodPort: 80, Proto: "tcp"}, false},
		{"0.0.0.0:8080:80", Port{HostPort: 8080, PodPort: 80, Proto: "tcp"}, false}, // any address, as without one
		{"255.255.255.255:8080:80", Port{}, true},
		{"224.0.0.1:8080:80", Port{}, true},
		{"239.255.255.250:1900:1900/udp", Port{}, true},
		{"80", Port{}, true},
		{"0:80", Port{}, true},
		{"65536:80", Port{}, true},
		{"8080:x", Port{}, true},
		{"8080:80/sctp", Port{}, true},
		{"::1:8080:80", Port{}, true},
		{"host:8080:80", Port{}, true},
		{"1:2:3:4", Port{}, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParsePort(tc.in)
			if tc.err {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("err %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v %v", got, err)
			}
			if back, _ := ParsePort(got.String()); back != got {
				t.Errorf("String round trip: %q", got.String())
			}
		})
	}
}

func TestParseSubnet(t *testing.T) {
	for in, ok := range map[string]bool{
		"10.89.0.0/16": true, "192.168.7.0/24": true, "10.0.0.0/8": true,
		"10.89.0.1/16": false, "10.89.0.0": false, "fd00::/64": false, "10.0.0.0/30": false, "10.0.0.0/4": false, "x": false,
	} {
		if _, err := ParseSubnet(in); (err == nil) != ok {
			t.Errorf("%s: %v", in, err)
		}
	}
	s := netip.MustParsePrefix("10.89.0.0/16")
	if gateway(s).String() != "10.89.0.1" || broadcast(s).String() != "10.89.255.255" {
		t.Errorf("gateway %s broadcast %s", gateway(s), broadcast(s))
	}
	for a, ok := range map[string]bool{"10.89.0.2": true, "10.89.0.1": false, "10.89.0.0": false, "10.89.255.255": false, "10.90.0.2": false} {
		if err := checkPodAddr(s, netip.MustParseAddr(a)); (err == nil) != ok {
			t.Errorf("%s: %v", a, err)
		}
	}
}
