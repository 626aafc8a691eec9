package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podsb/podsb/sandbox"
)

// rootlessUID is the user the rootless tests run podsb as: nobody, a user
// every Debian has (newuidmap wants a name for the user).
const rootlessUID, rootlessGID = 65534, 65534

// rootlessEnv runs the built podsb as rootlessUID, with an
// XDG_RUNTIME_DIR of the user's own (mode 0700), so that the state root is
// the rootless default, XDG_RUNTIME_DIR/podsb.
type rootlessEnv struct {
	t     testing.TB
	bin   string
	dir   string // world-searchable parent of xdg, root's
	xdg   string
	root  string
	names map[string]bool
	pids  map[int]uint64
}

func newRootlessEnv(t testing.TB) *rootlessEnv {
	t.Helper()
	bin := podsbBinary(t)
	dir, err := os.MkdirTemp("", "podsb-rootless-")
	if err != nil {
		t.Fatal(err)
	}
	e := &rootlessEnv{t: t, bin: bin, dir: dir, xdg: filepath.Join(dir, "xdg"), names: map[string]bool{}, pids: map[int]uint64{}}
	e.root = filepath.Join(e.xdg, "podsb")
	t.Cleanup(e.cleanup)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(e.xdg, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(e.xdg, rootlessUID, rootlessGID); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *rootlessEnv) name() string {
	n := fmt.Sprintf("rl%d", time.Now().UnixNano()%1e9)
	e.names[n] = true
	return n
}

// cmd is podsb args as the user, in e's XDG_RUNTIME_DIR, with PODSB_ROOT
// unset.
func (e *rootlessEnv) cmd(args ...string) *exec.Cmd {
	cmd := exec.Command(e.bin, args...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin", "XDG_RUNTIME_DIR=" + e.xdg}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: rootlessUID, Gid: rootlessGID}}
	return cmd
}

func (e *rootlessEnv) run(args ...string) result {
	e.t.Helper()
	return runResult(e.t, e.cmd(args...))
}

func runResult(t testing.TB, cmd *exec.Cmd) result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", cmd.Args, err)
	}
	return result{out.String(), errb.String(), code}
}

func (e *rootlessEnv) must(args ...string) string {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 0 {
		e.t.Fatalf("podsb %v as uid %d: exit %d: %s", args, rootlessUID, r.code, r.stderr)
	}
	return r.stdout
}

func (e *rootlessEnv) inspect(name string) sandbox.State {
	e.t.Helper()
	var docs []sandbox.State
	if err := json.Unmarshal([]byte(e.must("inspect", name)), &docs); err != nil || len(docs) != 1 {
		e.t.Fatalf("inspect %s: %v %v", name, docs, err)
	}
	if docs[0].Pid > 0 {
		e.pids[docs[0].Pid] = docs[0].StartTime
	}
	return docs[0]
}

func (e *rootlessEnv) cleanup() {
	t := e.t
	if _, err := os.Stat(e.bin); err == nil {
		if r := e.run("rm", "-f", "--all"); r.code != 0 {
			t.Errorf("cleanup: podsb rm -f --all: exit %d: %s", r.code, r.stderr)
		}
	}
	checkNoLeaks(t, e.root, e.names, e.pids)
	if m := mountsUnder(t, e.dir); len(m) > 0 {
		t.Errorf("leaked mounts %v", m)
	}
	os.RemoveAll(e.dir)
}

// TestRootless is issue 17's part 5: a user other than root makes a pod
// with --network none in a user namespace of its own, mapping the user's
// own IDs to 0 (no subordinate IDs configured for it), under
// $XDG_RUNTIME_DIR/podsb; exec, ps, inspect and rm work; /proc/self/uid_map
// inside is that map; pause is PID 1 and reaps orphans; a file the pod's
// root writes to a volume of the user's is the user's on the host; the
// handles (links to pause's /proc/PID/ns) work with nsenter as the user;
// rm leaves no process, mount or file.
func TestRootless(t *testing.T) {
	e := newRootlessEnv(t)
	name := e.name()
	vol := filepath.Join(e.dir, "vol")
	if err := os.Mkdir(vol, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chown(vol, rootlessUID, rootlessGID)
	if out := e.must("create", "--network", "none", "-v", vol+":/data", name); strings.TrimSpace(out) != name {
		t.Errorf("create printed %q", out)
	}
	fi, err := os.Stat(filepath.Join(e.root, name))
	if err != nil {
		t.Fatalf("state directory in the rootless default root: %v", err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != rootlessUID || fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory: uid %d, mode %v", st.Uid, fi.Mode())
	}
	d := e.inspect(name)
	if d.Rootless == nil {
		t.Fatalf("inspect: no rootless maps: %+v", d)
	}
	if ps := e.must("ps"); !strings.Contains(ps, name) || !strings.Contains(ps, "running") {
		t.Errorf("ps:\n%s", ps)
	}
	// The maps, the user and pause, from inside.
	out := e.must("exec", name, "--", "sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; cat /proc/1/comm; hostname")
	want := fmt.Sprintf("0 %d 1\n0 %d 1\n0\n0\npause\n%s\n", rootlessUID, rootlessGID, name)
	if got := normalizeMaps(out); got != want {
		t.Errorf("in the pod:\n%s\nwant\n%s", got, want)
	}
	// On the host, pause is the user's, in the pod's user namespace.
	if status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.Pid)); err != nil || !strings.Contains(string(status), fmt.Sprintf("\nUid:\t%d\t", rootlessUID)) {
		t.Errorf("pause (PID %d) on the host: not uid %d: %v", d.Pid, rootlessUID, err)
	}
	if self, pod := nsIno(t, "/proc/self/ns/user"), nsIno(t, fmt.Sprintf("/proc/%d/ns/user", d.Pid)); self == pod {
		t.Errorf("pause is in the host's user namespace")
	}
	// The exit status passes through.
	if r := e.run("exec", name, "--", "sh", "-c", "exit 7"); r.code != 7 {
		t.Errorf("exit 7: got %d (%s)", r.code, r.stderr)
	}
	if r := e.run("exec", name, "--", "nosuch"); r.code != 127 {
		t.Errorf("nosuch: exit %d (%s)", r.code, r.stderr)
	}
	// The pod's root writes to the user's volume: the user's file.
	e.must("exec", name, "--", "sh", "-c", "echo x > /data/f")
	if fi, err := os.Stat(filepath.Join(vol, "f")); err != nil {
		t.Errorf("file from the pod: %v", err)
	} else if st := fi.Sys().(*syscall.Stat_t); st.Uid != rootlessUID || st.Gid != rootlessGID {
		t.Errorf("file the pod's root wrote: owned by %d:%d on the host, want %d:%d", st.Uid, st.Gid, rootlessUID, rootlessGID)
	}
	// An orphan is adopted and reaped by pause.
	e.must("exec", name, "--", "sh", "-c", "sleep 0.2 & exit 0")
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := e.must("exec", name, "--", "ps", "-eo", "ppid=,stat=,comm=")
		if !strings.Contains(r, "sleep") {
			if strings.Contains(r, " Z") {
				t.Errorf("zombie in the pod:\n%s", r)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("orphan never reaped:\n%s", r)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A detached command, reaped likewise.
	if r := e.run("exec", "-d", name, "--", "true"); r.code != 0 {
		t.Errorf("exec -d: exit %d: %s", r.code, r.stderr)
	}
	// The handles: links that nsenter follows, as the user (its
	// credentials kept: setgroups is denied in the namespace).
	ns := filepath.Join(e.root, name, "ns")
	nsenter := exec.Command("nsenter", "--preserve-credentials", "--user="+ns+"/user", "--mount="+ns+"/mnt",
		"--pid="+ns+"/pid", "--net="+ns+"/net", "--uts="+ns+"/uts", "--ipc="+ns+"/ipc", "hostname")
	nsenter.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: rootlessUID, Gid: rootlessGID}}
	if r := runResult(t, nsenter); r.code != 0 || strings.TrimSpace(r.stdout) != name {
		t.Errorf("nsenter through %s: exit %d, %q %q", ns, r.code, r.stdout, r.stderr)
	}
	if m := mountsUnder(t, e.dir); len(m) > 0 {
		t.Errorf("a rootless pod has mounts on the host: %v", m)
	}
	e.must("rm", name)
	if err := waitDead(d.Pid, d.StartTime, 5*time.Second); err != nil {
		t.Errorf("pause after rm: %v", err)
	}
	if ents := stateEntries(e.root); len(ents) != 0 {
		t.Errorf("state root after rm: %v", ents)
	}
	// gc works too, on a pod whose pause died.
	dead := e.name()
	e.must("create", "--network", "none", dead)
	dd := e.inspect(dead)
	syscall.Kill(dd.Pid, syscall.SIGKILL)
	if err := waitDead(dd.Pid, dd.StartTime, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// Its handles lead nowhere now: exec refuses, ps shows it stopped.
	wantFailure(t, e.run("exec", dead, "--", "true"), "not running")
	if ps := e.must("ps", "-a"); !strings.Contains(ps, "stopped") {
		t.Errorf("ps -a of a dead rootless pod:\n%s", ps)
	}
	if out := e.must("gc"); !strings.Contains(out, dead) {
		t.Errorf("gc printed %q, want %s", out, dead)
	}
	if ents := stateEntries(e.root); len(ents) != 0 {
		t.Errorf("state root after gc: %v", ents)
	}
}

// normalizeMaps squeezes the columns of uid_map lines.
func normalizeMaps(s string) string {
	var out []string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		out = append(out, strings.Join(strings.Fields(l), " "))
	}
	return strings.Join(out, "\n") + "\n"
}

// TestRootlessBadInput: what needs root is refused to a rootless user
// with one line that says so (exit 125), and leaves nothing behind.
func TestRootlessBadInput(t *testing.T) {
	e := newRootlessEnv(t)
	pod := e.name()
	e.must("create", "--network", "none", pod)
	unreadable := filepath.Join(e.dir, "closed")
	os.Mkdir(unreadable, 0o700) // root's
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bridge", []string{"create", e.name()}, "rootless: the bridge network needs root; use --network none"},
		{"bridge explicit", []string{"create", "--network", "bridge", e.name()}, "rootless: the bridge network needs root"},
		{"ports", []string{"create", "-p", "8080:80", e.name()}, "rootless: published ports need root"},
		{"host network", []string{"create", "--network", "host", e.name()}, "rootless: host namespaces need root"},
		{"host ipc", []string{"create", "--network", "none", "--ipc", "host", e.name()}, "rootless: host namespaces need root"},
		{"memory", []string{"create", "--network", "none", "--memory", "100m", e.name()}, "rootless: cgroup limits need root"},
		{"pids", []string{"create", "--network", "none", "--pids-limit", "10", e.name()}, "rootless: cgroup limits need root"},
		{"privileged", []string{"create", "--network", "none", "--privileged", e.name()}, "rootless: --privileged needs root"},
		{"userns auto", []string{"create", "--network", "none", "--userns", "auto", e.name()}, "rootless: --userns auto, --uidmap and --gidmap need root"},
		{"userns host", []string{"create", "--network", "none", "--userns", "host", e.name()}, "rootless: --userns host needs root"},
		{"unreadable volume", []string{"create", "--network", "none", "-v", unreadable + ":/x", e.name()}, "is not readable by user 65534"},
		{"run", []string{"run", pod, "--", "true"}, "rootless: podsb run needs root"},
		{"start", []string{"start", pod}, "rootless: podsb start needs root"},
		{"network prune", []string{"network", "prune"}, "rootless: podsb network prune needs root"},
		{"exec -u", []string{"exec", "-u", "1000", pod, "--", "true"}, "rootless: pod " + pod + " maps only your own user and group"},
		{"no such pod", []string{"exec", "nosuch", "--", "true"}, "no such pod"},
		{"root's state root", []string{"--root", "/run/podsb", "ps"}, "permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := stateEntries(e.root)
			wantFailure(t, e.run(tc.args...), tc.want)
			if after := stateEntries(e.root); !slices.Equal(before, after) {
				t.Errorf("state root %v -> %v", before, after)
			}
		})
	}
	// Without XDG_RUNTIME_DIR and --root.
	cmd := e.cmd("ps")
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	wantFailure(t, runResult(t, cmd), "rootless: $XDG_RUNTIME_DIR is not set: give --root DIR")
	// A state root of another user's is not trusted.
	other := filepath.Join(e.dir, "other")
	os.Mkdir(other, 0o755)
	os.Chown(other, 1234, 1234)
	wantFailure(t, e.run("--root", other, "create", "--network", "none", e.name()), "untrusted state root "+other)
	if r := e.run("exec", pod, "--", "true"); r.code != 0 {
		t.Errorf("exec after the refusals: exit %d: %s", r.code, r.stderr)
	}
}

// withSubIDs gives the rootless user the subordinate IDs start:65536 in
// /etc/subuid and /etc/subgid (newuidmap reads only those) for the test,
// and puts the files back byte for byte afterwards.
func withSubIDs(t testing.TB, start uint32) {
	t.Helper()
	withSubIDRange(t, start, 65536)
}

// TestRootlessSubIDs: with subordinate IDs in /etc/subuid and /etc/subgid,
// a rootless pod maps 0 to the user and 1-65536 to them, written by
// newuidmap and newgidmap; another user of the pod is that subordinate ID
// on the host (its processes and files), root is still the user.
func TestRootlessSubIDs(t *testing.T) {
	const start = 600000000
	e := newRootlessEnv(t)
	withSubIDs(t, start)
	vol := filepath.Join(e.dir, "vol")
	os.Mkdir(vol, 0o777)
	os.Chmod(vol, 0o777)
	name := e.name()
	if out := e.must("create", "--network", "none", "-v", vol+":/data", name); strings.TrimSpace(out) != name {
		t.Errorf("create printed %q", out)
	}
	d := e.inspect(name)
	want := []sandbox.IDMap{{ContainerID: 0, HostID: rootlessUID, Size: 1}, {ContainerID: 1, HostID: start, Size: 65536}}
	if d.Rootless == nil || !slices.Equal(d.Rootless.UIDMap, want) {
		t.Errorf("inspect: rootless maps %+v, want uids %v", d.Rootless, want)
	}
	out := e.must("exec", name, "--", "sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u")
	if got, w := normalizeMaps(out), fmt.Sprintf("0 %d 1\n1 %d 65536\n0 %d 1\n1 %d 65536\n0\n", rootlessUID, start, rootlessGID, start); got != w {
		t.Errorf("in the pod:\n%s\nwant\n%s", got, w)
	}
	// User 1000 of the pod is subordinate ID start+999 on the host.
	if out := e.must("exec", "-u", "1000:1000", name, "--", "sh", "-c", "id -u; id -g; echo x > /data/u; echo $$"); !strings.HasPrefix(out, "1000\n1000\n") {
		t.Errorf("exec -u 1000:1000: %q", out)
	}
	e.must("exec", name, "--", "sh", "-c", "echo x > /data/r")
	for f, id := range map[string]uint32{"u": start + 999, "r": rootlessUID} {
		fi, err := os.Stat(filepath.Join(vol, f))
		if err != nil {
			t.Errorf("file %s: %v", f, err)
			continue
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != id {
			t.Errorf("file %s on the host: uid %d, want %d", f, st.Uid, id)
		}
	}
	e.must("exec", "-d", "-u", "1000", name, "--", "sleep", "30")
	found := false
	ents, _ := os.ReadDir("/proc")
	for _, en := range ents {
		b, err := os.ReadFile("/proc/" + en.Name() + "/status")
		if err == nil && strings.Contains(string(b), "\nPPid:\t"+fmt.Sprint(d.Pid)+"\n") && strings.Contains(string(b), "Name:\tsleep\n") {
			found = true
			if !strings.Contains(string(b), fmt.Sprintf("\nUid:\t%d\t", start+999)) {
				t.Errorf("the pod's user 1000 on the host is not %d:\n%s", start+999, b)
			}
		}
	}
	if !found {
		t.Errorf("no sleep below pause %d on the host", d.Pid)
	}
	e.must("rm", name)
	if ents := stateEntries(e.root); len(ents) != 0 {
		t.Errorf("state root after rm: %v", ents)
	}
}

// TestRootlessForgedState: a rootless pod's handles are links, not pins,
// so a state record that names another process (a reused PID, or an edit
// by the user) must not lead exec there: pod a's record made to name pod
// b's pause (its PID and start time) is not running, and exec into a runs
// nothing in b.
func TestRootlessForgedState(t *testing.T) {
	e := newRootlessEnv(t)
	a, b := e.name(), e.name()
	e.must("create", "--network", "none", a)
	e.must("create", "--network", "none", "--hostname", "bee", b)
	e.inspect(a)
	db := e.inspect(b)
	path := filepath.Join(e.root, a, "state.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	st["pid"], st["pauseStartTime"] = db.Pid, db.StartTime
	forged, _ := json.Marshal(st)
	if err := os.WriteFile(path, forged, 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.run("exec", a, "--", "hostname")
	if strings.Contains(r.stdout, "bee") {
		t.Fatalf("exec into %s ran in %s: %+v", a, b, r)
	}
	wantFailure(t, r, "not running")
	// Put it back for rm to find a's pause.
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if out := strings.TrimSpace(e.must("exec", a, "--", "hostname")); out != a {
		t.Errorf("hostname of %s: %q", a, out)
	}
}
