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

// cniNet is a CNI network of a test's own: a conf directory with one
// conflist (the bridge plugin on a bridge of the test's name and subnet,
// host-local addresses kept in the test's directory, and plugins after
// it), and what the host's firewall held of it before.
type cniNet struct {
	t                        *testing.T
	name, bridge, subnet, gw string
	confDir, binDir, ipamDir string
	hostportChains           bool // CNI-HOSTPORT-* existed before the test
	// natTables are the iptables nat tables (ip nat, ip6 nat) that did
	// not exist before the test: iptables-nft makes them for portmap.
	natTables []string
}

// newCNINet writes the conflist, with more plugins (JSON objects) after
// the bridge, and registers the cleanup that removes the bridge, and the
// portmap plugin's top chains if the test made them, and checks that the
// host's iptables and nftables hold nothing of the network.
func newCNINet(t *testing.T, more ...string) *cniNet {
	t.Helper()
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		t.Fatalf("Debian's containernetworking-plugins (make deps): %v", err)
	}
	dir := t.TempDir()
	n := &cniNet{t: t, name: fmt.Sprintf("podsbtest-%06x", rand.IntN(1<<24)), bridge: fmt.Sprintf("pc%06x", rand.IntN(1<<24)),
		confDir: filepath.Join(dir, "net.d"), binDir: filepath.Join(dir, "bin"), ipamDir: filepath.Join(dir, "ipam")}
	a, b := 200+rand.IntN(50), rand.IntN(256)
	n.subnet, n.gw = fmt.Sprintf("10.%d.%d.0/24", a, b), fmt.Sprintf("10.%d.%d.1", a, b)
	for _, d := range []string{n.confDir, n.binDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	plugins := append([]string{fmt.Sprintf(`{"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false,
		"ipam": {"type": "host-local", "subnet": %q, "dataDir": %q, "routes": [{"dst": "0.0.0.0/0"}]}}`, n.bridge, n.subnet, n.ipamDir)}, more...)
	conf := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": %q, "plugins": [%s]}`, n.name, strings.Join(plugins, ",\n"))
	if err := os.WriteFile(filepath.Join(n.confDir, "10-test.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	n.hostportChains = strings.Contains(iptablesSave(t), "CNI-HOSTPORT")
	tables := nftTables(t)
	for _, tb := range []string{"ip nat", "ip6 nat"} {
		if !tables[tb] {
			n.natTables = append(n.natTables, tb)
		}
	}
	if leaked := n.firewallLines(); len(leaked) > 0 {
		t.Fatalf("the host's firewall names %s before the test: %q", n.name, leaked)
	}
	t.Cleanup(n.cleanup)
	return n
}

// args are podsb cri's flags for the network: the test's bin directory
// (its own plugins) before Debian's.
func (n *cniNet) args() []string {
	return []string{"--cni-conf-dir", n.confDir, "--cni-bin-dir", n.binDir + ",/usr/lib/cni"}
}

func iptablesSave(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("iptables-save").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables-save: %v: %s", err, out)
	}
	return string(out)
}

// firewallLines are the lines of iptables-save and nft list ruleset that
// name the network or its bridge.
func (n *cniNet) firewallLines() []string {
	var lines []string
	nft, err := exec.Command("nft", "list", "ruleset").CombinedOutput()
	if err != nil {
		n.t.Fatalf("nft list ruleset: %v: %s", err, nft)
	}
	for _, l := range strings.Split(iptablesSave(n.t)+string(nft), "\n") {
		if strings.Contains(l, n.name) || strings.Contains(l, n.bridge) {
			lines = append(lines, l)
		}
	}
	return lines
}

// cleanup runs after the server's and the pods' (registered before them):
// the bridge plugin leaves its bridge, and portmap its top chains.
func (n *cniNet) cleanup() {
	t := n.t
	if err := exec.Command("ip", "link", "show", n.bridge).Run(); err == nil {
		if out, err := exec.Command("ip", "link", "del", n.bridge).CombinedOutput(); err != nil {
			t.Errorf("ip link del %s: %v: %s", n.bridge, err, out)
		}
	}
	if !n.hostportChains {
		removeHostportChains(t)
		if save := iptablesSave(t); strings.Contains(save, "CNI-HOSTPORT") {
			t.Errorf("portmap's chains left, which the test made:\n%s", save)
		}
	}
	for _, tb := range n.natTables {
		removeEmptyTable(t, tb)
	}
	for _, l := range n.firewallLines() {
		t.Errorf("left in the host's firewall: %s", l)
	}
	if ents, _ := os.ReadDir(filepath.Join(n.ipamDir, n.name)); len(ents) > 0 {
		for _, e := range ents {
			if e.Name() != "lock" && !strings.HasPrefix(e.Name(), "last_reserved_ip") {
				t.Errorf("host-local lease left: %s", e.Name())
			}
		}
	}
}

// removeHostportChains removes the portmap plugin's top chains in the nat
// table (CNI-HOSTPORT-*, which hold only portmap's fixed rules when no
// port is mapped) and the jumps to them, which its DEL leaves, unless a
// port of another network is still mapped (CNI-HOSTPORT-DNAT not empty).
func removeHostportChains(t *testing.T) {
	chains := []string{"CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ"}
	save := iptablesSave(t)
	if strings.Contains(save, "-A CNI-HOSTPORT-DNAT ") {
		t.Logf("CNI-HOSTPORT-DNAT is in use: left")
		return
	}
	for _, l := range strings.Split(save, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || f[0] != "-A" || strings.HasPrefix(f[1], "CNI-HOSTPORT-") {
			continue
		}
		for _, c := range chains {
			if strings.HasSuffix(l, "-j "+c) {
				args := append([]string{"-t", "nat", "-D"}, unquote(f[1:])...)
				if out, err := exec.Command("iptables", args...).CombinedOutput(); err != nil {
					t.Errorf("iptables %v: %v: %s", args, err, out)
				}
			}
		}
	}
	for _, c := range chains {
		if !strings.Contains(save, ":"+c+" ") {
			continue
		}
		for _, op := range []string{"-F", "-X"} {
			if out, err := exec.Command("iptables", "-t", "nat", op, c).CombinedOutput(); err != nil {
				t.Errorf("iptables -t nat %s %s: %v: %s", op, c, err, out)
			}
		}
	}
}

// nftTables are the host's nftables tables, as "FAMILY NAME".
func nftTables(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command("nft", "list", "tables").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list tables: %v: %s", err, out)
	}
	tables := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "table" {
			tables[f[1]+" "+f[2]] = true
		}
	}
	return tables
}

// removeEmptyTable deletes the nftables table tb ("ip nat") if it exists
// and its chains hold no rule: iptables-nft leaves its tables after their
// last rule is gone.
func removeEmptyTable(t *testing.T, tb string) {
	out, err := exec.Command("nft", append([]string{"list", "table"}, strings.Fields(tb)...)...).CombinedOutput()
	if err != nil {
		return // not there
	}
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l == "}" || strings.HasPrefix(l, "table ") || strings.HasPrefix(l, "chain ") || strings.HasPrefix(l, "type ") {
			continue
		}
		t.Logf("table %s holds rules: left", tb)
		return
	}
	if out, err := exec.Command("nft", append([]string{"delete", "table"}, strings.Fields(tb)...)...).CombinedOutput(); err != nil {
		t.Errorf("nft delete table %s: %v: %s", tb, err, out)
	}
}

// unquote drops the quotes iptables-save puts around comments: the words
// go to iptables as arguments, not through a shell.
func unquote(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, `"`) {
			w := a
			for !strings.HasSuffix(w, `"`) || len(w) == 1 {
				i++
				w += " " + args[i]
			}
			a = strings.Trim(w, `"`)
		}
		out = append(out, a)
	}
	return out
}

// TestCNIPod runs pods on a CNI network: the pod's address is the bridge
// plugin's (host-local's), on its eth0 in the pinned network namespace;
// its published port is the portmap plugin's; StopPodSandbox runs DEL (the
// lease and the port's rules go) and nothing of the network is left in the
// host's firewall.
func TestCNIPod(t *testing.T) {
	n := newCNINet(t, `{"type": "portmap", "capabilities": {"portMappings": true}}`)
	c := newCRIEnvArgs(t, n.args()...)
	hostPort := 20000 + rand.IntN(20000)
	dir := t.TempDir()
	podJSON := filepath.Join(dir, "pod.json")
	os.WriteFile(podJSON, []byte(fmt.Sprintf(`{"metadata": {"name": "web", "namespace": "default", "uid": "cni-1"},
		"port_mappings": [{"container_port": 8080, "host_port": %d}, {"container_port": 9090}], "linux": {}}`, hostPort)), 0o644)
	id := strings.TrimSpace(c.crictlMust("runp", podJSON))
	c.use(id)
	st := c.inspectp(id)
	if st.Status.Network == nil {
		t.Fatalf("inspectp: no network: %+v", st)
	}
	ip := st.Status.Network.IP
	_, sn, _ := net.ParseCIDR(n.subnet)
	if a := net.ParseIP(ip); a == nil || !sn.Contains(a) || ip == n.gw {
		t.Fatalf("pod IP %q, want one of %s", ip, n.subnet)
	}
	if r := c.inPod(id, "ip", "-4", "-o", "addr", "show", "eth0"); !strings.Contains(r.stdout, ip+"/24") {
		t.Errorf("pod's eth0: %q %s", r.stdout, r.stderr)
	}
	if ents, _ := os.ReadDir(filepath.Join(n.ipamDir, n.name)); !hasEntry(ents, ip) {
		t.Errorf("host-local holds no lease for %s", ip)
	}
	c.pyServer(id, "tcp", 8080)
	if got := dial(t, "tcp", net.JoinHostPort(ip, "8080")); got != "hello from "+id {
		t.Errorf("pod's address: %q", got)
	}
	if got := dial(t, "tcp", fmt.Sprintf("127.0.0.1:%d", hostPort)); got != "hello from "+id {
		t.Errorf("published port %d: %q", hostPort, got)
	}
	if lines := n.firewallLines(); len(lines) == 0 {
		t.Errorf("portmap made no rule naming %s", n.name)
	}

	c.crictlMust("stopp", id)
	if st := c.inspectp(id); st.Status.Network != nil && st.Status.Network.IP != "" {
		t.Errorf("stopped pod has an address: %+v", st.Status.Network)
	}
	if ents, _ := os.ReadDir(filepath.Join(n.ipamDir, n.name)); hasEntry(ents, ip) {
		t.Errorf("host-local lease of %s left after stopp", ip)
	}
	if lines := n.firewallLines(); len(lines) > 0 {
		t.Errorf("rules left after stopp: %q", lines)
	}
	c.crictlMust("rmp", id)

	// A second pod after a restart of the server: the network is
	// loaded again.
	c.stopServer()
	c.startServer()
	id2 := strings.TrimSpace(c.crictlMust("runp", podJSON))
	c.use(id2)
	if st := c.inspectp(id2); st.Status.Network == nil || !sn.Contains(net.ParseIP(st.Status.Network.IP)) {
		t.Fatalf("second pod: %+v", st)
	}
	// A server started without CNI since still deletes it: rmp of the
	// running pod runs DEL with the plugins it was added with.
	c.stopServer()
	c.args = nil
	c.startServer()
	c.crictlMust("rmp", "-f", id2)
	if lines := n.firewallLines(); len(lines) > 0 {
		t.Errorf("rules left after rmp: %q", lines)
	}
	if ents, _ := os.ReadDir(filepath.Join(n.ipamDir, n.name)); len(ents) > 0 {
		for _, e := range ents {
			if net.ParseIP(e.Name()) != nil {
				t.Errorf("lease left after rmp: %s", e.Name())
			}
		}
	}
}

func hasEntry(ents []os.DirEntry, name string) bool {
	for _, e := range ents {
		if e.Name() == name {
			return true
		}
	}
	return false
}

// TestCNIBadConfig: podsb cri refuses to start, with one line and exit
// 125, on a CNI conf directory that is missing, empty or holds no valid
// configuration, and on a plugin directory without a conf directory; it
// leaves no state directory behind.
func TestCNIBadConfig(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	bad := filepath.Join(dir, "bad")
	for _, d := range []string{empty, bad} {
		os.Mkdir(d, 0o755)
	}
	os.WriteFile(filepath.Join(bad, "10-x.conflist"), []byte(`{"cniVersion": "1.0.0", "name": "x", "plugins": []}`), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing conf dir", []string{"--cni-conf-dir", filepath.Join(dir, "nonexistent")}, "cni config: conf directory: stat " + filepath.Join(dir, "nonexistent") + ": no such file or directory"},
		{"empty conf dir", []string{"--cni-conf-dir", empty}, "holds no network configuration (*.conflist, *.conf, *.json)"},
		{"no valid conflist", []string{"--cni-conf-dir", bad}, "holds no valid network configuration: 10-x.conflist: error parsing configuration list: no plugins in list"},
		{"missing bin dir", []string{"--cni-conf-dir", bad, "--cni-bin-dir", filepath.Join(dir, "nobin")}, "plugin directory: stat " + filepath.Join(dir, "nobin")},
		{"bin dir alone", []string{"--cni-bin-dir", "/usr/lib/cni"}, "a plugin directory without a conf directory (--cni-conf-dir)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "state")
			args := append([]string{"cri", "--listen", "unix://" + filepath.Join(dir, "cri.sock"), "--root", e.root,
				"--image-root", filepath.Join(dir, "images"), "--state", state}, tc.args...)
			r := e.runCmd(exec.Command(e.bin, args...))
			if r.code != 125 || !strings.Contains(r.stderr, tc.want) || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("podsb cri %v: exit %d: %q, want 125 and %q", tc.args, r.code, r.stderr, tc.want)
			}
			if _, err := os.Stat(state); err == nil {
				t.Errorf("state directory %s made", state)
			}
		})
	}
}

// failPlugin is a CNI plugin that fails ADD with a message of its own and
// succeeds at everything else.
const failPlugin = `#!/bin/sh
case "$CNI_COMMAND" in
ADD) echo '{"cniVersion": "1.0.0", "code": 999, "msg": "podsbfail: refused by the test"}'; exit 1 ;;
VERSION) echo '{"cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0"]}' ;;
esac
exit 0
`

// TestCNIAddFails: a plugin that fails ADD fails RunPodSandbox with its
// message, and leaves no pod, record, network namespace pin, veth or
// address lease (the env's and the network's cleanups check the rest); a
// port mapping on a network without the portmap plugin is refused, naming
// the field; a conf directory emptied while the server runs makes the
// network not ready, and RunPodSandbox fails with a clear error.
func TestCNIAddFails(t *testing.T) {
	n := newCNINet(t, `{"type": "podsbfail"}`)
	if err := os.WriteFile(filepath.Join(n.binDir, "podsbfail"), []byte(failPlugin), 0o755); err != nil {
		t.Fatal(err)
	}
	c := newCRIEnvArgs(t, n.args()...)
	dir := t.TempDir()
	pod := func(extra string) string {
		p := filepath.Join(dir, "pod.json")
		os.WriteFile(p, []byte(`{"metadata": {"name": "p", "namespace": "default", "uid": "cni-2"}, `+extra+`"linux": {}}`), 0o644)
		return p
	}
	noneLeft := func(what string) {
		t.Helper()
		if out := c.crictlMust("pods", "-q"); strings.TrimSpace(out) != "" {
			t.Errorf("%s: pods left: %q", what, out)
		}
		if ents := stateEntries(c.root); len(ents) > 0 {
			// The network's kept state (.network) is podsb's bridge's,
			// unused with CNI; a pod directory or work entry is a leak.
			for _, e := range ents {
				if e != ".work" && e != ".lock" {
					t.Errorf("%s: left in the state root: %s", what, e)
				}
			}
		}
		for _, m := range mountsUnder(t, c.root) {
			t.Errorf("%s: mount left: %s", what, m)
		}
		if out, _ := exec.Command("ip", "-o", "link", "show", "master", n.bridge).CombinedOutput(); strings.Contains(string(out), "veth") {
			t.Errorf("%s: veth left on %s: %s", what, n.bridge, out)
		}
		if ents, _ := os.ReadDir(filepath.Join(n.ipamDir, n.name)); len(ents) > 0 {
			for _, e := range ents {
				if net.ParseIP(e.Name()) != nil {
					t.Errorf("%s: lease left: %s", what, e.Name())
				}
			}
		}
		recs, _ := os.ReadDir(filepath.Join(c.state, "pods"))
		for _, r := range recs {
			t.Errorf("%s: record left: %s", what, r.Name())
		}
	}

	r := c.crictlRun("runp", pod(""))
	if r.code == 0 || !strings.Contains(r.stderr, "podsbfail: refused by the test") || !strings.Contains(r.stderr, "cni network "+n.name+": add") {
		t.Errorf("runp with a failing plugin: exit %d: %s", r.code, r.stderr)
	}
	noneLeft("failed ADD")

	// A network without portmap cannot publish a port.
	os.WriteFile(filepath.Join(n.binDir, "podsbfail"), []byte("#!/bin/sh\necho '{\"cniVersion\": \"1.0.0\"}'\n"), 0o755)
	r = c.crictlRun("runp", pod(`"port_mappings": [{"container_port": 80, "host_port": 18080}], `))
	if r.code == 0 || !strings.Contains(r.stderr, "InvalidArgument desc = port mappings: the CNI network "+n.name) {
		t.Errorf("runp with a port on a network without portmap: exit %d: %s", r.code, r.stderr)
	}
	noneLeft("port mapping refused")

	// The conf directory emptied: not ready, and no pod.
	os.Rename(filepath.Join(n.confDir, "10-test.conflist"), filepath.Join(dir, "10-test.conflist"))
	if out := c.crictlMust("info"); !strings.Contains(out, `"NetworkPluginNotReady"`) {
		t.Errorf("crictl info with no network configuration:\n%s", out)
	}
	r = c.crictlRun("runp", pod(""))
	if r.code == 0 || !strings.Contains(r.stderr, "FailedPrecondition desc = pod network: cni config: "+n.confDir+" holds no network configuration") {
		t.Errorf("runp with no network configuration: exit %d: %s", r.code, r.stderr)
	}
	noneLeft("no configuration")
}
