package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
)

// netEnv is an env whose pods join a bridge network of the test's own: a
// random bridge name and /24 subnet, so that tests never touch podsb0 or
// each other, and everything is checked gone at the end.
func netEnv(t *testing.T) (*env, []string) {
	e := newEnv(t)
	e.bridge = fmt.Sprintf("pt%06x", rand.IntN(1<<24))
	subnet := fmt.Sprintf("10.%d.%d.0/24", 200+rand.IntN(50), rand.IntN(256))
	return e, []string{"--network", "bridge", "--bridge", e.bridge, "--subnet", subnet}
}

// podIP returns a pod's address.
func (e *env) podIP(name string) string {
	e.t.Helper()
	d := e.inspect(name)
	if d.Network == nil {
		e.t.Fatalf("pod %s has no network", name)
	}
	return d.Network.Addr.Addr().String()
}

// pyServer starts, detached in the pod, a server that answers each TCP
// connection or UDP datagram on port with "hello from NAME".
func (e *env) pyServer(name, proto string, port int) {
	e.t.Helper()
	var code string
	if proto == "udp" {
		code = fmt.Sprintf(`import socket
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(("0.0.0.0",%d))
while True:
  d,a=s.recvfrom(100);s.sendto(b"hello from %s",a)`, port, name)
	} else {
		code = fmt.Sprintf(`import socket
s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(("0.0.0.0",%d));s.listen(64)
while True:
  c,a=s.accept();c.sendall(b"hello from %s");c.close()`, port, name)
	}
	e.must("exec", "-d", name, "--", "python3", "-c", code)
	// Ready once the socket is bound.
	deadline := time.Now().Add(5 * time.Second)
	hex := fmt.Sprintf(":%04X ", port)
	file := "/proc/net/tcp"
	if proto == "udp" {
		file = "/proc/net/udp"
	}
	for time.Now().Before(deadline) {
		if strings.Contains(e.inPod(name, "cat", file).stdout, hex) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("server on %s/%d in %s did not start", proto, port, name)
}

// dial talks to addr from the host: "hello from ..." is the answer.
func dial(t *testing.T, proto, addr string) string {
	t.Helper()
	c, err := net.DialTimeout(proto, addr, 2*time.Second)
	if err != nil {
		return err.Error()
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if proto == "udp" {
		c.Write([]byte("hi"))
		b := make([]byte, 100)
		n, err := c.Read(b)
		if err != nil {
			return err.Error()
		}
		return string(b[:n])
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// pyClient talks to addr from inside a pod.
func (e *env) pyClient(name, proto, host string, port int) string {
	e.t.Helper()
	code := fmt.Sprintf(`import socket
s=socket.socket(socket.AF_INET,socket.SOCK_%s);s.settimeout(2)
s.connect(("%s",%d))
if %s: s.send(b"hi")
print(s.recv(100).decode())`, map[string]string{"tcp": "STREAM", "udp": "DGRAM"}[proto], host, port, map[bool]string{true: "True", false: "False"}[proto == "udp"])
	r := e.run("exec", name, "--", "python3", "-c", code)
	return strings.TrimSpace(r.stdout + r.stderr)
}

func TestNetworkPodsAndHost(t *testing.T) {
	e, nargs := netEnv(t)
	a, _ := e.create(nargs...)
	b, _ := e.create(nargs...)
	ipA, ipB := e.podIP(a), e.podIP(b)
	if ipA == ipB {
		t.Fatalf("two pods share %s", ipA)
	}
	d := e.inspect(a)
	gw := d.Network.Gateway.String()
	// eth0 with the address, default route through the bridge, hosts entry.
	r := e.run("exec", a, "--", "sh", "-c", "ip -o -4 addr show eth0; ip route show default; cat /etc/hosts; cat /sys/class/net/eth0/mtu")
	if !strings.Contains(r.stdout, ipA+"/24") || !strings.Contains(r.stdout, "default via "+gw+" dev eth0") || !strings.Contains(r.stdout, ipA+"\t"+a) || !strings.Contains(r.stdout, "1500") {
		t.Errorf("pod network:\n%s%s", r.stdout, r.stderr)
	}
	e.pyServer(a, "tcp", 7000)
	e.pyServer(a, "udp", 7001)
	for _, tc := range []struct{ from, proto string }{{b, "tcp"}, {b, "udp"}} {
		port := map[string]int{"tcp": 7000, "udp": 7001}[tc.proto]
		if got := e.pyClient(tc.from, tc.proto, ipA, port); got != "hello from "+a {
			t.Errorf("%s from pod %s: %q", tc.proto, tc.from, got)
		}
	}
	for _, proto := range []string{"tcp", "udp"} {
		port := map[string]int{"tcp": 7000, "udp": 7001}[proto]
		if got := dial(t, proto, fmt.Sprintf("%s:%d", ipA, port)); got != "hello from "+a {
			t.Errorf("%s from the host: %q", proto, got)
		}
	}
	// ping: pod to pod, pod to host, host to pod.
	for _, c := range [][]string{
		{"exec", b, "--", "ping", "-c1", "-W2", ipA},
		{"exec", a, "--", "ping", "-c1", "-W2", gw},
	} {
		if r := e.run(c...); r.code != 0 {
			t.Errorf("%v: %s%s", c, r.stdout, r.stderr)
		}
	}
	if r := e.runCmd(cmdOf("ping", "-c1", "-W2", ipB)); r.code != 0 {
		t.Errorf("host ping %s: %s", ipB, r.stdout)
	}
	if ps := e.must("ps"); !strings.Contains(ps, ipA) || !strings.Contains(ps, ipB) {
		t.Errorf("ps lacks the addresses:\n%s", ps)
	}
}

func TestPublishedPorts(t *testing.T) {
	e, nargs := netEnv(t)
	tcpPort, udpPort := 20000+rand.IntN(20000), 20000+rand.IntN(20000)
	name, d := e.create(append(nargs, "-p", fmt.Sprintf("%d:80", tcpPort), "-p", fmt.Sprintf("%d:53/udp", udpPort))...)
	if len(d.Network.Ports) != 2 {
		t.Fatalf("inspect ports: %+v", d.Network)
	}
	e.pyServer(name, "tcp", 80)
	e.pyServer(name, "udp", 53)
	gw := d.Network.Gateway.String()
	for _, host := range []string{"127.0.0.1", gw} {
		if got := dial(t, "tcp", fmt.Sprintf("%s:%d", host, tcpPort)); got != "hello from "+name {
			t.Errorf("tcp via %s:%d: %q", host, tcpPort, got)
		}
		if got := dial(t, "udp", fmt.Sprintf("%s:%d", host, udpPort)); got != "hello from "+name {
			t.Errorf("udp via %s:%d: %q", host, udpPort, got)
		}
	}
	// The port is taken: by this pod for another, and refused cleanly.
	other := e.name()
	r := e.run(append([]string{"create"}, append(nargs, "-p", fmt.Sprintf("%d:80", tcpPort), other)...)...)
	wantFailure(t, r, "already in use by pod "+name)
	if _, err := os.Stat(filepath.Join(e.root, other)); err == nil {
		t.Errorf("refused pod %s left its state", other)
	}
	e.must("rm", name)
	// After rm the port is free again and nothing answers.
	if got := dial(t, "tcp", fmt.Sprintf("127.0.0.1:%d", tcpPort)); strings.Contains(got, "hello") {
		t.Errorf("published port still forwarded after rm: %q", got)
	}
}

func TestNetworkConcurrentCreates(t *testing.T) {
	e, nargs := netEnv(t)
	const n = 20
	names := make([]string, n)
	var wg sync.WaitGroup
	for i := range names {
		names[i] = e.name()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := e.run(append(append([]string{"create"}, nargs...), names[i])...); r.code != 0 {
				t.Errorf("create: %+v", r)
			}
		}()
	}
	wg.Wait()
	seen := map[string]string{}
	for _, name := range names {
		ip := e.podIP(name)
		if other, ok := seen[ip]; ok {
			t.Errorf("%s and %s share %s", name, other, ip)
		}
		seen[ip] = name
	}
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := e.run("rm", name); r.code != 0 {
				t.Errorf("rm: %+v", r)
			}
		}()
	}
	wg.Wait()
}

func TestNetworkBadInput(t *testing.T) {
	e, nargs := netEnv(t)
	subnet := nargs[len(nargs)-1]
	first, _ := e.create(nargs...)
	taken := e.podIP(first)
	busy, err := net.Listen("tcp4", "0.0.0.0:0") // a host service's port
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	// A host link of the test's own, not made by podsb.
	dummy := fmt.Sprintf("td%06x", rand.IntN(1<<24))
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: dummy}}); err != nil {
		t.Fatal(err)
	}
	defer netlink.LinkDel(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: dummy}})
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"malformed subnet", []string{"--subnet", "10.1.2.3/33"}, "want an IPv4 subnet"},
		{"subnet host bits", []string{"--subnet", "10.1.2.3/24"}, "host bits set"},
		{"other subnet", []string{"--bridge", e.bridge, "--subnet", "10.199.0.0/24"}, "remove its pods to change it"},
		{"malformed address", []string{"--ip", "10.1.2"}, "not an IPv4 address"},
		{"address outside", []string{"--ip", "192.0.2.99"}, "outside the network's subnet"},
		{"gateway address", []string{"--ip", strings.TrimSuffix(subnet, "0/24") + "1"}, "gateway"},
		{"address taken", []string{"--ip", taken}, "already in use"},
		{"port out of range", []string{"-p", "70000:80"}, "is not a port"},
		{"malformed publish", []string{"-p", "80"}, "want [HOSTIP:]HOSTPORT:PODPORT"},
		{"bad protocol", []string{"-p", "8080:80/sctp"}, "not tcp or udp"},
		{"port in use on host", []string{"-p", fmt.Sprintf("%d:80", busyPort)}, "in use on the host"},
		{"published twice", []string{"-p", "30001:80", "-p", "30001:81"}, "published twice"},
		{"network none with port", []string{"--network", "none", "-p", "30002:80"}, "need --network bridge"},
		{"bad network", []string{"--network", "nat"}, "want bridge, none or host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"create"}, nargs...)
			if strings.HasPrefix(tc.name, "other subnet") || tc.name == "network none with port" || tc.name == "bad network" {
				args = []string{"create"}
			}
			name := e.name()
			r := e.run(append(append(args, tc.args...), name)...)
			wantFailure(t, r, tc.want)
			if _, err := os.Stat(filepath.Join(e.root, name)); err == nil {
				t.Errorf("left state of %s", name)
			}
			leases, _ := os.ReadDir(filepath.Join(e.root, ".network", "leases"))
			if len(leases) != 1 {
				t.Errorf("leases: %v", leases)
			}
		})
	}
	// A bridge name that is a host link of someone else's.
	other := newEnv(t)
	r := other.run("create", "--bridge", dummy, "--subnet", "10.198.77.0/24", other.name())
	wantFailure(t, r, "not this state root's bridge")
	if l, err := netlink.LinkByName(dummy); err != nil || l.Attrs().Alias != "" {
		t.Errorf("the clashing link was changed: %v %v", l, err)
	}
}

// checkNoNetworkLeaks fails t if the test's bridge (or its root's half-made
// one), a veth of its pods, its nftables table or the network state is
// left.
func checkNoNetworkLeaks(t testing.TB, root, bridge string, names map[string]bool) {
	t.Helper()
	if bridge != "" {
		if _, err := netlink.LinkByName(bridge); err == nil {
			t.Errorf("leaked bridge %s", bridge)
		}
		if c, err := nftables.New(); err == nil {
			tables, _ := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
			for _, tb := range tables {
				if tb.Name == "podsb_"+bridge {
					t.Errorf("leaked nftables table %s", tb.Name)
				}
			}
		}
	}
	// A bridge half made, under the root's temporary name.
	rootSum := sha256.Sum256([]byte(root))
	tmp := "pb" + hex.EncodeToString(rootSum[:])[:12]
	if _, err := netlink.LinkByName(tmp); err == nil {
		t.Errorf("leaked half-made bridge %s", tmp)
	}
	for n := range names {
		sum := sha256.Sum256([]byte(root + "\x00" + n))
		veth := "pv" + hex.EncodeToString(sum[:])[:12]
		if _, err := netlink.LinkByName(veth); err == nil {
			t.Errorf("leaked veth %s of pod %s", veth, n)
		}
	}
	if _, err := os.Stat(filepath.Join(root, ".network")); err == nil {
		t.Errorf("leaked network state %s/.network", root)
	}
}
