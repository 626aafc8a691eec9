package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// The CRI's mount propagations, as crictl's JSON configs give them.
const (
	propPrivate       = 0 // PROPAGATION_PRIVATE
	propHostToCtr     = 1 // PROPAGATION_HOST_TO_CONTAINER
	propBidirectional = 2 // PROPAGATION_BIDIRECTIONAL
)

// criMount is a CRI mount in a crictl container config.
type criMount struct {
	ContainerPath     string `json:"container_path"`
	HostPath          string `json:"host_path"`
	Readonly          bool   `json:"readonly,omitempty"`
	RecursiveReadOnly bool   `json:"recursive_read_only,omitempty"`
	Propagation       int    `json:"propagation,omitempty"`
}

// mountsEnv is a CRI server with a busybox image pulled and a pod.
type mountsEnv struct {
	*criEnv
	ref, pod, podJSON, dir string
}

func newMountsEnv(t *testing.T, extra ...tarFile) *mountsEnv {
	c := newCRIEnv(t)
	layers := []v1.Layer{busyboxLayer(t)}
	if len(extra) > 0 {
		layers = append(layers, layer(t, extra...))
	}
	host := serveImages(t, map[string]v1.Image{"busybox:1": ociImage(t, []string{"sh"}, layers...)})
	m := &mountsEnv{criEnv: c, ref: host + "/busybox:1", dir: t.TempDir()}
	c.crictlMust("pull", m.ref)
	m.podJSON = filepath.Join(m.dir, "pod.json")
	os.WriteFile(m.podJSON, []byte(`{"metadata": {"name": "mounts", "namespace": "default", "uid": "6c2f", "attempt": 0}, "linux": {}}`), 0o644)
	m.pod = strings.TrimSpace(c.crictlMust("runp", m.podJSON))
	c.use(m.pod)
	return m
}

// config writes a container config of name with mounts, privileged or not.
func (m *mountsEnv) config(name string, privileged bool, mounts ...criMount) string {
	m.t.Helper()
	cfg := map[string]any{
		"metadata": map[string]any{"name": name},
		"image":    map[string]any{"image": m.ref},
		"command":  []string{"sh", "-c", "exec busybox sleep 1000"},
		"mounts":   mounts,
		"linux":    map[string]any{"security_context": map[string]any{"privileged": privileged}},
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		m.t.Fatal(err)
	}
	p := filepath.Join(m.dir, name+".json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		m.t.Fatal(err)
	}
	return p
}

// run creates and starts a container of the config.
func (m *mountsEnv) run(cfg string) string {
	m.t.Helper()
	id := strings.TrimSpace(m.crictlMust("create", m.pod, cfg, m.podJSON))
	m.crictlMust("start", id)
	m.waitState(id, "CONTAINER_RUNNING")
	return id
}

// sh runs a shell command in the container and returns its exit code, its
// output and, after a newline, crictl's stderr (with the command's).
func (m *mountsEnv) sh(id, cmd string) (int, string) {
	m.t.Helper()
	r := m.crictlRun("exec", "-s", id, "sh", "-c", cmd)
	return r.code, strings.TrimSpace(r.stdout) + "\n" + r.stderr
}

// statusMounts returns the mounts of crictl inspect.
func (m *mountsEnv) statusMounts(id string) []map[string]any {
	m.t.Helper()
	var st struct {
		Status struct {
			Mounts []map[string]any `json:"mounts"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(m.crictlMust("inspect", id)), &st); err != nil {
		m.t.Fatal(err)
	}
	return st.Status.Mounts
}

// hostSource makes a directory under the test's own directory and binds it
// onto itself with the propagation flag (MS_SHARED, MS_PRIVATE), so that
// the test owns the mount whose propagation the volume depends on. The
// cleanup unmounts everything under it, then checks nothing is left.
func hostSource(t *testing.T, flag uintptr) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.Mkdir(src, 0o755)
	if err := unix.Mount(src, src, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ms := mountsUnder(t, dir)
		slices.Reverse(ms)
		for _, p := range ms {
			unix.Unmount(p, unix.MNT_DETACH)
		}
		for _, p := range mountsUnder(t, dir) {
			t.Errorf("leaked mount %s", p)
		}
	})
	if err := unix.Mount("", src, "", flag|unix.MS_REC, ""); err != nil {
		t.Fatal(err)
	}
	return src
}

// TestCRIMountPropagation checks each propagation of a volume from both
// sides: a mount made on the host below the source, and one made in the
// (privileged) container below the volume.
func TestCRIMountPropagation(t *testing.T) {
	for _, tc := range []struct {
		name            string
		prop            int
		status          string
		toCtr, toHost   bool
		hostPropagation uintptr
	}{
		{"rprivate", propPrivate, "", false, false, unix.MS_SHARED},
		{"rslave", propHostToCtr, "PROPAGATION_HOST_TO_CONTAINER", true, false, unix.MS_SHARED},
		{"rshared", propBidirectional, "PROPAGATION_BIDIRECTIONAL", true, true, unix.MS_SHARED},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMountsEnv(t)
			src := hostSource(t, tc.hostPropagation)
			id := m.run(m.config("prop", true, criMount{ContainerPath: "/vol", HostPath: src, Propagation: tc.prop}))
			ms := m.statusMounts(id)
			if len(ms) != 1 || ms[0]["hostPath"] != src || ms[0]["containerPath"] != "/vol" || fmt.Sprint(ms[0]["propagation"]) != tc.status &&
				!(tc.status == "" && ms[0]["propagation"] == "PROPAGATION_PRIVATE") {
				t.Errorf("status mounts %v, want propagation %q", ms, tc.status)
			}

			// Host to container.
			os.Mkdir(filepath.Join(src, "fromhost"), 0o755)
			if err := unix.Mount("tmpfs", filepath.Join(src, "fromhost"), "tmpfs", 0, ""); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(src, "fromhost", "flag"), nil, 0o644)
			code, out := m.sh(id, "busybox ls /vol/fromhost")
			if got := code == 0 && strings.HasPrefix(out, "flag\n"); got != tc.toCtr {
				t.Errorf("host's mount in the container: %v (exit %d, %q), want %v", got, code, out, tc.toCtr)
			}

			// Container to host.
			if code, out := m.sh(id, "busybox mkdir /vol/fromctr && busybox mount -t tmpfs tmpfs /vol/fromctr && busybox touch /vol/fromctr/flag"); code != 0 {
				t.Fatalf("mount in the container: exit %d: %s", code, out)
			}
			_, err := os.Stat(filepath.Join(src, "fromctr", "flag"))
			if got := err == nil; got != tc.toHost {
				t.Errorf("container's mount on the host: %v, want %v", got, tc.toHost)
			}
			m.crictlMust("rm", "-f", id)
		})
	}
}

// TestCRIMountReadOnly checks read-only volumes: readonly alone leaves the
// mounts below the source writable; recursive_read_only makes them
// read-only too.
func TestCRIMountReadOnly(t *testing.T) {
	m := newMountsEnv(t)
	src := hostSource(t, unix.MS_PRIVATE)
	os.Mkdir(filepath.Join(src, "sub"), 0o755)
	if err := unix.Mount("tmpfs", filepath.Join(src, "sub"), "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		rro    bool
		subRW  bool
		status bool
	}{
		{"non-recursive", false, true, false},
		{"recursive", true, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := m.run(m.config("ro-"+tc.name, false, criMount{ContainerPath: "/vol", HostPath: src, Readonly: true, RecursiveReadOnly: tc.rro}))
			if ms := m.statusMounts(id); len(ms) != 1 || ms[0]["readonly"] != true || (ms[0]["recursiveReadOnly"] == true) != tc.status {
				t.Errorf("status mounts %v", ms)
			}
			if code, out := m.sh(id, "busybox touch /vol/top"); code == 0 || !strings.Contains(out, "Read-only file system") {
				t.Errorf("touch on the read-only volume: exit %d: %s", code, out)
			}
			code, out := m.sh(id, "busybox touch /vol/sub/"+tc.name)
			if (code == 0) != tc.subRW {
				t.Errorf("touch below the volume: exit %d: %s, want writable %v", code, out, tc.subRW)
			}
			m.crictlMust("rm", "-f", id)
		})
	}
}

// TestCRIMountRejections checks the mounts refused at create: each an
// InvalidArgument naming the field, with no container left.
func TestCRIMountRejections(t *testing.T) {
	m := newMountsEnv(t)
	shared := hostSource(t, unix.MS_SHARED)
	private := hostSource(t, unix.MS_PRIVATE)
	for _, tc := range []struct {
		name       string
		privileged bool
		mount      criMount
		want       string
	}{
		{"rro with host to container", true, criMount{HostPath: shared, Readonly: true, RecursiveReadOnly: true, Propagation: propHostToCtr}, "recursive_read_only needs propagation PROPAGATION_PRIVATE"},
		{"rro with bidirectional", true, criMount{HostPath: shared, Readonly: true, RecursiveReadOnly: true, Propagation: propBidirectional}, "recursive_read_only needs propagation PROPAGATION_PRIVATE"},
		{"rro without readonly", true, criMount{HostPath: shared, RecursiveReadOnly: true}, "recursive_read_only needs readonly"},
		{"bidirectional unprivileged", false, criMount{HostPath: shared, Propagation: propBidirectional}, "needs linux.security_context.privileged"},
		{"bidirectional on a private mount", true, criMount{HostPath: private, Propagation: propBidirectional}, "is not shared"},
		{"host to container on a private mount", true, criMount{HostPath: private, Propagation: propHostToCtr}, "neither shared nor a slave"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.mount.ContainerPath = "/vol"
			r := m.crictlRun("create", m.pod, m.config("bad", tc.privileged, tc.mount), m.podJSON)
			if r.code == 0 || !strings.Contains(r.stderr, "InvalidArgument") || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("create: exit %d: %s, want InvalidArgument with %q", r.code, r.stderr, tc.want)
			}
		})
	}
	if out := m.crictlMust("ps", "-a", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("containers left by the refused creates: %q", out)
	}
}

// TestCRIFileVolume checks a volume whose source is a file: its mount
// point is made in the container's root, inside it even when the image
// has a symlink on the way out of the root.
func TestCRIFileVolume(t *testing.T) {
	outside := t.TempDir()
	m := newMountsEnv(t, tarFile{name: "etc/evil", link: outside})
	src := filepath.Join(t.TempDir(), "conf")
	os.WriteFile(src, []byte("from-the-host\n"), 0o644)
	id := m.run(m.config("file", false,
		criMount{ContainerPath: "/etc/app/conf", HostPath: src, Readonly: true},
		criMount{ContainerPath: "/etc/evil/conf", HostPath: src}))
	for _, p := range []string{"/etc/app/conf", "/etc/evil/conf"} {
		if code, out := m.sh(id, "busybox cat "+p); code != 0 || !strings.HasPrefix(out, "from-the-host\n") {
			t.Errorf("cat %s: exit %d: %q", p, code, out)
		}
	}
	if code, out := m.sh(id, "echo x >/etc/app/conf"); code == 0 {
		t.Errorf("write to the read-only file volume: exit 0: %s", out)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("the image's symlink sent the mount point out of the root: %s holds %v", outside, ents)
	}
	m.crictlMust("rm", "-f", id)
}
