package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/podsb/podsb/sandbox"
)

// usernsRange returns the first host uid and gid of a pod's user
// namespace, as inspect shows it, after checking it maps 65,536 IDs from 0.
func usernsRange(t *testing.T, d inspectDoc) (uint32, uint32) {
	t.Helper()
	u := d.UserNS
	if u == nil || !u.Auto || len(u.UIDMap) != 1 || len(u.GIDMap) != 1 {
		t.Fatalf("inspect: userNS %+v, want an automatic one of one line each", u)
	}
	for _, m := range [][]sandbox.IDMap{u.UIDMap, u.GIDMap} {
		if m[0].ContainerID != 0 || m[0].Size != sandbox.UserNSSize || m[0].HostID == 0 {
			t.Fatalf("inspect: map %+v, want 0:HOST:%d", m[0], sandbox.UserNSSize)
		}
	}
	return u.UIDMap[0].HostID, u.GIDMap[0].HostID
}

// TestUserNSAuto is issue 17's: root in a --userns auto pod is the pod's
// first mapped ID on the host. /proc/self/uid_map and gid_map inside are
// the allocated maps; a file root writes to a volume is owned by that ID
// on the host; pause runs as it; the host's /usr shows root's files as
// root's (idmapped) and an idmap volume its owners; the pinned user
// namespace handle works with nsenter --user; pause is PID 1 and reaps
// orphans.
func TestUserNSAuto(t *testing.T) {
	e := newEnv(t)
	vol := t.TempDir()
	os.Chmod(vol, 0o777)
	idv := t.TempDir()
	os.WriteFile(filepath.Join(idv, "owned"), nil, 0o644)
	hostname := filepath.Join(t.TempDir(), "file")
	os.WriteFile(hostname, []byte("a file volume\n"), 0o644)
	pod, d := e.create("--userns", "auto", "-v", vol+":/vol", "-v", idv+":/idv:idmap", "-v", hostname+":/tmp/file:ro")
	if out := e.must("exec", pod, "--", "cat", "/tmp/file"); out != "a file volume\n" {
		t.Errorf("a file volume under /tmp: %q", out)
	}
	uid, gid := usernsRange(t, d)

	want := fmt.Sprintf("0 %d %d", uid, sandbox.UserNSSize)
	for _, f := range []string{"uid_map", "gid_map"} {
		out := e.must("exec", pod, "--", "cat", "/proc/self/"+f)
		if got := strings.Join(strings.Fields(out), " "); got != want && f == "uid_map" || f == "gid_map" && got != fmt.Sprintf("0 %d %d", gid, sandbox.UserNSSize) {
			t.Errorf("/proc/self/%s in the pod: %q, want %q", f, out, want)
		}
	}
	if out := e.must("exec", pod, "--", "id", "-u"); strings.TrimSpace(out) != "0" {
		t.Errorf("id -u in the pod: %q, want 0", out)
	}

	// A file root makes in a volume is the mapped ID's on the host.
	e.must("exec", pod, "--", "sh", "-c", "echo x > /vol/made-by-root")
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(vol, "made-by-root"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != uid || st.Gid != gid {
		t.Errorf("file written by the pod's root: owner %d:%d on the host, want %d:%d", st.Uid, st.Gid, uid, gid)
	}
	// pause itself.
	if status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.Pid)); err != nil || !strings.Contains(string(status), fmt.Sprintf("\nUid:\t%d\t%d\t%d\t%d\n", uid, uid, uid, uid)) {
		t.Errorf("pause's uids on the host, want all %d: %v", uid, err)
	}
	// Owners as without a user namespace: the host's /usr, the /etc
	// podsb writes, an idmap volume.
	for _, p := range []string{"/usr/bin", "/etc/hostname", "/etc/passwd", "/tmp", "/idv/owned", "/"} {
		if out := e.must("exec", pod, "--", "stat", "-c", "%u:%g", p); strings.TrimSpace(out) != "0:0" {
			t.Errorf("owner of %s in the pod: %q, want 0:0", p, out)
		}
	}
	if out := e.must("exec", pod, "--", "stat", "-c", "%u", "/vol"); strings.TrimSpace(out) != "65534" {
		t.Errorf("owner of a volume of the host's root, not idmapped, in the pod: %q, want 65534 (unmapped)", out)
	}

	// The pinned handle, ns/user, is the pod's user namespace.
	ns := filepath.Join(e.root, pod, "ns")
	out := e.runCmd(exec.Command("nsenter", "--user="+ns+"/user", "--pid="+ns+"/pid", "--net="+ns+"/net", "--mount="+ns+"/mnt", "--", "cat", "/proc/self/uid_map"))
	if got := strings.Join(strings.Fields(out.stdout), " "); out.code != 0 || got != want {
		t.Errorf("nsenter --user on the handles: exit %d, uid_map %q (%s), want %q", out.code, out.stdout, out.stderr, want)
	}

	// pause is PID 1 and adopts and reaps an orphan.
	e.must("exec", pod, "--", "sh", "-c", "sleep 0.2 & exit 0")
	time.Sleep(time.Second)
	top := e.must("top", pod)
	if !strings.Contains(top, "pause") || strings.Contains(top, "Z (zombie)") || strings.Contains(top, "sleep 0.2") {
		t.Errorf("after an orphan exited, top shows:\n%s", top)
	}
	if out := e.must("exec", pod, "--", "cat", "/proc/1/comm"); strings.TrimSpace(out) != "pause" {
		t.Errorf("PID 1 in the pod: %q", out)
	}
	// exec -d: adopted by pause, still the mapped root.
	e.must("exec", "-d", pod, "--", "sleep", "1000")
	top = e.must("top", pod)
	var sleepHost int
	for _, l := range strings.Split(top, "\n") {
		if f := strings.Fields(l); len(f) > 5 && strings.Contains(l, "sleep 1000") {
			sleepHost, _ = strconv.Atoi(f[1])
			if f[2] != "1" {
				t.Errorf("exec -d's command: PPID %s in the pod, want 1", f[2])
			}
		}
	}
	if status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", sleepHost)); err != nil || !strings.Contains(string(status), fmt.Sprintf("\nUid:\t%d\t", uid)) {
		t.Errorf("exec -d's command on the host (PID %d): not uid %d: %v", sleepHost, uid, err)
	}
}

// TestUserNSRanges is issue 17's: concurrent creates get disjoint ranges,
// recorded in the state root (each create is a process of its own, so the
// records are what the next one reads: they survive podsb's exit), and rm
// releases a range for the next pod.
func TestUserNSRanges(t *testing.T) {
	e := newEnv(t)
	const n = 4
	names := make([]string, n)
	var wg sync.WaitGroup
	for i := range names {
		names[i] = e.name()
		wg.Add(1)
		go func(name string) {
			defer wg.Done()
			if r := e.run("create", "--userns", "auto", name); r.code != 0 {
				t.Errorf("create %s: exit %d: %s", name, r.code, r.stderr)
			}
		}(names[i])
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	starts := map[uint32]string{}
	for _, name := range names {
		uid, gid := usernsRange(t, e.inspect(name))
		for other, o := range starts {
			if uid < other+sandbox.UserNSSize && other < uid+sandbox.UserNSSize {
				t.Errorf("pods %s and %s: uid ranges from %d and %d overlap", name, o, uid, other)
			}
		}
		starts[uid] = name
		if uid != gid {
			t.Logf("pod %s: uids from %d, gids from %d", name, uid, gid)
		}
		// The machine's record.
		if _, err := os.Stat(sandbox.UserNSRecord(e.root, name)); err != nil {
			t.Errorf("record of %s's range: %v", name, err)
		}
	}
	// rm frees the range; the next pod takes the lowest free one.
	low := slices.Min(slices.Collect(func(yield func(uint32) bool) {
		for s := range starts {
			if !yield(s) {
				return
			}
		}
	}))
	e.must("rm", starts[low])
	if _, err := os.Stat(sandbox.UserNSRecord(e.root, starts[low])); !os.IsNotExist(err) {
		t.Errorf("record of a removed pod: %v", err)
	}
	next, d := e.create("--userns", "auto")
	if uid, _ := usernsRange(t, d); uid != low {
		t.Errorf("pod %s after rm: uids from %d, want the freed %d", next, uid, low)
	}
	// rm of them all removes their records.
	e.must("rm", "--all")
	for _, name := range append(names, next) {
		if _, err := os.Stat(sandbox.UserNSRecord(e.root, name)); !os.IsNotExist(err) {
			t.Errorf("record of %s after rm --all: %v", name, err)
		}
	}
}

// TestUserNSPlantedFD is issue 17's: a process of a --userns auto pod that
// escapes the pod's mount namespace through an fd planted from the host
// is still an unprivileged ID there. Through a host directory's fd it
// cannot write a file of the host's root nor make one; reopening a host
// root's file given as stdin for writing fails. In a pod without a user
// namespace the same writes succeed: the test fails without the fix.
func TestUserNSPlantedFD(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		userns string
		denied bool
	}{{"auto", true}, {"host", false}} {
		t.Run(tc.userns, func(t *testing.T) {
			pod, _ := e.create("--userns", tc.userns)
			dir := t.TempDir()
			os.Chmod(dir, 0o755)
			file := filepath.Join(dir, "root-owned")
			os.WriteFile(file, []byte("original\n"), 0o644)

			// A host directory's fd as fd 3 of a process that joins the
			// pod by its handles (nsenter keeps inherited fds).
			d, err := os.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			ns := filepath.Join(e.root, pod, "ns")
			args := []string{"--pid=" + ns + "/pid", "--net=" + ns + "/net", "--mount=" + ns + "/mnt"}
			if tc.userns == "auto" {
				args = append([]string{"--user=" + ns + "/user"}, args...)
			}
			cmd := exec.Command("nsenter", append(args, "--", "sh", "-c", "echo planted > /proc/self/fd/3/root-owned; echo new > /proc/self/fd/3/made")...)
			cmd.ExtraFiles = []*os.File{d}
			r := e.runCmd(cmd)
			b, _ := os.ReadFile(file)
			_, madeErr := os.Stat(filepath.Join(dir, "made"))
			if tc.denied {
				if string(b) != "original\n" || madeErr == nil || !strings.Contains(r.stderr, "Permission denied") {
					t.Errorf("through a planted fd: root-owned file %q, made: %v, stderr %q; want both writes denied", b, madeErr == nil, r.stderr)
				}
			} else if string(b) != "planted\n" || madeErr != nil {
				t.Errorf("host user namespace: file %q, made %v (%s); the test needs the writes to work there", b, madeErr, r.stderr)
			}

			// A host root's file as stdin of podsb exec, reopened for
			// writing through /proc/self/fd/0.
			os.WriteFile(file, []byte("original\n"), 0o644)
			in, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			cmd = exec.Command(e.bin, "--root", e.root, "exec", "-i", pod, "--", "sh", "-c", "echo reopened > /proc/self/fd/0")
			cmd.Stdin = in
			r = e.runCmd(cmd)
			b, _ = os.ReadFile(file)
			if tc.denied && (string(b) != "original\n" || r.code == 0) {
				t.Errorf("reopening stdin for writing: file %q, exit %d; want it denied", b, r.code)
			}
			if !tc.denied && string(b) != "reopened\n" {
				t.Errorf("host user namespace: file %q after reopening stdin (%s); the test needs it to work there", b, r.stderr)
			}
		})
	}
}

// TestUserNSBadInput is issue 17's bad input: each gets exit 125, one line,
// and nothing made.
func TestUserNSBadInput(t *testing.T) {
	e := newEnv(t)
	taken, _ := e.create("--uidmap", "0:3000000:65536")
	auto, _ := e.create("--userns", "auto")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown word", []string{"--userns", "private"}, `user namespace "private": want host or auto`},
		{"malformed map", []string{"--uidmap", "0:100000"}, "--uidmap: ID map \"0:100000\": want CONTAINER:HOST:SIZE"},
		{"not a number", []string{"--gidmap", "0:x:1"}, `"x" is not a number`},
		{"overlapping lines", []string{"--uidmap", "0:4000000:100", "--uidmap", "50:5000000:10"}, "overlaps 0:4000000:100"},
		{"no root", []string{"--uidmap", "1:4000000:100"}, "ID 0 of the pod is not mapped"},
		{"the host's root", []string{"--uidmap", "0:0:65536"}, "maps the host's root into the pod"},
		{"auto and a map", []string{"--userns", "auto", "--uidmap", "0:4000000:10"}, "give one or the other"},
		{"host network", []string{"--userns", "auto", "--network", "host"}, "the host's network"},
		{"privileged", []string{"--userns", "auto", "--privileged"}, "--privileged"},
		{"sys_admin", []string{"--userns", "auto", "--cap-add", "sys_admin"}, "CAP_SYS_ADMIN"},
		{"another pod's IDs", []string{"--uidmap", "0:3000100:10"}, "overlap those of pod " + taken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, mounts := stateEntries(e.root), mountsUnder(t, e.root)
			records := ownRecords(e.root)
			wantFailure(t, e.run(append(append([]string{"create"}, tc.args...), e.name())...), tc.want)
			if after := stateEntries(e.root); !slices.Equal(before, after) {
				t.Errorf("state root %v -> %v", before, after)
			}
			if after := mountsUnder(t, e.root); len(after) != len(mounts) {
				t.Errorf("mounts %v -> %v", mounts, after)
			}
			if after := ownRecords(e.root); !slices.Equal(after, records) {
				t.Errorf("records %v -> %v", records, after)
			}
		})
	}
	// No CAP_SYS_ADMIN for a userns pod's commands either.
	for _, args := range [][]string{{"--cap-add", "sys_admin"}, {"--cap-add", "all"}, {"--privileged"}} {
		wantFailure(t, e.run(append(append([]string{"exec"}, args...), auto, "--", "true")...), "no CAP_SYS_ADMIN (or --privileged) for its commands")
	}
	// Nor for its containers.
	for _, args := range [][]string{{"--cap-add", "sys_admin"}, {"--privileged"}} {
		before := stateEntries(filepath.Join(e.root, auto))
		wantFailure(t, e.run(append(append([]string{"run"}, args...), auto, "--", "true")...), "no CAP_SYS_ADMIN (or --privileged) for its commands")
		if after := stateEntries(filepath.Join(e.root, auto)); !slices.Equal(before, after) {
			t.Errorf("run %v: pod directory %v -> %v", args, before, after)
		}
	}
	// gc removes a stopped one and frees its range.
	ad := e.inspect(auto)
	syscall.Kill(ad.Pid, syscall.SIGKILL)
	if err := waitDead(ad.Pid, ad.StartTime, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	e.must("gc")
	if _, err := os.Stat(sandbox.UserNSRecord(e.root, auto)); !os.IsNotExist(err) {
		t.Errorf("range record of a pod gc removed: %v", err)
	}

	// An exhausted parent range: the subuid and subgid files hold one
	// range of 65,536 for containers, which the first pod takes.
	sub := filepath.Join(t.TempDir(), "subid")
	os.WriteFile(sub, []byte("containers:6000000:65536\n"), 0o644)
	withSub := func(args ...string) result {
		cmd := exec.Command(e.bin, append([]string{"--root", e.root}, args...)...)
		cmd.Env = append(os.Environ(), "PODSB_SUBUID="+sub, "PODSB_SUBGID="+sub)
		return e.runCmd(cmd)
	}
	first := e.name()
	if r := withSub("create", "--network", "none", "--userns", "auto", first); r.code != 0 {
		t.Fatalf("create with a one-pod range: exit %d: %s", r.code, r.stderr)
	}
	if uid, _ := usernsRange(t, e.inspect(first)); uid != 6000000 {
		t.Errorf("pod from the subuid file: uids from %d, want 6000000", uid)
	}
	before := stateEntries(e.root)
	wantFailure(t, withSub("create", "--network", "none", "--userns", "auto", e.name()), "no free range of 65536 IDs left for containers in "+sub)
	if after := stateEntries(e.root); !slices.Equal(before, after) {
		t.Errorf("state root %v -> %v", before, after)
	}
}

// TestUserNSFastExec: exec's fast path runs a --userns auto pod's join
// record, which passes the pinned user namespace to pause run; each way,
// the command is the pod's root in the pod's namespace with the pod's
// capabilities, and a -u user is that user there.
func TestUserNSFastExec(t *testing.T) {
	requireFastPath(t)
	e := newEnv(t)
	pod, _ := e.create("--userns", "auto")
	if _, err := os.Stat(filepath.Join(e.root, pod, "join")); err != nil {
		t.Fatalf("join record of a userns pod: %v", err)
	}
	for _, args := range [][]string{
		{"exec", pod, "--", "sh", "-c", "id; cat /proc/self/uid_map /proc/self/gid_map; grep ^Cap /proc/self/status"},
		{"exec", "-u", "1000:1000", pod, "--", "id"},
		{"exec", pod, "--", "nosuch"},
	} {
		fast, slow := e.runFast(true, "", args...), e.runFast(false, "", args...)
		if fast != slow {
			t.Errorf("podsb %v: fast path %+v, Go %+v", args, fast, slow)
		}
	}
	if out := e.runFast(true, "", "exec", pod, "--", "id", "-u"); strings.TrimSpace(out.stdout) != "0" {
		t.Errorf("id -u on the fast path: %+v", out)
	}
}

// ownRecords lists the machine's user namespace records of state root
// root (sandbox.UserNSRecords), sorted.
func ownRecords(root string) []string {
	suffix := strings.TrimPrefix(filepath.Base(sandbox.UserNSRecord(root, "x")), "x")
	ents, _ := os.ReadDir(sandbox.UserNSRecords)
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), suffix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestUserNSMachineWide: --userns auto ranges are unique on the machine,
// not per state root. Pods of two state roots, made concurrently, get
// disjoint ranges, each recorded once in the machine's record with its
// root; an explicit map overlapping another root's pod is refused with
// that pod and root named; the record of a pod whose pause died is
// reclaimed by gc of its root, and rm releases the other.
func TestUserNSMachineWide(t *testing.T) {
	a, b := newEnv(t), newEnv(t)
	const n = 3
	type pod struct {
		e    *env
		name string
	}
	var pods []pod
	var wg sync.WaitGroup
	for i := range 2 * n {
		e := a
		if i%2 == 1 {
			e = b
		}
		p := pod{e, e.name()}
		pods = append(pods, p)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := p.e.run("create", "--userns", "auto", p.name); r.code != 0 {
				t.Errorf("create %s: exit %d: %s", p.name, r.code, r.stderr)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	type span struct{ uid, gid uint32 }
	got := map[string]span{}
	for _, p := range pods {
		uid, gid := usernsRange(t, p.e.inspect(p.name))
		for other, s := range got {
			if uid < s.uid+sandbox.UserNSSize && s.uid < uid+sandbox.UserNSSize {
				t.Errorf("pods %s and %s of two roots: uids from %d and %d overlap", p.name, other, uid, s.uid)
			}
			if gid < s.gid+sandbox.UserNSSize && s.gid < gid+sandbox.UserNSSize {
				t.Errorf("pods %s and %s of two roots: gids from %d and %d overlap", p.name, other, gid, s.gid)
			}
		}
		got[p.name] = span{uid, gid}
		b, err := os.ReadFile(sandbox.UserNSRecord(p.e.root, p.name))
		if err != nil || !strings.Contains(string(b), strconv.Quote(p.e.root)) {
			t.Errorf("record of %s: %q, %v; want one naming its root %s", p.name, b, err, p.e.root)
		}
	}
	if ra, rb := ownRecords(a.root), ownRecords(b.root); len(ra) != n || len(rb) != n {
		t.Errorf("records: %v of %s, %v of %s; want %d each", ra, a.root, rb, b.root, n)
	}
	// An explicit map over a pod of the other root.
	taken := got[pods[0].name].uid
	wantFailure(t, b.run("create", "--uidmap", fmt.Sprintf("0:%d:10", taken+5), b.name()),
		"overlap those of pod "+pods[0].name+" of state root "+a.root)
	// A pod whose pause died: gc of its root reclaims its record.
	dead := pods[1]
	d := dead.e.inspect(dead.name)
	syscall.Kill(d.Pid, syscall.SIGKILL)
	if err := waitDead(d.Pid, d.StartTime, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sandbox.UserNSRecord(dead.e.root, dead.name)); err != nil {
		t.Errorf("record of a dead pod before gc: %v", err)
	}
	dead.e.must("gc")
	if _, err := os.Stat(sandbox.UserNSRecord(dead.e.root, dead.name)); !os.IsNotExist(err) {
		t.Errorf("record of a pod gc removed: %v", err)
	}
	a.must("rm", "--all")
	b.must("rm", "--all")
	if ra, rb := ownRecords(a.root), ownRecords(b.root); len(ra)+len(rb) != 0 {
		t.Errorf("records after rm --all: %v %v", ra, rb)
	}
}

// TestUserNSStart: a stopped pod with a user namespace of its own starts
// again in a new user namespace with the same maps (its range record
// kept), which owns its new namespaces: every pinned handle, ns/user
// included, is replaced; the address, hostname and sysctls are the
// pod's again; exec and run work, pause reaps an orphan; rm releases the
// range and leaves nothing. Until 2026-12-06 start refused such a pod.
func TestUserNSStart(t *testing.T) {
	e, net := netEnv(t)
	vol := t.TempDir()
	os.Chmod(vol, 0o777)
	port := 20000 + rand.IntN(20000)
	pod, d := e.create(append(net, "--userns", "auto", "--hostname", "restarted", "--sysctl", "net.ipv4.ip_unprivileged_port_start=80", "-v", vol+":/vol", "-p", fmt.Sprintf("%d:80", port))...)
	addr := e.podIP(pod)
	uid, gid := usernsRange(t, d)
	maps := e.must("exec", pod, "--", "cat", "/proc/self/uid_map", "/proc/self/gid_map")
	record := sandbox.UserNSRecord(e.root, pod)
	before, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]uint64{}
	for _, ns := range d.Namespaces {
		inodes[string(ns.Type)] = ns.Inode
	}

	for _, stop := range []string{"stop", "kill"} {
		if stop == "stop" {
			// Pod.Stop (the CRI's StopPodSandbox): the network released.
			p, err := sandbox.Load(e.root, pod)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Stop(context.Background(), sandbox.RemoveOptions{}); err != nil {
				t.Fatal(err)
			}
		} else {
			// A pause killed, not stopped: its veth is still there.
			cur := e.inspect(pod)
			syscall.Kill(cur.Pid, syscall.SIGKILL)
			if err := waitDead(cur.Pid, cur.StartTime, 5*time.Second); err != nil {
				t.Fatal(err)
			}
		}
		e.must("start", pod)
		a := e.inspect(pod)
		if a.Status != "running" || a.Pid == d.Pid {
			t.Fatalf("after %s, start: status %s, pid %d (was %d)", stop, a.Status, a.Pid, d.Pid)
		}
		if u, g := usernsRange(t, a); u != uid || g != gid {
			t.Errorf("after %s, start: range %d:%d, want %d:%d", stop, u, g, uid, gid)
		}
		if after, err := os.ReadFile(record); err != nil || string(after) != string(before) {
			t.Errorf("after %s, start: range record %q (%v), want %q", stop, after, err, before)
		}
		// New namespaces, each pinned: the handle is the new pause's.
		for _, ns := range a.Namespaces {
			link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", a.Pid, filepath.Base(ns.Path)))
			if err != nil || !strings.Contains(link, "["+strconv.FormatUint(ns.Inode, 10)+"]") {
				t.Errorf("after %s, start: handle %s inode %d, pause's %s (%v)", stop, ns.Path, ns.Inode, link, err)
			}
			if ns.Inode == inodes[string(ns.Type)] {
				t.Errorf("after %s, start: %s namespace not new (inode %d)", stop, ns.Type, ns.Inode)
			}
			inodes[string(ns.Type)] = ns.Inode
		}
		d = a
		if out := e.must("exec", pod, "--", "cat", "/proc/self/uid_map", "/proc/self/gid_map"); out != maps {
			t.Errorf("after %s, start: maps in the pod %q, want %q", stop, out, maps)
		}
		// Owned by the new user namespace: its hostname and sysctl are the
		// pod's, its root binds port 79 (CAP_NET_BIND_SERVICE in the
		// network namespace's owner) and writes the volume as the mapped
		// ID.
		r := e.run("exec", pod, "--", "sh", "-c", "hostname; cat /proc/sys/net/ipv4/ip_unprivileged_port_start; ip -4 -o addr show eth0 | wc -l; echo x > /vol/f; stat -c %u:%g / /usr/bin; "+
			"python3 -c 'import socket; socket.socket().bind((\"127.0.0.1\", 79)); print(\"bound\")'")
		if r.stdout != "restarted\n80\n1\n0:0\n0:0\nbound\n" {
			t.Errorf("after %s, start: in the pod %q (%s)", stop, r.stdout, r.stderr)
		}
		if got := owner(t, filepath.Join(vol, "f")); got != fmt.Sprintf("%d:%d", uid, gid) {
			t.Errorf("after %s, start: file of the pod's root owned by %s, want %d:%d", stop, got, uid, gid)
		}
		if got := e.podIP(pod); got != addr {
			t.Errorf("after %s, start: address %s, want %s", stop, got, addr)
		}
		if r := e.run("exec", pod, "--", "sh", "-c", "ip -4 -o addr show eth0"); !strings.Contains(r.stdout, " "+addr+"/") {
			t.Errorf("after %s, start: eth0 in the pod: %q (%s), want %s", stop, r.stdout, r.stderr, addr)
		}
		// The published port reaches a server of the restarted pod.
		e.pyServer(pod, "tcp", 80)
		if got := dial(t, "tcp", fmt.Sprintf("127.0.0.1:%d", port)); got != "hello from "+pod {
			t.Errorf("after %s, start: published port: %q", stop, got)
		}
		// nsenter --user on the new handles.
		ns := filepath.Join(e.root, pod, "ns")
		r = e.runCmd(exec.Command("nsenter", "--user="+ns+"/user", "--pid="+ns+"/pid", "--mount="+ns+"/mnt", "--", "cat", "/proc/self/uid_map"))
		if got := strings.Join(strings.Fields(r.stdout), " "); r.code != 0 || got != fmt.Sprintf("0 %d %d", uid, sandbox.UserNSSize) {
			t.Errorf("after %s, start: nsenter --user: exit %d, %q (%s)", stop, r.code, r.stdout, r.stderr)
		}
		// pause reaps an orphan.
		e.must("exec", pod, "--", "sh", "-c", "sleep 0.2 & exit 0")
		time.Sleep(time.Second)
		if top := e.must("top", pod); strings.Contains(top, "Z (zombie)") || strings.Contains(top, "sleep 0.2") {
			t.Errorf("after %s, start: after an orphan exited, top shows:\n%s", stop, top)
		}
		// run: a container joins the new user namespace.
		if out := e.must("run", pod, "--", "cat", "/proc/self/uid_map"); strings.Join(strings.Fields(out), " ") != fmt.Sprintf("0 %d %d", uid, sandbox.UserNSSize) {
			t.Errorf("after %s, start: run: uid_map %q", stop, out)
		}
	}
	// One pin of each handle, not one per start (the containers' mnt-NAME
	// stay until rm).
	mounts := mountsUnder(t, filepath.Join(e.root, pod))
	mounts = slices.DeleteFunc(mounts, func(m string) bool { return strings.HasPrefix(filepath.Base(m), "mnt-") })
	if len(mounts) != len(sandbox.NamespaceTypes)+1 {
		t.Errorf("pod's mounts after two starts: %v, want the ns directory and %d handles", mounts, len(sandbox.NamespaceTypes))
	}

	// A --rootfs directory and an idmap volume are idmapped again.
	dir, idv := t.TempDir(), t.TempDir()
	baseLayer(t, dir)
	must(t, os.WriteFile(filepath.Join(idv, "owned"), nil, 0o644))
	rpod, rd := e.create("--network", "none", "--userns", "auto", "--rootfs", dir, "-v", idv+":/idv:idmap")
	killPause(t, rd)
	e.must("start", rpod)
	if out := e.must("exec", rpod, "--", "/bin/sh", "-c", "stat -c %u:%g /kept /idv/owned; echo x > /made"); out != "0:0\n0:0\n" {
		t.Errorf("--rootfs pod after start: %q", out)
	}
	if got := owner(t, filepath.Join(dir, "made")); got != "0:0" {
		t.Errorf("file the pod's root wrote in its idmapped --rootfs after start: owner %s on disk, want 0:0", got)
	}
	e.must("rm", rpod)

	// A record lost while the pod was stopped (a reboot emptied /run) is
	// made again by start, unless another pod took the IDs meanwhile.
	syscall.Kill(d.Pid, syscall.SIGKILL)
	if err := waitDead(d.Pid, d.StartTime, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	must(t, os.Remove(record))
	other := e.name()
	e.must("create", "--network", "none", "--uidmap", fmt.Sprintf("0:%d:10", uid+100), "--gidmap", fmt.Sprintf("0:%d:10", gid+100), other)
	wantFailure(t, e.run("start", pod), "user namespace maps overlap those of pod "+other)
	if _, err := os.Stat(record); !os.IsNotExist(err) {
		t.Errorf("range record after a refused start: %v", err)
	}
	e.must("rm", other)
	e.must("start", pod)
	if after, err := os.ReadFile(record); err != nil || !strings.Contains(string(after), fmt.Sprintf(`"hostID":%d`, uid)) {
		t.Errorf("range record made again by start: %q (%v)", after, err)
	}

	e.must("rm", pod)
	if _, err := os.Stat(record); !os.IsNotExist(err) {
		t.Errorf("range record after rm: %v", err)
	}
}
