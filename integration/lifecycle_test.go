package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestCreateNamespacesAndHandles(t *testing.T) {
	e := newEnv(t)
	name, d := e.create()
	if d.Status != specs.StateRunning || d.Pid <= 0 || d.ID != name {
		t.Fatalf("inspect: %+v", d.State)
	}
	if len(d.Namespaces) != 6 {
		t.Fatalf("want 6 namespaces, got %+v", d.Namespaces)
	}
	for _, ns := range d.Namespaces {
		proc := map[specs.LinuxNamespaceType]string{specs.PIDNamespace: "pid", specs.UTSNamespace: "uts", specs.IPCNamespace: "ipc", specs.MountNamespace: "mnt", specs.NetworkNamespace: "net", specs.UserNamespace: "user"}[ns.Type]
		host := nsIno(t, "/proc/self/ns/"+proc)
		pause := nsIno(t, fmt.Sprintf("/proc/%d/ns/%s", d.Pid, proc))
		handle := nsIno(t, ns.Path)
		// The user namespace is the host's (no --userns auto).
		if (handle == host) != (ns.Type == specs.UserNamespace) || handle != pause || handle != ns.Inode {
			t.Errorf("%s namespace: host %d, pause %d, handle %d, state %d", ns.Type, host, pause, handle, ns.Inode)
		}
	}
	// pause is PID 1 of the pod, named pause, and the pod has nothing else.
	r := e.inPod(name, "cat", "/proc/1/comm", "/proc/1/cmdline")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "pause\npause") {
		t.Errorf("pod's PID 1: %q %q", r.stdout, r.stderr)
	}
	if r := e.inPod(name, "hostname"); strings.TrimSpace(r.stdout) != name {
		t.Errorf("hostname %q, want %q", r.stdout, name)
	}
	// Loopback is up; ip netns and nsenter --net see the same namespace.
	for _, out := range []result{
		e.runCmd(cmdOf("ip", "netns", "exec", name, "ip", "-o", "link", "show", "lo")),
		e.runCmd(cmdOf("nsenter", "--net="+filepath.Join(e.root, name, "ns", "net"), "ip", "-o", "link", "show", "lo")),
	} {
		if out.code != 0 || !strings.Contains(out.stdout, "UP") {
			t.Errorf("lo in the pod: %q %q", out.stdout, out.stderr)
		}
	}
	if r := e.runCmd(cmdOf("ip", "netns", "identify", fmt.Sprint(d.Pid))); strings.TrimSpace(r.stdout) != name {
		t.Errorf("ip netns identify %d = %q, want %q", d.Pid, r.stdout, name)
	}
	// ps and top show the pod and its pause.
	ps := e.must("ps")
	if !strings.Contains(ps, name) || !strings.Contains(ps, "running") {
		t.Errorf("ps:\n%s", ps)
	}
	top := e.must("top", name)
	if lines := strings.Split(strings.TrimSpace(top), "\n"); len(lines) != 2 || !strings.HasPrefix(strings.Join(strings.Fields(lines[1]), " "), fmt.Sprintf("1 %d 0 S (sleeping) - pause", d.Pid)) {
		t.Errorf("top:\n%s", top)
	}
}

func TestDefaultRootIsolation(t *testing.T) {
	e := newEnv(t)
	marker := filepath.Join(t.TempDir(), "host-marker")
	if err := os.WriteFile(marker, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	name, d := e.create()
	r := e.inPod(name, "/bin/sh", "-c", "test -e "+marker+" && echo reachable; cat /proc/self/mountinfo; ls -a /etc; touch /usr/x 2>&1; touch /tmp/x && echo tmp-ok; test -e /etc/shadow && echo shadow; true")
	if r.code != 0 {
		t.Fatalf("in pod: %d %s", r.code, r.stderr)
	}
	out := r.stdout
	if strings.Contains(out, "reachable") || strings.Contains(out, "shadow") {
		t.Errorf("host file reachable from the pod:\n%s", out)
	}
	if !strings.Contains(out, "Read-only file system") || !strings.Contains(out, "tmp-ok") {
		t.Errorf("/usr should be read-only and /tmp writable:\n%s", out)
	}
	for _, f := range []string{"passwd", "group", "hostname", "hosts", "resolv.conf"} {
		if !strings.Contains(out, f) {
			t.Errorf("/etc lacks %s:\n%s", f, out)
		}
	}
	// The pod's root is a tmpfs and nothing of the state root is mounted in it.
	if !strings.Contains(out, " / / rw,nosuid,nodev") || strings.Contains(out, e.root+"/") {
		t.Errorf("pod mountinfo:\n%s", out)
	}
	dests := map[string]string{}
	for _, m := range d.Mounts {
		dests[m.Destination] = m.Type
	}
	for dst, typ := range map[string]string{"/": "tmpfs", "/proc": "proc", "/sys": "sysfs", "/dev": "tmpfs", "/dev/pts": "devpts", "/dev/shm": "tmpfs", "/tmp": "tmpfs"} {
		if dests[dst] != typ {
			t.Errorf("mount %s: type %q, want %q (all: %v)", dst, dests[dst], typ, dests)
		}
	}
	// /tmp: writable by everyone, sticky, a mount of its own (a bind) on
	// the root's own tmpfs (no superblock of its own).
	r = e.inPod(name, "/bin/sh", "-c", "stat -c '%a %d' /tmp; stat -c %d /; grep -c ' /tmp ' /proc/self/mountinfo")
	if f := strings.Fields(r.stdout); len(f) != 4 || f[0] != "1777" || f[1] != f[2] || f[3] != "1" {
		t.Errorf("/tmp: mode, device; the root's device; mounts at /tmp: %q %q", r.stdout, r.stderr)
	}
	// /etc's passwd and group are the host's, read-only even to the pod's
	// root (one copy for every pod).
	r = e.inPod(name, "/bin/sh", "-c", "cat /etc/passwd; echo >> /etc/group")
	host, _ := os.ReadFile("/etc/passwd")
	if r.stdout != string(host) || !strings.Contains(r.stderr, "Read-only file system") {
		t.Errorf("/etc in the pod: %q %q, want the host's passwd and a read-only group", r.stdout, r.stderr)
	}
	// /dev has its nodes, and ptys come from the pod's own devpts.
	r = e.inPod(name, "/bin/sh", "-c", "for n in null zero full random urandom tty ptmx pts shm; do test -e /dev/$n || echo missing $n; done; echo x > /dev/null && head -c1 /dev/zero | od -An -tx1")
	if strings.Contains(r.stdout, "missing") || !strings.Contains(r.stdout, "00") {
		t.Errorf("/dev: %q %q", r.stdout, r.stderr)
	}
}

// dirRoot makes a directory root filesystem whose programs come from the
// host's /usr through a read-only volume.
func dirRoot(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"usr/bin", "etc", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []string{"bin", "sbin", "lib", "lib64"} {
		if err := os.Symlink("usr/"+l, filepath.Join(dir, l)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "data", "marker"), []byte("in-dir-root\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestDirectoryRoot(t *testing.T) {
	e := newEnv(t)
	dir := dirRoot(t)
	vol := t.TempDir()
	if err := os.WriteFile(filepath.Join(vol, "v"), []byte("volume\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	name, d := e.create("--rootfs", dir, "-v", "/usr:/usr:ro", "-v", vol+":/mnt/vol", "--hostname", "dirhost")
	if d.Rootfs != dir || d.Hostname != "dirhost" {
		t.Errorf("inspect: rootfs %q hostname %q", d.Rootfs, d.Hostname)
	}
	r := e.inPod(name, "/bin/sh", "-c", "cat /data/marker /mnt/vol/v; hostname; cat /etc/hostname; echo w > /mnt/vol/w; test -e "+dir+" && echo host-path; true")
	if r.code != 0 || r.stdout != "in-dir-root\nvolume\ndirhost\ndirhost\n" {
		t.Errorf("in dir root: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if b, err := os.ReadFile(filepath.Join(vol, "w")); err != nil || string(b) != "w\n" {
		t.Errorf("write through volume: %q %v", b, err)
	}
	e.must("rm", name)
	// The directory keeps its files; the mount points podsb made stay empty.
	if b, err := os.ReadFile(filepath.Join(dir, "data", "marker")); err != nil || string(b) != "in-dir-root\n" {
		t.Errorf("dir root after rm: %q %v", b, err)
	}
}

func TestReadOnlyRootAndVolumes(t *testing.T) {
	e := newEnv(t)
	vol := t.TempDir()
	name, _ := e.create("--read-only", "-v", vol+":/ro:ro", "-v", vol+":/rw")
	r := e.inPod(name, "/bin/sh", "-c", "touch /x 2>/dev/null && echo root-writable; touch /ro/x 2>/dev/null && echo ro-writable; touch /rw/x && echo rw-ok; touch /tmp/x && echo tmp-ok; touch /dev/shm/x && echo shm-ok")
	if r.stdout != "rw-ok\ntmp-ok\nshm-ok\n" {
		t.Errorf("read-only pod: %q %q", r.stdout, r.stderr)
	}
}

func TestKilledPauseShowsStoppedAndIsRemoved(t *testing.T) {
	e := newEnv(t)
	name, d := e.create()
	if err := unix.Kill(d.Pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := waitDead(d.Pid, d.StartTime, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if ps := e.must("ps"); strings.Contains(ps, name) {
		t.Errorf("ps without -a lists a stopped pod:\n%s", ps)
	}
	var rows []struct {
		Name   string `json:"name"`
		Status string `json:"status"`
		PID    int    `json:"pid"`
	}
	if err := json.Unmarshal([]byte(e.must("ps", "-a", "--format", "json")), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Name != name || rows[0].Status != "stopped" || rows[0].PID != 0 {
		t.Errorf("ps -a: %+v", rows)
	}
	if r := e.run("top", name); r.code != 125 || !strings.Contains(r.stderr, "not running") {
		t.Errorf("top of a stopped pod: %+v", r)
	}
	e.must("rm", name)
	checkNoLeaks(t, e.root, e.names, nil)
}

func TestRmEndsEveryProcessAndIsIdempotent(t *testing.T) {
	e := newEnv(t)
	name, d := e.create()
	// A process started in the pod dies with it.
	r := e.inPod(name, "/bin/sh", "-c", "sleep 1000 >/dev/null 2>&1 & echo $!")
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	procs := e.must("top", name)
	if !strings.Contains(procs, "sleep 1000") {
		t.Fatalf("top:\n%s", procs)
	}
	var rows []struct {
		Processes int `json:"processes"`
	}
	json.Unmarshal([]byte(e.must("ps", "--format", "json")), &rows)
	if len(rows) != 1 || rows[0].Processes != 2 {
		t.Errorf("ps processes: %+v", rows)
	}
	hostPIDs := podHostPIDs(t, d)
	if out := e.must("rm", name); strings.TrimSpace(out) != name {
		t.Errorf("rm printed %q", out)
	}
	for _, pid := range hostPIDs {
		if err := waitDead(pid.pid, pid.start, 2*time.Second); err != nil {
			t.Errorf("process %d of the pod survived rm", pid.pid)
		}
	}
	if r := e.run("rm", "-f", name, "never-existed"); r.code != 0 {
		t.Errorf("rm -f again: %+v", r)
	}
	if r := e.run("rm", name); r.code != 125 || !strings.Contains(r.stderr, "no such pod") {
		t.Errorf("rm of a removed pod: %+v", r)
	}
}

type hostPID struct {
	pid   int
	start uint64
}

// podHostPIDs lists the host PIDs of a pod's processes (from ns inodes).
func podHostPIDs(t *testing.T, d inspectDoc) []hostPID {
	t.Helper()
	want := nsIno(t, fmt.Sprintf("/proc/%d/ns/pid", d.Pid))
	ents, _ := os.ReadDir("/proc")
	var out []hostPID
	for _, en := range ents {
		var pid int
		if _, err := fmt.Sscan(en.Name(), &pid); err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(fmt.Sprintf("/proc/%d/ns/pid", pid), &st) != nil || st.Ino != want {
			continue
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) < 20 { // gone since
			continue
		}
		var start uint64
		fmt.Sscan(f[19], &start)
		out = append(out, hostPID{pid, start})
	}
	return out
}

// A create that died before writing any state leaves a pod that rm must
// still clean up, pause included, found through the pinned PID namespace.
func TestRmHalfMadePod(t *testing.T) {
	e := newEnv(t)
	name, d := e.create()
	if err := os.Remove(filepath.Join(e.root, name, "state.json")); err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		Name, Status string
	}
	json.Unmarshal([]byte(e.must("ps", "-a", "--format", "json")), &rows)
	if len(rows) != 1 || rows[0].Status != "creating" {
		t.Errorf("ps -a of a half-made pod: %+v", rows)
	}
	e.must("rm", "-f", name)
	if err := waitDead(d.Pid, d.StartTime, 2*time.Second); err != nil {
		t.Errorf("pause of a half-made pod survived rm")
	}
	checkNoLeaks(t, e.root, e.names, e.pids)
}
