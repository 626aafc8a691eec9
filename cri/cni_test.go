package cri

import (
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/podsb/podsb/cni"
	"github.com/podsb/podsb/sandbox"
)

func TestOpenCNI(t *testing.T) {
	empty := t.TempDir()
	good := t.TempDir()
	os.WriteFile(filepath.Join(good, "10-a.conflist"), []byte(`{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"bridge"}]}`), 0o644)
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "10-a.conflist"), []byte(`{"cniVersion":"1.0.0","name":"a"`), 0o644)
	bin := t.TempDir()
	for _, tc := range []struct {
		name    string
		conf    string
		bins    []string
		want    string // "" for success
		wantNil bool
	}{
		{name: "none", wantNil: true},
		{name: "bin dir alone", bins: []string{bin}, want: "a plugin directory without a conf directory"},
		{name: "missing conf dir", conf: "/nonexistent/net.d", bins: []string{bin}, want: "conf directory: stat /nonexistent/net.d"},
		{name: "empty conf dir", conf: empty, bins: []string{bin}, want: "holds no network configuration"},
		{name: "bad conflist", conf: bad, bins: []string{bin}, want: "holds no valid network configuration: 10-a.conflist"},
		{name: "missing bin dir", conf: good, bins: []string{"/nonexistent/bin"}, want: "plugin directory: stat /nonexistent/bin"},
		{name: "good", conf: good, bins: []string{bin}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := t.TempDir()
			o, err := openCNI(tc.conf, tc.bins, state)
			switch {
			case tc.want != "":
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("openCNI: %v, want %q", err, tc.want)
				}
				if tc.conf != "" && !errors.Is(err, cni.ErrConfig) {
					t.Errorf("openCNI: %v is not cni.ErrConfig", err)
				}
			case err != nil:
				t.Fatal(err)
			case tc.wantNil != (o == nil):
				t.Fatalf("openCNI: %+v", o)
			case o != nil && (o.CacheDir != filepath.Join(state, "cni") || !slices.Equal(o.BinDirs, tc.bins)):
				t.Fatalf("openCNI: %+v", o)
			}
		})
	}
}

func TestSplitDirs(t *testing.T) {
	for in, want := range map[string][]string{"": nil, "/a": {"/a"}, " /a, /b ,,": {"/a", "/b"}} {
		if got := SplitDirs(in); !slices.Equal(got, want) {
			t.Errorf("SplitDirs(%q) = %q, want %q", in, got, want)
		}
	}
}

// The config file's keys are the flags': cni-conf-dir and cni-bin-dir too.
func TestConfigCNIKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cri.toml")
	os.WriteFile(path, []byte("cni-conf-dir = \"/etc/cni/net.d\"\ncni-bin-dir = \"/opt/cni/bin,/usr/lib/cni\"\n"), 0o644)
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	conf := fs.String("cni-conf-dir", "", "")
	bin := fs.String("cni-bin-dir", "", "")
	if _, err := loadConfig(fs, path); err != nil {
		t.Fatal(err)
	}
	if *conf != "/etc/cni/net.d" || *bin != "/opt/cni/bin,/usr/lib/cni" {
		t.Fatalf("cni-conf-dir %q, cni-bin-dir %q", *conf, *bin)
	}
}

func TestCNIPorts(t *testing.T) {
	ports := []sandbox.Port{{Proto: "tcp", HostPort: 8080, PodPort: 80}, {Proto: "udp", HostPort: 5353, PodPort: 53, HostIP: netip.MustParseAddr("127.0.0.1")}}
	want := []cni.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}, {HostPort: 5353, ContainerPort: 53, Protocol: "udp", HostIP: "127.0.0.1"}}
	if got := cniPorts(ports); !slices.Equal(got, want) {
		t.Errorf("cniPorts: %+v, want %+v", got, want)
	}
	rec := &podRecord{ID: "id", Name: "web", Namespace: "ns", UID: "u", CNI: &cniRecord{Ports: want}}
	a := cniAttachment(rec, "/run/podsb/id/ns/net")
	if a.ID != "id" || a.NetNS != "/run/podsb/id/ns/net" || !slices.Equal(a.Ports, want) ||
		!slices.Contains(a.Args, [2]string{"K8S_POD_NAME", "web"}) || !slices.Contains(a.Args, [2]string{"K8S_POD_UID", "u"}) {
		t.Errorf("cniAttachment: %+v", a)
	}
}
