package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// podsb cri: a pod on the host's network and IPC namespaces, with a
// sysctl; PodSandboxStatus reports the modes and no IP. A bad sysctl and a
// PID namespace target that is no container of the pod are InvalidArgument
// naming the sysctl or field, and leave no pod, record or container.
func TestCRINamespaces(t *testing.T) {
	c := newCRIEnv(t)
	dir := t.TempDir()
	write := fileWriter(t, dir)
	hostPod := write("host.json", `{"metadata": {"name": "host", "namespace": "default", "uid": "h1"},
		"port_mappings": [{"container_port": 80, "host_port": 80}],
		"linux": {"sysctls": {"kernel.domainname": "x"}, "security_context": {"namespace_options": {"network": 2, "ipc": 2}}}}`)
	r := c.crictlRun("runp", hostPod)
	if r.code == 0 || !strings.Contains(r.stderr, "InvalidArgument") || !strings.Contains(r.stderr, "sysctl kernel.domainname") {
		t.Errorf("runp, host network, kernel.domainname: exit %d: %s", r.code, r.stderr)
	}
	hostPod = write("host.json", `{"metadata": {"name": "host", "namespace": "default", "uid": "h1"},
		"port_mappings": [{"container_port": 80, "host_port": 80}],
		"linux": {"sysctls": {"kernel.shm_rmid_forced": "1"}, "security_context": {"namespace_options": {"network": 2, "ipc": 0}}}}`)
	pod := strings.TrimSpace(c.crictlMust("runp", hostPod))
	c.use(pod)
	var st struct {
		Status struct {
			Network *struct {
				IP string `json:"ip"`
			} `json:"network"`
			Linux struct {
				Namespaces struct {
					Options struct {
						Network string `json:"network"`
						Ipc     string `json:"ipc"`
					} `json:"options"`
				} `json:"namespaces"`
			} `json:"linux"`
		} `json:"status"`
		Info struct {
			Pid int `json:"pid"`
		} `json:"info"`
	}
	if err := json.Unmarshal([]byte(c.crictlMust("inspectp", pod)), &st); err != nil {
		t.Fatal(err)
	}
	if o := st.Status.Linux.Namespaces.Options; o.Network != "NODE" || o.Ipc != "POD" {
		t.Errorf("namespace options %+v", o)
	}
	if st.Status.Network != nil && st.Status.Network.IP != "" {
		t.Errorf("a host-network pod has IP %s", st.Status.Network.IP)
	}
	if st.Info.Pid <= 0 {
		t.Errorf("inspectp: no pid in info")
	} else if nsIno(t, fmt.Sprintf("/proc/%d/ns/net", st.Info.Pid)) != nsIno(t, "/proc/self/ns/net") {
		t.Error("the pod is not in the host's network namespace")
	}

	before := stateEntries(c.root)
	for _, sysctl := range []string{`"kernel.panic": "1"`, `"vm.swappiness": "1"`, `"net.ipv4.ip_forward": "1\n"`} {
		bad := write("bad.json", `{"metadata": {"name": "bad", "namespace": "default", "uid": "b1"}, "linux": {"sysctls": {`+sysctl+`}}}`)
		r := c.crictlRun("runp", bad)
		if r.code == 0 || !strings.Contains(r.stderr, "InvalidArgument") || !strings.Contains(r.stderr, "sysctl ") {
			t.Errorf("runp with sysctl %s: exit %d: %s", sysctl, r.code, r.stderr)
		}
	}
	if after := stateEntries(c.root); len(after) != len(before) {
		t.Errorf("refused pods left state: %v, before %v", after, before)
	}
	if out := strings.Fields(c.crictlMust("pods", "-q")); len(out) != 1 {
		t.Errorf("pods after refusals: %v", out)
	}

	host := serveImages(t, map[string]v1.Image{"busybox:1": ociImage(t, []string{"sleep", "1000"}, busyboxLayer(t))})
	ref := host + "/busybox:1"
	c.crictlMust("pull", ref)
	ctr := write("ctr.json", `{"metadata": {"name": "debug"}, "image": {"image": "`+ref+`"},
		"linux": {"security_context": {"namespace_options": {"pid": 3, "target_id": "nosuch"}}}}`)
	r = c.crictlRun("create", pod, ctr, hostPod)
	if r.code == 0 || !strings.Contains(r.stderr, "InvalidArgument") || !strings.Contains(r.stderr, "namespace_options.target_id") {
		t.Errorf("create with an unknown PID target: exit %d: %s", r.code, r.stderr)
	}
	if out := strings.TrimSpace(c.crictlMust("ps", "-a", "-q")); out != "" {
		t.Errorf("containers after a refused create: %q", out)
	}
	c.crictlMust("stopp", pod)
	c.crictlMust("rmp", pod)
}

// fileWriter returns a function that writes the file name in dir with
// body (mode 0644) and returns its path.
func fileWriter(t *testing.T, dir string) func(name, body string) string {
	return func(name, body string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
}
