package integration

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCRIPortMappings: a pod's port mappings on podsb's bridge. A mapping
// with a host port is published on the host (TCP and UDP, on any local
// address or one host IP); one with only a container port is not
// published, the container port being reachable at the pod's address, as
// critest's Networking specs expect. Stopping the pod gives the ports back.
// Bad mappings are refused, naming the field, with nothing left.
func TestCRIPortMappings(t *testing.T) {
	c := newCRIEnv(t)
	dir := t.TempDir()
	tcpPort, udpPort, ipPort := 20000+rand.IntN(10000), 30000+rand.IntN(10000), 40000+rand.IntN(10000)
	podJSON := func(name, mappings string) string {
		p := filepath.Join(dir, name+".json")
		os.WriteFile(p, []byte(fmt.Sprintf(`{"metadata": {"name": %q, "namespace": "default", "uid": %q}, "port_mappings": [%s], "linux": {}}`,
			name, name+"-uid", mappings)), 0o644)
		return p
	}
	ports := fmt.Sprintf(`{"container_port": 8080, "host_port": %d}, {"container_port": 9090}, {"protocol": 1, "container_port": 5353, "host_port": %d},
		{"container_port": 8081, "host_port": %d, "host_ip": "127.0.0.1"}`, tcpPort, udpPort, ipPort)
	id := strings.TrimSpace(c.crictlMust("runp", podJSON("web", ports)))
	c.use(id)
	ip := c.inspectp(id).Status.Network.IP
	c.pyServer(id, "tcp", 8080)
	c.pyServer(id, "tcp", 9090)
	c.pyServer(id, "tcp", 8081)
	c.pyServer(id, "udp", 5353)
	want := "hello from " + id
	for _, tc := range []struct{ proto, addr string }{
		{"tcp", fmt.Sprintf("127.0.0.1:%d", tcpPort)},
		{"udp", fmt.Sprintf("127.0.0.1:%d", udpPort)},
		{"tcp", fmt.Sprintf("127.0.0.1:%d", ipPort)},
		{"tcp", net.JoinHostPort(ip, "9090")}, // only a container port: the pod's address
		{"tcp", net.JoinHostPort(ip, "8080")},
	} {
		if got := dial(t, tc.proto, tc.addr); got != want {
			t.Errorf("%s %s: %q", tc.proto, tc.addr, got)
		}
	}
	// The mapping without a host port publishes nothing.
	out, err := exec.Command("nft", "list", "table", "ip", "podsb_"+c.bridge).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list table: %v: %s", err, out)
	}
	if s := string(out); strings.Contains(s, "9090") || !strings.Contains(s, fmt.Sprint(tcpPort)) || !strings.Contains(s, fmt.Sprint(udpPort)) {
		t.Errorf("NAT rules of the pod:\n%s", s)
	}

	// Stopped, the pod gives its ports back: another pod takes them.
	c.crictlMust("stopp", id)
	if got := dial(t, "tcp", fmt.Sprintf("127.0.0.1:%d", tcpPort)); got == want {
		t.Errorf("stopped pod still answers on %d", tcpPort)
	}
	id2 := strings.TrimSpace(c.crictlMust("runp", podJSON("web2", fmt.Sprintf(`{"container_port": 80, "host_port": %d}`, tcpPort))))
	c.use(id2)
	// A port held by a running pod is refused.
	r := c.crictlRun("runp", podJSON("web3", fmt.Sprintf(`{"container_port": 80, "host_port": %d}`, tcpPort)))
	if r.code == 0 || !strings.Contains(r.stderr, fmt.Sprint(tcpPort)) {
		t.Errorf("runp of a port taken: exit %d: %s", r.code, r.stderr)
	}
	c.crictlMust("rmp", "-f", id2)
	c.crictlMust("rmp", id)

	for _, tc := range []struct{ mapping, want string }{
		{`{"protocol": 2, "container_port": 80, "host_port": 8080}`, "Unimplemented desc = port mapping 8080: protocol SCTP is not supported"},
		{`{"container_port": 80, "host_port": 70000}`, "InvalidArgument desc = port mapping 70000:80: ports must be 1 to 65535"},
		{`{"container_port": 0, "host_port": 8080}`, "InvalidArgument desc = port mapping 8080:0: ports must be 1 to 65535"},
		{`{"container_port": 80, "host_port": 8080, "host_ip": "localhost"}`, "InvalidArgument desc = port mapping 8080: host IP"},
	} {
		r := c.crictlRun("runp", podJSON("bad", tc.mapping))
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("runp with %s: exit %d: %s, want %q", tc.mapping, r.code, r.stderr, tc.want)
		}
	}
	if out := c.crictlMust("pods", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("pods left: %q", out)
	}
}
