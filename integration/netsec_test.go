package integration

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

// synProbe is run in a pod: on eth0, through an AF_PACKET socket, it sends
// hand-made TCP SYNs in Ethernet frames addressed to the bridge's MAC (argv
// 1) from the pod's address (argv 2): first to a probe address and port
// (argv 3, 4), then to a control address and port (argv 5, 6) that answers.
// It prints the sources of the SYN-ACKs it sees up to and including the
// control's. The host handles the two SYNs in the order they were sent, so
// an answer to the probe comes before the control's.
const synProbe = `import socket,struct,sys,time
bmac=bytes.fromhex(sys.argv[1].replace(":",""))
src=sys.argv[2]
probe,ctl=(sys.argv[3],int(sys.argv[4])),(sys.argv[5],int(sys.argv[6]))
s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW,socket.htons(0x0800))
s.bind(("eth0",0x0800))
mac=s.getsockname()[4]
def csum(b):
  if len(b)%2: b+=b"\0"
  t=sum(struct.unpack("!%dH"%(len(b)//2),b))
  while t>>16: t=(t&0xffff)+(t>>16)
  return ~t&0xffff
def syn(dst,dport,sport):
  sa,da=socket.inet_aton(src),socket.inet_aton(dst)
  tcp=struct.pack("!HHIIBBHHH",sport,dport,1,0,5<<4,0x02,64240,0,0)
  tcp=tcp[:16]+struct.pack("!H",csum(sa+da+struct.pack("!BBH",0,6,len(tcp))+tcp))+tcp[18:]
  ip=struct.pack("!BBHHHBBH4s4s",0x45,0,20+len(tcp),1,0,64,6,0,sa,da)
  ip=ip[:10]+struct.pack("!H",csum(ip))+ip[12:]
  return bmac+mac+b"\x08\x00"+ip+tcp
seen=[]
s.settimeout(0.2)
for _ in range(25):
  s.send(syn(probe[0],probe[1],40001)); s.send(syn(ctl[0],ctl[1],40002))
  end=time.time()+0.4
  while time.time()<end and ctl[0] not in seen:
    try: f,a=s.recvfrom(2048)
    except socket.timeout: continue
    if a[2]==socket.PACKET_OUTGOING or f[23]!=6: continue
    t=f[14+(f[14]&15)*4:]
    if t[13]&0x12==0x12 and struct.unpack("!H",t[2:4])[0] in (40001,40002):
      who=socket.inet_ntoa(f[26:30])
      if who not in seen: seen.append(who)
  if ctl[0] in seen: break
print(" ".join(seen))
`

// A pod cannot reach a host service bound to 127.0.0.1 with packets it makes
// itself (CVE-2020-8558): the bridge has route_localnet on, and podsb's
// table drops traffic from the bridge to 127.0.0.0/8 that is not a
// published port's. Published ports still work on the host's 127.0.0.1.
func TestPodCannotReachHostLoopback(t *testing.T) {
	e, nargs := netEnv(t)
	pubPort := 20000 + rand.IntN(20000)
	name, d := e.create(append(nargs, "-p", fmt.Sprintf("%d:80", pubPort))...)
	gw := d.Network.Gateway.String()

	// A host service on 127.0.0.1 only, and a control one on the
	// gateway address that a pod may reach.
	lo, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lo.Close()
	ctl, err := net.Listen("tcp4", net.JoinHostPort(gw, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	br, err := netlink.LinkByName(e.bridge)
	if err != nil {
		t.Fatal(err)
	}
	port := func(l net.Listener) string { return strconv.Itoa(l.Addr().(*net.TCPAddr).Port) }
	r := e.run("exec", name, "--", "python3", "-c", synProbe,
		br.Attrs().HardwareAddr.String(), e.podIP(name), "127.0.0.1", port(lo), gw, port(ctl))
	if r.code != 0 {
		t.Fatalf("probe: exit %d: %s", r.code, r.stderr)
	}
	seen := strings.Fields(r.stdout)
	if len(seen) == 0 || seen[len(seen)-1] != gw {
		t.Fatalf("the control service on %s did not answer the pod's SYN: %q", gw, r.stdout)
	}
	if len(seen) != 1 {
		t.Errorf("the host answered the pod's SYN to 127.0.0.1:%s (SYN-ACKs from %v)", port(lo), seen)
	}

	e.pyServer(name, "tcp", 80)
	if got := dial(t, "tcp", fmt.Sprintf("127.0.0.1:%d", pubPort)); got != "hello from "+name {
		t.Errorf("published port via 127.0.0.1:%d: %q", pubPort, got)
	}
}

// -p 0.0.0.0:H:C publishes H on every local address, as -p H:C does;
// broadcast and multicast host addresses are refused with nothing left:
// no pod, no address lease, no port reservation.
func TestPublishHostAddress(t *testing.T) {
	e, nargs := netEnv(t)
	port := 20000 + rand.IntN(20000)
	name, d := e.create(append(nargs, "-p", fmt.Sprintf("0.0.0.0:%d:80", port))...)
	if len(d.Network.Ports) != 1 || d.Network.Ports[0].HostIP.IsValid() {
		t.Errorf("ports %+v: want one, on any address", d.Network.Ports)
	}
	e.pyServer(name, "tcp", 80)
	for _, host := range []string{"127.0.0.1", d.Network.Gateway.String()} {
		if got := dial(t, "tcp", fmt.Sprintf("%s:%d", host, port)); got != "hello from "+name {
			t.Errorf("-p 0.0.0.0:%d:80 via %s: %q", port, host, got)
		}
	}
	for addr, want := range map[string]string{
		"255.255.255.255": "is a broadcast address",
		"224.0.0.1":       "is a multicast address",
	} {
		t.Run(addr, func(t *testing.T) {
			other := e.name()
			p := 20000 + rand.IntN(20000)
			r := e.run(append(append([]string{"create"}, nargs...), "-p", fmt.Sprintf("%s:%d:80", addr, p), other)...)
			wantFailure(t, r, want)
			if _, err := os.Stat(filepath.Join(e.root, other)); err == nil {
				t.Errorf("refused pod %s left its state", other)
			}
			for _, sub := range []string{"leases", "ports"} {
				if ents, _ := os.ReadDir(filepath.Join(e.root, ".network", sub)); len(ents) != 1 {
					t.Errorf("%s after the refusal: %d entries, want the first pod's one", sub, len(ents))
				}
			}
		})
	}
}
