package cri

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podsb/podsb/sandbox"
)

func goodConfig() *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "u1"}}
}

func TestPodConfigBadInput(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    func(*runtimeapi.PodSandboxConfig) *runtimeapi.PodSandboxConfig
		handler string
		code    codes.Code
		msg     string
	}{
		{"no config", func(*runtimeapi.PodSandboxConfig) *runtimeapi.PodSandboxConfig { return nil }, "", codes.InvalidArgument, "config is missing"},
		{"no metadata", func(c *runtimeapi.PodSandboxConfig) *runtimeapi.PodSandboxConfig { c.Metadata = nil; return c }, "", codes.InvalidArgument, "metadata is missing"},
		{"no name", func(c *runtimeapi.PodSandboxConfig) *runtimeapi.PodSandboxConfig { c.Metadata.Name = ""; return c }, "", codes.InvalidArgument, "metadata.name"},
		{"no namespace", func(c *runtimeapi.PodSandboxConfig) *runtimeapi.PodSandboxConfig { c.Metadata.Namespace = ""; return c }, "", codes.InvalidArgument, "metadata.namespace"},
		{"no uid", func(c *runtimeapi.PodSandboxConfig) *runtimeapi.PodSandboxConfig { c.Metadata.Uid = ""; return c }, "", codes.InvalidArgument, "metadata.uid"},
		{"handler", func(c *runtimeapi.PodSandboxConfig) *runtimeapi.PodSandboxConfig { return c }, "kata", codes.InvalidArgument, "runtime handler"},
		{"PID mode unknown", func(c *runtimeapi.PodSandboxConfig) *runtimeapi.PodSandboxConfig {
			c.Linux = &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Pid: 9}}}
			return c
		}, "", codes.InvalidArgument, "namespace_options.pid: unknown mode"},
		{"network mode TARGET", func(c *runtimeapi.PodSandboxConfig) *runtimeapi.PodSandboxConfig {
			c.Linux = &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_TARGET}}}
			return c
		}, "", codes.InvalidArgument, "namespace_options.network"},
		{"IPC mode CONTAINER", func(c *runtimeapi.PodSandboxConfig) *runtimeapi.PodSandboxConfig {
			c.Linux = &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Ipc: runtimeapi.NamespaceMode_CONTAINER}}}
			return c
		}, "", codes.InvalidArgument, "namespace_options.ipc"},
		{"user namespace without maps", userns(&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD}), "", codes.InvalidArgument, "namespace_options.userns_options.uids: mode POD needs a mapping"},
		{"user namespace CONTAINER", userns(&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_CONTAINER}), "", codes.InvalidArgument, "namespace_options.userns_options.mode: CONTAINER is not one of POD, NODE"},
		{"user namespace TARGET", userns(&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_TARGET}), "", codes.InvalidArgument, "namespace_options.userns_options.mode: TARGET"},
		{"user namespace NODE with maps", userns(&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE, Uids: idmap(0, 1000, 10)}), "", codes.InvalidArgument, "mode NODE (the host's user namespace) with uids or gids"},
		{"user namespace overlapping maps", userns(&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: append(idmap(0, 1000, 100000), idmap(0, 2000, 100000)...), Gids: idmap(0, 1000, 100000)}), "", codes.InvalidArgument, "namespace_options.userns_options.uids 0:2000:100000 overlaps 0:1000:100000"},
		{"user namespace without the pod's 0", userns(&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: idmap(1, 1000, 100000), Gids: idmap(1, 1000, 100000)}), "", codes.InvalidArgument, "namespace_options.userns_options.uids: ID 0 of the pod is not mapped"},
		{"user namespace with the host's 0", userns(&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: idmap(0, 1000, 10), Gids: idmap(0, 0, 10)}), "", codes.InvalidArgument, "namespace_options.userns_options.gids 0:0:10: maps the host's root"},
		{"sctp", func(c *runtimeapi.PodSandboxConfig) *runtimeapi.PodSandboxConfig {
			c.PortMappings = []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_SCTP, HostPort: 80, ContainerPort: 80}}
			return c
		}, "", codes.Unimplemented, "SCTP"},
		{"port out of range", func(c *runtimeapi.PodSandboxConfig) *runtimeapi.PodSandboxConfig {
			c.PortMappings = []*runtimeapi.PortMapping{{HostPort: 70000, ContainerPort: 80}}
			return c
		}, "", codes.InvalidArgument, "1 to 65535"},
		{"bad host IP", func(c *runtimeapi.PodSandboxConfig) *runtimeapi.PodSandboxConfig {
			c.PortMappings = []*runtimeapi.PortMapping{{HostPort: 8080, ContainerPort: 80, HostIp: "nope"}}
			return c
		}, "", codes.InvalidArgument, "host IP"},
		{"bad DNS server", func(c *runtimeapi.PodSandboxConfig) *runtimeapi.PodSandboxConfig {
			c.DnsConfig = &runtimeapi.DNSConfig{Servers: []string{"dns.example"}}
			return c
		}, "", codes.InvalidArgument, "not an IP address"},
		{"DNS search with a newline", func(c *runtimeapi.PodSandboxConfig) *runtimeapi.PodSandboxConfig {
			c.DnsConfig = &runtimeapi.DNSConfig{Searches: []string{"a\nnameserver 1.2.3.4"}}
			return c
		}, "", codes.InvalidArgument, "white space"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := podConfig(tc.edit(goodConfig()), tc.handler)
			st, _ := status.FromError(err)
			if st.Code() != tc.code || !strings.Contains(st.Message(), tc.msg) {
				t.Errorf("got %v, want %v with %q", err, tc.code, tc.msg)
			}
		})
	}
}

func TestPodConfig(t *testing.T) {
	c := goodConfig()
	c.Hostname = "web-1"
	c.DnsConfig = &runtimeapi.DNSConfig{Servers: []string{"10.0.0.10"}, Searches: []string{"svc.cluster.local", "cluster.local"}, Options: []string{"ndots:5"}}
	c.PortMappings = []*runtimeapi.PortMapping{
		{ContainerPort: 80, HostPort: 8080},
		{Protocol: runtimeapi.Protocol_UDP, ContainerPort: 53, HostPort: 5353, HostIp: "127.0.0.1"},
		{ContainerPort: 9090}, // not published
	}
	sc, err := podConfig(c, "")
	if err != nil {
		t.Fatal(err)
	}
	if sc.Hostname != "web-1" {
		t.Errorf("hostname %q", sc.Hostname)
	}
	want := "nameserver 10.0.0.10\nsearch svc.cluster.local cluster.local\noptions ndots:5\n"
	if sc.ResolvConf != want {
		t.Errorf("resolv.conf %q, want %q", sc.ResolvConf, want)
	}
	var ports []string
	for _, p := range sc.Network.Publish {
		ports = append(ports, p.String())
	}
	if got := strings.Join(ports, " "); got != "8080:80/tcp 127.0.0.1:5353:53/udp" {
		t.Errorf("ports %s", got)
	}
}

// NODE network and IPC are the host's namespaces; a host-network pod's
// port mappings publish nothing; sysctls go to sandbox.Create, which checks
// them (TestSysctlPaths, TestPodSysctls).
func TestPodConfigNamespaces(t *testing.T) {
	c := goodConfig()
	c.PortMappings = []*runtimeapi.PortMapping{{ContainerPort: 80, HostPort: 80}}
	c.Linux = &runtimeapi.LinuxPodSandboxConfig{
		Sysctls: map[string]string{"kernel.shm_rmid_forced": "1"},
		SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{
			Network: runtimeapi.NamespaceMode_NODE, Ipc: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_CONTAINER}},
	}
	sc, err := podConfig(c, "")
	if err != nil {
		t.Fatal(err)
	}
	if !sc.HostNetwork || !sc.HostIPC || sc.Network != nil || len(sc.Sysctls) != 1 || sc.Sysctls[0].Key != "kernel.shm_rmid_forced" {
		t.Errorf("host network %v, IPC %v, network %+v, sysctls %v", sc.HostNetwork, sc.HostIPC, sc.Network, sc.Sysctls)
	}
}

// A NODE PID mode of a pod lets its containers ask for the host's PID
// namespace; a container asks for it only in such a pod.
func TestHostPIDOf(t *testing.T) {
	c := goodConfig()
	c.Linux = &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
		NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_NODE}}}
	sc, err := podConfig(c, "")
	if err != nil || !sc.HostPID {
		t.Fatalf("pid NODE: host PID %v, %v", sc.HostPID, err)
	}
	host, pod := &podRecord{ID: "p1", HostPID: true}, &podRecord{ID: "p2"}
	if r := (&podRecord{HostPID: true}).namespaceOption(); r.GetPid() != runtimeapi.NamespaceMode_NODE {
		t.Errorf("namespace option of a host-PID pod: %v", r)
	}
	for _, tc := range []struct {
		m    sandbox.PIDMode
		pod  *podRecord
		code codes.Code
	}{
		{sandbox.PIDMode{Host: true}, host, codes.OK},
		{sandbox.PIDMode{}, host, codes.OK},
		{sandbox.PIDMode{}, pod, codes.OK},
		{sandbox.PIDMode{Host: true}, pod, codes.InvalidArgument},
	} {
		err := hostPIDOf("c", tc.m, tc.pod)
		if st, _ := status.FromError(err); st.Code() != tc.code || (err != nil && !strings.Contains(st.Message(), "namespace_options.pid: NODE")) {
			t.Errorf("%+v in %+v: %v, want %v", tc.m, tc.pod, err, tc.code)
		}
	}
}

func TestPIDModeOf(t *testing.T) {
	for _, tc := range []struct {
		ns   *runtimeapi.NamespaceOption
		want sandbox.PIDMode
		code codes.Code
		msg  string
	}{
		{nil, sandbox.PIDMode{}, codes.OK, ""},
		{&runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD}, sandbox.PIDMode{}, codes.OK, ""},
		{&runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER}, sandbox.PIDMode{Own: true}, codes.OK, ""},
		{&runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_TARGET, TargetId: "abc"}, sandbox.PIDMode{Target: "abc"}, codes.OK, ""},
		{&runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_TARGET}, sandbox.PIDMode{}, codes.InvalidArgument, "namespace_options.target_id is empty"},
		{&runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_NODE}, sandbox.PIDMode{Host: true}, codes.OK, ""},
	} {
		got, err := pidModeOf("c", tc.ns)
		st, _ := status.FromError(err)
		if got != tc.want || st.Code() != tc.code || !strings.Contains(st.Message(), tc.msg) {
			t.Errorf("%v: %+v %v, want %+v %v %q", tc.ns, got, err, tc.want, tc.code, tc.msg)
		}
	}
}

func TestLabelsMatch(t *testing.T) {
	l := map[string]string{"app": "web", "tier": "front"}
	for _, tc := range []struct {
		sel  map[string]string
		want bool
	}{
		{nil, true},
		{map[string]string{"app": "web"}, true},
		{map[string]string{"app": "web", "tier": "front"}, true},
		{map[string]string{"app": "db"}, false},
		{map[string]string{"other": ""}, false},
	} {
		if got := labelsMatch(l, tc.sel); got != tc.want {
			t.Errorf("labelsMatch(%v) = %v", tc.sel, got)
		}
	}
}

func TestStoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s, err := openStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	id := strings.Repeat("ab", 32)
	r := &podRecord{ID: id, Name: "web", UID: "u", Namespace: "ns", Attempt: 2, Labels: map[string]string{"a": "b"}, Created: 42, Ready: true}
	if err := s.write(r); err != nil {
		t.Fatal(err)
	}
	recs, bad := s.load()
	if len(bad) != 0 || len(recs) != 1 || recs[0].key() != r.key() || recs[0].Labels["a"] != "b" || !recs[0].Ready {
		t.Fatalf("load: %+v %v", recs, bad)
	}
	if err := s.remove(id); err != nil {
		t.Fatal(err)
	}
	if err := s.remove(id); err != nil {
		t.Fatalf("second remove: %v", err)
	}
	if recs, _ := s.load(); len(recs) != 0 {
		t.Fatalf("removed record loaded: %+v", recs)
	}
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		strings.Repeat("0f", 32):        true,
		strings.Repeat("0F", 32):        false,
		strings.Repeat("0f", 31):        false,
		"../" + strings.Repeat("0", 61): false,
	} {
		if validID(id) != want {
			t.Errorf("validID(%q) != %v", id, want)
		}
	}
}

// A --config file sets the flags the command line did not, and carries
// [[registry]] tables; unknown keys and bad values are errors.
func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "cri.toml")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newFlags := func() (*flag.FlagSet, *string, *string, *time.Duration, *bool) {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.String("config", "", "")
		root := fs.String("root", "/run/podsb", "")
		bridge := fs.String("bridge", "", "")
		grace := fs.Duration("grace", 10*time.Second, "")
		debug := fs.Bool("debug", false, "")
		return fs, root, bridge, grace, debug
	}
	p := write(`root = "/run/from-file"
bridge = "br-file"
grace = "3s"
debug = true

[[registry]]
prefix = "registry.k8s.io"
[[registry.mirror]]
location = "127.0.0.1:5000/k8s"
insecure = true
`)
	fs, root, bridge, grace, debug := newFlags()
	if err := fs.Parse([]string{"--bridge", "br-flag"}); err != nil {
		t.Fatal(err)
	}
	regs, err := loadConfig(fs, p)
	if err != nil {
		t.Fatal(err)
	}
	if *root != "/run/from-file" || *bridge != "br-flag" || *grace != 3*time.Second || !*debug {
		t.Errorf("flags: root %q bridge %q grace %v debug %v", *root, *bridge, *grace, *debug)
	}
	if regs == nil || len(regs.Registry) != 1 || regs.Registry[0].Location != "registry.k8s.io" ||
		len(regs.Registry[0].Mirror) != 1 || regs.Registry[0].Mirror[0].Location != "127.0.0.1:5000/k8s" {
		t.Errorf("registries: %+v", regs)
	}
	for _, bad := range []struct{ file, want string }{
		{`nosuch = 1`, `unknown key "nosuch"`},
		{`config = "x"`, `unknown key "config"`},
		{`grace = "soon"`, `key "grace"`},
		{`root = ["a"]`, `want a string`},
		{`root = `, `config `},
		{"[[registry]]\ninsecure = true", "without prefix or location"},
	} {
		fs, _, _, _, _ := newFlags()
		fs.Parse(nil)
		if _, err := loadConfig(fs, write(bad.file)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: got %v, want %q", bad.file, err, bad.want)
		}
	}
	fs, _, _, _, _ = newFlags()
	if _, err := loadConfig(fs, filepath.Join(dir, "missing.toml")); err == nil {
		t.Error("a missing config file loaded")
	}
}

// A bad --stream-address (or stream-address in the config) stops podsb cri
// at start with one line, exit 125.
func TestMainBadStreamAddress(t *testing.T) {
	var b strings.Builder
	if code := Main([]string{"--stream-address", "nonsense"}, &b); code != 125 ||
		!strings.Contains(b.String(), `--stream-address "nonsense": want HOST:PORT`) || strings.Count(b.String(), "\n") != 1 {
		t.Errorf("exit %d: %q", code, b.String())
	}
}

// userns returns an edit that gives a pod config the user namespace
// options u.
func userns(u *runtimeapi.UserNamespace) func(c *runtimeapi.PodSandboxConfig) *runtimeapi.PodSandboxConfig {
	return func(c *runtimeapi.PodSandboxConfig) *runtimeapi.PodSandboxConfig {
		c.Linux = &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{UsernsOptions: u}}}
		return c
	}
}

func idmap(c, h, n uint32) []*runtimeapi.IDMapping {
	return []*runtimeapi.IDMapping{{ContainerId: c, HostId: h, Length: n}}
}

func TestPodConfigUserNS(t *testing.T) {
	for _, tc := range []struct {
		name  string
		u     *runtimeapi.UserNamespace
		wantU []sandbox.IDMap
		wantG []sandbox.IDMap
	}{
		{"none", nil, nil, nil},
		{"NODE", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE}, nil, nil},
		{"POD", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: idmap(0, 1000, 100000), Gids: idmap(0, 3000000, 65536)},
			[]sandbox.IDMap{{HostID: 1000, Size: 100000}}, []sandbox.IDMap{{HostID: 3000000, Size: 65536}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, err := podConfig(userns(tc.u)(goodConfig()), "")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(sc.UIDMap, tc.wantU) || !slices.Equal(sc.GIDMap, tc.wantG) || sc.UserNS != "" {
				t.Errorf("maps %v %v (userns %q), want %v %v", sc.UIDMap, sc.GIDMap, sc.UserNS, tc.wantU, tc.wantG)
			}
		})
	}
}
