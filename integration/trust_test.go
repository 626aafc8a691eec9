package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/sandbox"
)

// nobody is the unprivileged user the trust tests plant records as.
const nobody = 65534

// asNobody runs a shell script as nobody (uid and gid 65534, no
// supplementary groups) and fails t if it fails.
func asNobody(t *testing.T, script string) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-ec", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("as nobody: %s: %v\n%s", script, err, out)
	}
}

// runAt runs podsb with another state root than the env's. exec's fast
// path runs as in any command: it must leave what these tests plant to Go.
func (e *env) runAt(root string, args ...string) result {
	e.t.Helper()
	if len(args) > 0 && args[0] == "create" && !hasNetworkFlag(args) {
		args = append([]string{"create", "--network", "none"}, args[1:]...)
	}
	return e.runCmd(exec.Command(e.bin, append([]string{"--root", root}, args...)...))
}

// goRun runs podsb in the env's root, as runAt does.
func (e *env) goRun(args ...string) result {
	e.t.Helper()
	return e.runAt(e.root, args...)
}

// sleeper starts a process of the test's own, which no podsb command may
// signal, and returns its PID and start time.
func sleeper(t *testing.T) (int, uint64) {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid, startTime(t, cmd.Process.Pid)
}

func startTime(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	n, _ := strconv.ParseUint(f[19], 10, 64)
	return n
}

func bootID(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// plantedState is a state.json that names pid as a running pod's pause.
func plantedState(t *testing.T, name string, pid int, start uint64) string {
	t.Helper()
	b, _ := json.Marshal(map[string]any{
		"ociVersion": "1.0.2", "id": name, "status": "running", "pid": pid,
		"pauseStartTime": start, "bootID": bootID(t), "hostname": name,
	})
	return string(b)
}

// A state root that a user other than root can change is refused by every
// command, with one error, before anything in it is read or touched: an
// unprivileged user's records there (a pod directory with a marker, a
// state naming a process of root's, a join record, handle symlinks) are
// never acted on.
func TestUntrustedRootRefused(t *testing.T) {
	e := newEnv(t)
	base := t.TempDir()
	// nobody must reach the roots below base.
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pid, start := sleeper(t)
	commands := [][]string{
		{"create", "newpod"}, {"ps"}, {"ps", "-a"}, {"ps", "victim"}, {"ps", "--containers", "-a"},
		{"top", "victim"}, {"inspect", "victim"}, {"exec", "victim", "--", "true"},
		{"exec", "-d", "victim", "--", "true"}, {"logs", "victim"}, {"run", "victim", "--", "true"},
		{"kill", "victim", "c"}, {"start", "victim"}, {"rm", "victim"}, {"rm", "-f", "victim"},
		{"rm", "-f", "--all"}, {"gc"}, {"network", "prune"},
	}
	// plant makes, as nobody, a pod of nobody's in root.
	plant := func(t *testing.T, root string) {
		asNobody(t, fmt.Sprintf(`cd %s; mkdir -p victim/ns victim/logs; printf 'podsb pod 1\n' > victim/.podsb
printf '%%s' '%s' > victim/state.json; printf 'podsbJ2\n junk' > victim/join
ln -s /proc/%d/ns/pid victim/ns/pid; ln -s /proc/%d/ns/net victim/ns/net; ln -s /etc/shadow victim/logs/1.log`,
			root, plantedState(t, "victim", pid, start), pid, pid))
	}
	check := func(t *testing.T, root, bad string) {
		want := "podsb: " + fmt.Sprintf(sandbox.UntrustedRootFormat, root, bad) + "\n"
		for _, args := range commands {
			r := e.runAt(root, args...)
			if r.code != 125 || r.stderr != want || r.stdout != "" {
				t.Errorf("%s: %+v, want exit 125 and %q", strings.Join(args, " "), r, want)
			}
		}
		// The library's error class.
		if _, err := sandbox.List(root); !errors.Is(err, sandbox.ErrUntrustedRoot) {
			t.Errorf("sandbox.List: %v, want ErrUntrustedRoot", err)
		}
		if _, err := sandbox.GC(context.Background(), root); !errors.Is(err, sandbox.ErrUntrustedRoot) {
			t.Errorf("sandbox.GC: %v, want ErrUntrustedRoot", err)
		}
		if !alive(pid, start) {
			t.Fatalf("the process named by the planted state was signalled")
		}
		for _, f := range []string{"victim/.podsb", "victim/state.json", "victim/join", "victim/ns/pid"} {
			if _, err := os.Lstat(filepath.Join(root, f)); err != nil {
				t.Errorf("planted %s: %v", f, err)
			}
		}
		if _, err := os.Lstat(filepath.Join(root, "newpod")); err == nil {
			t.Errorf("create made newpod in an untrusted root")
		}
	}

	t.Run("mode 1777", func(t *testing.T) {
		root := filepath.Join(base, "sticky")
		mkdirMode(t, root, os.ModeSticky|0o777)
		plant(t, root)
		check(t, root, root)
	})
	t.Run("group writable", func(t *testing.T) {
		root := filepath.Join(base, "group")
		mkdirMode(t, root, 0o777)
		plant(t, root)
		if err := os.Chmod(root, 0o770); err != nil {
			t.Fatal(err)
		}
		check(t, root, root)
	})
	t.Run("owned by nobody", func(t *testing.T) {
		root := filepath.Join(base, "nobodys")
		mkdirMode(t, root, 0o700)
		if err := os.Chown(root, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		plant(t, root)
		check(t, root, root)
	})
	t.Run("parent owned by nobody", func(t *testing.T) {
		parent := filepath.Join(base, "home")
		mkdirMode(t, parent, 0o755)
		if err := os.Chown(parent, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		// The root is root's, but nobody can rename it away and put
		// another in its place.
		root := filepath.Join(parent, "root")
		mkdirMode(t, root, 0o777)
		plant(t, root)
		if err := os.Chmod(root, 0o700); err != nil {
			t.Fatal(err)
		}
		check(t, root, parent)
		// A root to be made there is not made.
		missing := filepath.Join(parent, "new", "root")
		want := "podsb: " + fmt.Sprintf(sandbox.UntrustedRootFormat, missing, parent) + "\n"
		if r := e.runAt(missing, "create", "x"); r.code != 125 || r.stderr != want {
			t.Errorf("create in a new root below %s: %+v, want %q", parent, r, want)
		}
		if _, err := os.Lstat(filepath.Join(parent, "new")); err == nil {
			t.Errorf("create made a directory below %s", parent)
		}
	})
	t.Run("sticky parent", func(t *testing.T) {
		// A root of root's in a sticky directory anyone may write (as
		// /tmp) is fine.
		parent := filepath.Join(base, "tmp")
		mkdirMode(t, parent, os.ModeSticky|0o777)
		root := filepath.Join(parent, "root")
		name := e.name()
		if r := e.runAt(root, "create", name); r.code != 0 {
			t.Fatalf("create in %s: %+v", root, r)
		}
		if r := e.runAt(root, "rm", name); r.code != 0 {
			t.Errorf("rm in %s: %+v", root, r)
		}
		checkNoLeaks(t, root, map[string]bool{name: true}, nil)
	})
}

func mkdirMode(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700); os.Chown(dir, 0, 0) })
}

// In a root of root's, podsb opens records and handles through no
// symbolic link: a link in place of a pod's directory, of its state, or of
// one of its handles leads nowhere outside.
func TestSymlinksInRootNotFollowed(t *testing.T) {
	e := newEnv(t)

	t.Run("pod directory", func(t *testing.T) {
		// Another root's pod, and a link to it in ours.
		other := newEnv(t)
		victim, d := other.create()
		link := e.name()
		if err := os.Symlink(filepath.Join(other.root, victim), filepath.Join(e.root, link)); err != nil {
			t.Fatal(err)
		}
		wantFailure(t, e.goRun("rm", link), link+" is not a pod")
		wantFailure(t, e.goRun("rm", "-f", link), link+" is not a pod")
		wantFailure(t, e.goRun("exec", link, "--", "true"), link+" is not a pod")
		wantFailure(t, e.goRun("start", link), link+" is not a pod")
		for _, args := range [][]string{{"rm", "-f", "--all"}, {"gc"}} {
			if r := e.goRun(args...); r.code != 0 || r.stdout != "" {
				t.Errorf("%v: %+v", args, r)
			}
		}
		if out := e.must("ps", "-a", "-q"); out != "" {
			t.Errorf("ps -a lists %q", out)
		}
		if st := other.inspect(victim).Status; st != "running" || !alive(d.Pid, d.StartTime) {
			t.Errorf("the other root's pod is %s", st)
		}
		os.Remove(filepath.Join(e.root, link))
	})

	t.Run("handle", func(t *testing.T) {
		// A mount of the test's own, and a link to it among a pod's
		// handles: rm unmounts the pod's handles, not what the link
		// points at.
		mnt := t.TempDir()
		if err := unix.Mount("podsb-test", mnt, "tmpfs", 0, "size=64k"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
		name, _ := e.create()
		for _, h := range []string{"evil", "mnt-evil"} {
			if err := os.Symlink(mnt, filepath.Join(e.root, name, "ns", h)); err != nil {
				t.Fatal(err)
			}
		}
		e.must("ps") // a pod with a planted handle still lists
		if r := e.goRun("rm", name); r.code != 0 {
			t.Errorf("rm: %+v", r)
		}
		if m := mountsUnder(t, mnt); len(m) != 1 {
			t.Errorf("rm unmounted %s through a link among the handles: %q", mnt, m)
		}
	})

	t.Run("namespace handle", func(t *testing.T) {
		// A pod whose handle is a link to the host's namespace: exec
		// refuses to join it.
		name, d := e.create()
		ns := filepath.Join(e.root, name, "ns", "uts")
		if err := unix.Unmount(ns, 0); err != nil {
			t.Fatal(err)
		}
		os.Remove(ns)
		if err := os.Symlink("/proc/1/ns/uts", ns); err != nil {
			t.Fatal(err)
		}
		r := e.goRun("exec", name, "--", "hostname")
		if r.code == 0 && strings.TrimSpace(r.stdout) != name {
			t.Errorf("exec joined the host's UTS namespace: %+v", r)
		}
		if r.code == 0 {
			t.Errorf("exec with a linked handle: %+v", r)
		}
		if r := e.goRun("rm", name); r.code != 0 {
			t.Errorf("rm: %+v", r)
		}
		waitDead(d.Pid, d.StartTime, 2*time.Second)
	})

	t.Run("state", func(t *testing.T) {
		// A pod whose state.json is a link to a state naming a process
		// of root's: nothing signals that process.
		pid, start := sleeper(t)
		name, d := e.create()
		elsewhere := filepath.Join(t.TempDir(), "state.json")
		if err := os.WriteFile(elsewhere, []byte(plantedState(t, name, pid, start)), 0o600); err != nil {
			t.Fatal(err)
		}
		st := filepath.Join(e.root, name, "state.json")
		os.Remove(st)
		if err := os.Symlink(elsewhere, st); err != nil {
			t.Fatal(err)
		}
		if r := e.goRun("inspect", name); strings.Contains(r.stdout, strconv.Itoa(pid)) {
			t.Errorf("inspect read the linked state: %s", r.stdout)
		}
		if r := e.goRun("rm", name); r.code != 0 {
			t.Errorf("rm: %+v", r)
		}
		if !alive(pid, start) {
			t.Fatalf("rm signalled the process the linked state names")
		}
		// The pod's own pause, found through its pinned PID namespace.
		if err := waitDead(d.Pid, d.StartTime, 2*time.Second); err != nil {
			t.Errorf("pause survived rm")
		}
	})
}

// Directories of the root that podsb did not make are not pods: no
// command lists, removes or unmounts them, and rm names them so.
func TestUnmarkedDirsNotPods(t *testing.T) {
	e := newEnv(t)
	pod, _ := e.create()
	data := filepath.Join(e.root, "data")
	if err := os.MkdirAll(filepath.Join(data, "mnt"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "keep"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("podsb-test", filepath.Join(data, "mnt"), "tmpfs", 0, "size=64k"); err != nil {
		t.Fatal(err)
	}
	defer func() {
		unix.Unmount(filepath.Join(data, "mnt"), unix.MNT_DETACH)
		os.RemoveAll(data)
	}()
	if out := e.must("ps", "-a", "-q"); out != pod+"\n" {
		t.Errorf("ps -a: %q, want only %s", out, pod)
	}
	if _, err := sandbox.Load(e.root, "data"); !errors.Is(err, sandbox.ErrNotPod) {
		t.Errorf("sandbox.Load of data: %v, want ErrNotPod", err)
	}
	wantFailure(t, e.goRun("ps", "data"), "data is not a pod")
	wantFailure(t, e.goRun("rm", "data"), "data is not a pod")
	wantFailure(t, e.goRun("rm", "-f", "data"), "data is not a pod")
	wantFailure(t, e.goRun("create", "data"), "already exists")
	if out := e.must("gc"); out != "" {
		t.Errorf("gc removed %q", out)
	}
	if out := e.must("rm", "-f", "--all"); out != pod+"\n" {
		t.Errorf("rm -f --all removed %q", out)
	}
	if _, err := os.Stat(filepath.Join(data, "keep")); err != nil {
		t.Errorf("data lost its file: %v", err)
	}
	if m := mountsUnder(t, filepath.Join(data, "mnt")); len(m) != 1 {
		t.Errorf("the mount below data is gone: %q", m)
	}

	// A root full of directories podsb did not make: the host's.
	r := e.runAt("/", "ps", "-a", "-q")
	if r.code != 0 || r.stdout != "" {
		t.Errorf("podsb --root / ps -a: %+v", r)
	}
}
