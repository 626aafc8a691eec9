// containerd: the CRI peer of podsb cri (issue 14's figures).
//
// The peer is Debian's containerd 1.6 with its CRI plugin and runc
// (io.containerd.runc.v2), private to one test or benchmark, never the
// system service:
//
//   - Every path is under the test's TempDir: config.toml, root, state, the
//     gRPC and ttrpc sockets, runc's root, the opt plugin's directory and the
//     CNI configuration. containerd 1.6 still puts a few things at fixed
//     paths under /run: the shims' sockets (/run/containerd/s) and the pods'
//     network namespace pins (/var/run/netns/cni-…). So it runs in a mount
//     namespace of its own (unshare --mount --propagation private) in which
//     an empty tmpfs covers /run: nothing it makes under /run reaches the
//     host, and every mount it makes (rootfs overlays, netns pins, /dev/shm)
//     goes away with its last process. The host's /run/containerd is never
//     created or read.
//   - It runs under tini -s, a child subreaper: the shims, which daemonize,
//     are reparented to tini rather than to the host's init, so every process
//     containerd adds (shims, pause, the containers) is a descendant of the
//     tini this test started. That is how the memory figure finds them, and
//     how teardown checks that none is left.
//   - Its sandbox_image is podsb's own pause program (reaper.Image) as
//     /pause, served with the containers' busybox image by an in-process
//     registry on 127.0.0.1, configured as a plain-HTTP mirror of itself:
//     no traffic leaves the machine.
//   - Its pod network is CNI with no host side at all: containerd's own
//     loopback network (the loopback plugin) and a four-line plugin of this
//     file that makes a veth pair whose two ends both stay in the pod's
//     network namespace, eth0 with 192.0.2.2/24 (TEST-NET-1). containerd 1.6
//     needs an eth0 with an address to call a pod ready; a bridge would
//     change host networking. podsb's pods get a veth into a bridge and an
//     address from its allocator, which is more work: the comparison favours
//     containerd.
//
// Teardown removes every pod through crictl first, then sends SIGTERM to
// containerd by PID, waits for it, and fails the test if any process that
// was a descendant of its tini still runs (it is then killed by PID), if any
// process still holds its mount namespace, or if a cgroup of its pods or
// containers (/k8s.io/ID in each hierarchy, runc's) is left; it removes the
// k8s.io parents if it made them.
package integration

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/podsb/podsb/internal/testenv"
	"github.com/podsb/podsb/reaper"
)

// requirePeer skips tb when a program the containerd peer needs is
// missing, or fails it under PODSB_INTEGRATION=1 (make deps installs them).
func requirePeer(tb testing.TB, progs ...string) {
	tb.Helper()
	testenv.RequireRoot(tb)
	for _, p := range progs {
		if _, err := exec.LookPath(p); err != nil {
			if testenv.Integration() {
				tb.Fatalf("PODSB_INTEGRATION=1 but %s is missing (make deps installs it): %v", p, err)
			}
			tb.Skipf("no %s (Debian's package; make deps installs it)", p)
		}
	}
}

// cniPeerPlugin is the CNI plugin of the peer's pods: eth0 and its peer,
// both in the pod's network namespace, eth0 with a TEST-NET-1 address.
// DEL has nothing to do: the namespace takes the pair with it.
const cniPeerPlugin = `#!/bin/sh
case "$CNI_COMMAND" in
VERSION) echo '{"cniVersion":"0.4.0","supportedVersions":["0.3.0","0.3.1","0.4.0"]}'; exit 0;;
ADD) nsenter --net="$CNI_NETNS" sh -c "ip link add $CNI_IFNAME type veth peer name peer0 && ip addr add 192.0.2.2/24 dev $CNI_IFNAME && ip link set $CNI_IFNAME up" >&2 || exit 1
	echo '{"cniVersion":"0.4.0","interfaces":[{"name":"'"$CNI_IFNAME"'","sandbox":"'"$CNI_NETNS"'"}],"ips":[{"version":"4","address":"192.0.2.2/24","interface":0}]}';;
esac
`

// peerImages are the images both runtimes run: pause (podsb's pause
// program as /pause) and busybox (Debian's busybox-static with a link for
// each of its applets: sleep, top for critest's benchmarks, and what its
// conformance specs run).
func peerImages(tb testing.TB) map[string]v1.Image {
	tb.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		tb.Skipf("no /bin/busybox (Debian's busybox-static, make deps): %v", err)
	}
	files := []tarFile{{name: "bin/busybox", mode: 0o755, body: bb}}
	// Every applet, as critest's specs run echo, cat, ls, nc, pgrep and
	// more.
	applets, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		tb.Fatalf("busybox --list: %v", err)
	}
	for _, l := range strings.Fields(string(applets)) {
		if l != "busybox" {
			files = append(files, tarFile{name: "bin/" + l, link: "busybox"})
		}
	}
	pause := layer(tb, tarFile{name: "pause", mode: 0o755, body: reaper.Image()})
	return map[string]v1.Image{
		"pause:1":   imageOf(tb, v1.Config{Entrypoint: []string{"/pause"}}, pause),
		"busybox:1": ociImage(tb, []string{"sh"}, layer(tb, files...)),
	}
}

// containerd is a private containerd under a tini subreaper.
type containerd struct {
	tb     testing.TB
	dir    string
	sock   string
	crictl string
	tini   *exec.Cmd
	log    *bytes.Buffer
	// newCgroups are the cgroup directories of containerd's namespace
	// (k8s.io) in each hierarchy that did not exist before it started:
	// runc makes /k8s.io/ID and removes only ID.
	newCgroups []string
}

// containerdCgroups are the parents runc makes for containerd's k8s.io
// namespace: containerd's default cgroupsPath is /k8s.io/ID.
func containerdCgroups() []string {
	d, _ := filepath.Glob("/sys/fs/cgroup/*")
	var out []string
	for _, h := range d {
		if st, err := os.Stat(h); err == nil && st.IsDir() {
			out = append(out, filepath.Join(h, "k8s.io"))
		}
	}
	return out
}

// newContainerd starts containerd with its CRI plugin, its pause image
// from the registry at host (which serves peerImages), and waits for its
// socket. Its cleanup tears it down (teardown).
func newContainerd(tb testing.TB, crictl, host string) *containerd {
	tb.Helper()
	requirePeer(tb, "containerd", "containerd-shim-runc-v2", "runc", "tini", "unshare", "nsenter", "ip")
	if _, err := os.Stat("/usr/lib/cni/loopback"); err != nil {
		requirePeer(tb, "/usr/lib/cni/loopback")
	}
	runc, _ := exec.LookPath("runc")
	dir := tb.TempDir()
	c := &containerd{tb: tb, dir: dir, sock: filepath.Join(dir, "containerd.sock"), crictl: crictl, log: &bytes.Buffer{}}
	cniBin, cniConf := filepath.Join(dir, "cni-bin"), filepath.Join(dir, "cni-conf")
	for _, d := range []string{cniBin, cniConf} {
		if err := os.Mkdir(d, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	must(tb, os.Symlink("/usr/lib/cni/loopback", filepath.Join(cniBin, "loopback")))
	must(tb, os.WriteFile(filepath.Join(cniBin, "podsb-peer"), []byte(cniPeerPlugin), 0o755))
	must(tb, os.WriteFile(filepath.Join(cniConf, "10-podsb-peer.conflist"),
		[]byte(`{"cniVersion": "0.4.0", "name": "podsb-peer", "plugins": [{"type": "podsb-peer"}]}`), 0o644))
	p := func(parts ...string) string { return filepath.Join(append([]string{dir}, parts...)...) }
	q := strconv.Quote
	cri := `plugins."io.containerd.grpc.v1.cri"`
	config := strings.Join([]string{
		`version = 2`,
		`root = ` + q(p("root")),
		`state = ` + q(p("state")),
		`plugin_dir = ""`,
		`[grpc]`,
		`  address = ` + q(c.sock),
		`[ttrpc]`,
		`  address = ` + q(c.sock+".ttrpc"),
		`[debug]`,
		`  address = ""`,
		`  level = "warn"`,
		`[metrics]`,
		`  address = ""`,
		`[plugins."io.containerd.internal.v1.opt"]`,
		`  path = ` + q(p("opt")),
		`[` + cri + `]`,
		`  sandbox_image = ` + q(host+"/pause:1"),
		`  stream_server_address = "127.0.0.1"`,
		`  stream_server_port = "0"`,
		`  disable_apparmor = true`,
		// The pause's -998 is refused on this machine (no
		// CAP_SYS_RESOURCE): keep every process at containerd's own.
		`  restrict_oom_score_adj = true`,
		`[` + cri + `.containerd]`,
		`  snapshotter = "overlayfs"`,
		`  default_runtime_name = "runc"`,
		`[` + cri + `.containerd.runtimes.runc]`,
		`  runtime_type = "io.containerd.runc.v2"`,
		`[` + cri + `.containerd.runtimes.runc.options]`,
		`  BinaryName = ` + q(runc),
		`  Root = ` + q(p("runc")),
		`[` + cri + `.cni]`,
		`  bin_dir = ` + q(cniBin),
		`  conf_dir = ` + q(cniConf),
		`  max_conf_num = 1`,
		`[` + cri + `.registry.mirrors.` + q(host) + `]`,
		`  endpoint = [` + q("http://"+host) + `]`,
		``,
	}, "\n")
	must(tb, os.WriteFile(p("config.toml"), []byte(config), 0o644))
	for _, cg := range containerdCgroups() {
		if _, err := os.Stat(cg); err != nil {
			c.newCgroups = append(c.newCgroups, cg)
		}
	}
	// The host's /run is covered in containerd's own mount namespace only.
	c.tini = exec.Command("tini", "-s", "--", "unshare", "--mount", "--propagation", "private", "--",
		"sh", "-c", `mount -t tmpfs -o mode=0755 podsb-peer /run && exec "$@"`, "sh", "containerd", "--config", p("config.toml"))
	c.tini.Stdout, c.tini.Stderr = c.log, c.log
	c.tini.Env = append(os.Environ(), "PATH=/usr/sbin:/usr/bin:/sbin:/bin")
	if err := c.tini.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.teardown)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if out, err := c.crictlCmd("version").CombinedOutput(); err == nil {
			if !strings.Contains(string(out), "containerd") {
				tb.Fatalf("crictl version against the peer: %s", out)
			}
			return c
		}
		if time.Now().After(deadline) {
			tb.Fatalf("containerd did not serve %s: %s", c.sock, c.log)
		}
	}
}

// endpoint is the peer's CRI endpoint.
func (c *containerd) endpoint() string { return "unix://" + c.sock }

func (c *containerd) crictlCmd(args ...string) *exec.Cmd {
	ep := c.endpoint()
	return exec.Command(c.crictl, append([]string{"--runtime-endpoint", ep, "--image-endpoint", ep, "--timeout", "60s"}, args...)...)
}

// crictlMust runs crictl against the peer and fails unless it exits 0.
func (c *containerd) crictlMust(args ...string) string {
	c.tb.Helper()
	var out, errb bytes.Buffer
	cmd := c.crictlCmd(args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		c.tb.Fatalf("crictl %s (containerd): %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

// pid is containerd's PID (tini's child; unshare and sh exec it).
func (c *containerd) pid() int {
	for _, p := range descendants(c.tini.Process.Pid) {
		if ppid(p) == c.tini.Process.Pid {
			return p
		}
	}
	return 0
}

// teardown removes the peer's pods through crictl, stops containerd by
// PID, and fails the test if any process it added is left.
func (c *containerd) teardown() {
	tb := c.tb
	tb.Helper()
	var ids []string
	if out, err := c.crictlCmd("ps", "-aq").Output(); err == nil {
		ids = strings.Fields(string(out))
	}
	if out, err := c.crictlCmd("pods", "-q").Output(); err == nil {
		ids = append(ids, strings.Fields(string(out))...)
		for _, id := range strings.Fields(string(out)) {
			if out, err := c.crictlCmd("stopp", id).CombinedOutput(); err != nil {
				tb.Errorf("teardown: crictl stopp %s: %v: %s", id, err, out)
			}
			if out, err := c.crictlCmd("rmp", id).CombinedOutput(); err != nil {
				tb.Errorf("teardown: crictl rmp %s: %v: %s", id, err, out)
			}
		}
	} else {
		tb.Errorf("teardown: crictl pods: %v", err)
	}
	// Once its pods are gone, a shim exits: wait until containerd is all
	// that is left under tini.
	srv := c.pid()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if d := descendants(c.tini.Process.Pid); len(d) <= 1 {
			break
		}
	}
	left := startTimes(descendants(c.tini.Process.Pid))
	delete(left, srv)
	var mntNS uint64
	if srv > 0 {
		mntNS = nsIno(tb, fmt.Sprintf("/proc/%d/ns/mnt", srv))
	}
	if srv > 0 {
		syscall.Kill(srv, syscall.SIGTERM)
	}
	done := make(chan error, 1)
	go func() { done <- c.tini.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		tb.Errorf("teardown: containerd (PID %d) did not exit on SIGTERM; killing it", srv)
		syscall.Kill(srv, syscall.SIGKILL)
		<-done
	}
	for pid, start := range left {
		if alive(pid, start) {
			tb.Errorf("teardown: containerd left process %d (%s) after its pods were removed; killing it", pid, comm(pid))
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	// Its mounts live in its own mount namespace: gone with its last
	// process.
	if mntNS != 0 {
		if pids := processesInMntNS(mntNS); len(pids) > 0 {
			tb.Errorf("teardown: containerd's mount namespace is still held by %v", pids)
		}
	}
	for _, m := range mountsUnder(tb, c.dir) {
		tb.Errorf("teardown: leaked mount %s on the host", m)
	}
	for _, id := range ids {
		for _, cg := range containerdCgroups() {
			if _, err := os.Stat(filepath.Join(cg, id)); err == nil {
				tb.Errorf("teardown: leaked cgroup %s", filepath.Join(cg, id))
			}
		}
	}
	// The namespace's parent cgroups, if this peer made them and no other
	// peer uses them now (rmdir fails on a cgroup with children).
	for _, cg := range c.newCgroups {
		var err error
		for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if err = os.Remove(cg); err == nil || errors.Is(err, fs.ErrNotExist) || time.Now().After(deadline) {
				break
			}
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			tb.Logf("teardown: %s is left: %v", cg, err)
		}
	}
	if tb.Failed() {
		tb.Logf("containerd's log:\n%s", c.log)
	}
}

// processesInMntNS lists the processes whose mount namespace has inode
// ino.
func processesInMntNS(ino uint64) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, en := range ents {
		p, err := strconv.Atoi(en.Name())
		if err != nil {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat(fmt.Sprintf("/proc/%d/ns/mnt", p), &st) == nil && st.Ino == ino {
			out = append(out, p)
		}
	}
	return out
}

// descendants lists every process below pid (not pid itself), from the
// parent links in /proc.
func descendants(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, en := range ents {
		p, err := strconv.Atoi(en.Name())
		if err != nil {
			continue
		}
		if pp := ppid(p); pp > 0 {
			children[pp] = append(children[pp], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, ch := range children[p] {
			out = append(out, ch)
			queue = append(queue, ch)
		}
	}
	return out
}

// statFields returns the fields of /proc/PID/stat after the command name
// (field 3, the state, first); nil if the process is gone.
func statFields(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

func ppid(pid int) int {
	f := statFields(pid)
	if len(f) < 2 {
		return 0
	}
	p, _ := strconv.Atoi(f[1])
	return p
}

func comm(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return strings.TrimSpace(string(b))
}

// startTimes maps live processes to their start times (for alive).
func startTimes(pids []int) map[int]uint64 {
	m := map[int]uint64{}
	for _, p := range pids {
		if f := statFields(p); len(f) > 19 {
			st, _ := strconv.ParseUint(f[19], 10, 64)
			m[p] = st
		}
	}
	return m
}

// TestContainerdPeer checks that the peer does the work the CRI figures
// time: a pod whose pause is podsb's pause from the local registry, with a
// veth-less eth0 and lo in its own network namespace, and a running busybox
// container; and that teardown leaves none of its processes.
func TestContainerdPeer(t *testing.T) {
	host := serveImages(t, peerImages(t))
	_, runBefore := os.Stat("/run/containerd")
	c := newContainerd(t, crictlBinary(t), host)
	dir := t.TempDir()
	podJSON, ctrJSON := filepath.Join(dir, "pod.json"), filepath.Join(dir, "ctr.json")
	must(t, os.WriteFile(podJSON, []byte(`{"metadata": {"name": "peer", "namespace": "default", "uid": "p1", "attempt": 0}, "log_directory": "`+dir+`", "linux": {}}`), 0o644))
	must(t, os.WriteFile(ctrJSON, []byte(`{"metadata": {"name": "main"}, "image": {"image": "`+host+`/busybox:1"}, "command": ["sleep", "3600"], "log_path": "main.log", "linux": {}}`), 0o644))
	c.crictlMust("pull", host+"/busybox:1")
	pod := strings.TrimSpace(c.crictlMust("runp", podJSON))
	ctr := strings.TrimSpace(c.crictlMust("create", pod, ctrJSON, podJSON))
	c.crictlMust("start", ctr)
	if out := c.crictlMust("inspectp", pod); !strings.Contains(out, `"192.0.2.2"`) || !strings.Contains(out, "SANDBOX_READY") {
		t.Errorf("crictl inspectp: %s", out)
	}
	var names []string
	for _, p := range descendants(c.tini.Process.Pid) {
		names = append(names, comm(p))
	}
	got := strings.Join(names, " ")
	for _, want := range []string{"containerd", "containerd-shim", "pause", "sleep"} {
		if !strings.Contains(got, want) {
			t.Errorf("no %s among containerd's processes: %s", want, got)
		}
	}
	// The host's /run is untouched.
	if _, err := os.Stat("/run/containerd"); err == nil && runBefore != nil {
		t.Errorf("the peer made /run/containerd on the host")
	}
	t.Logf("containerd's processes: %s", got)
}
