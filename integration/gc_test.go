package integration

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// both runs two podsb commands at the same time.
func (e *env) both(a, b []string) (ra, rb result) {
	e.t.Helper()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); ra = e.run(a...) }()
	go func() { defer wg.Done(); rb = e.run(b...) }()
	wg.Wait()
	return ra, rb
}

// gc racing create, start, exec and rm: gc never removes a pod that is
// running or being created or started, and the other command either
// succeeds with its pod as it left it or (start, rm) finds the pod gone
// because gc removed it, stopped, first.
func TestGCRaces(t *testing.T) {
	const rounds = 25
	e := newEnv(t)
	gcOK := func(t *testing.T, r result) {
		t.Helper()
		if r.code != 0 {
			t.Errorf("gc: %+v", r)
		}
	}
	t.Run("create", func(t *testing.T) {
		for range rounds {
			name := e.name()
			rc, rg := e.both([]string{"create", name}, []string{"gc"})
			gcOK(t, rg)
			if rc.code != 0 {
				t.Errorf("create: %+v", rc)
				continue
			}
			if st := e.inspect(name).Status; st != "running" {
				t.Errorf("pod %s is %s after create printed its name and gc ran", name, st)
			}
			e.must("rm", "-f", name)
		}
	})
	t.Run("start", func(t *testing.T) {
		for range rounds {
			name, d := e.create()
			killPause(t, d)
			rs, rg := e.both([]string{"start", name}, []string{"gc"})
			gcOK(t, rg)
			_, err := os.Stat(filepath.Join(e.root, name))
			switch {
			case rs.code == 0:
				if st := e.inspect(name).Status; st != "running" {
					t.Errorf("pod %s is %s after start succeeded", name, st)
				}
			case strings.Contains(rs.stderr, "no such pod") && rs.code == 125:
				if err == nil {
					t.Errorf("start says no such pod, but %s is there", name)
				}
			default:
				t.Errorf("start: %+v", rs)
			}
			e.must("rm", "-f", name)
		}
	})
	t.Run("exec", func(t *testing.T) {
		name, _ := e.create()
		for range rounds {
			rx, rg := e.both([]string{"exec", name, "--", "true"}, []string{"gc"})
			gcOK(t, rg)
			if rx.code != 0 {
				t.Errorf("exec: %+v", rx)
			}
		}
		if st := e.inspect(name).Status; st != "running" {
			t.Errorf("pod %s is %s after exec and gc", name, st)
		}
		e.must("rm", name)
	})
	t.Run("rm", func(t *testing.T) {
		for i := range rounds {
			name, d := e.create()
			if i%2 == 0 {
				killPause(t, d) // a pod gc removes too
			}
			rr, rg := e.both([]string{"rm", name}, []string{"gc"})
			gcOK(t, rg)
			if rr.code != 0 && (rr.code != 125 || !strings.Contains(rr.stderr, "no such pod") || i%2 == 1) {
				t.Errorf("rm of a pod that was %s: %+v", map[bool]string{true: "stopped", false: "running"}[i%2 == 0], rr)
			}
			if _, err := os.Stat(filepath.Join(e.root, name)); err == nil {
				t.Errorf("%s left after rm and gc", name)
			}
		}
	})
}

// A pod whose records (state and join) are copies of another pod's: rm
// stops the pod's own pause, found through its pinned PID namespace, and
// never the other's; gc keeps both while both run, and start refuses.
func TestCopiedRecordsDoNotKillOtherPod(t *testing.T) {
	e := newEnv(t)
	a, da := e.create()
	b, db := e.create()
	for _, f := range []string{"state.json", "join"} {
		data, err := os.ReadFile(filepath.Join(e.root, a, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(e.root, b, f), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out := e.must("gc"); out != "" {
		t.Errorf("gc removed %q", out)
	}
	if !alive(db.Pid, db.StartTime) {
		t.Fatalf("gc stopped the pause of %s", b)
	}
	// Its pause runs, whatever the record says.
	wantFailure(t, e.run("start", b), "pod is running")
	if r := e.goRun("rm", b); r.code != 0 {
		t.Errorf("rm %s: %+v", b, r)
	}
	if !alive(da.Pid, da.StartTime) {
		t.Fatalf("rm %s killed the pause of %s", b, a)
	}
	if st := e.inspect(a).Status; st != "running" {
		t.Errorf("%s is %s", a, st)
	}
	if err := waitDead(db.Pid, db.StartTime, 2*time.Second); err != nil {
		t.Errorf("the pause of %s survived its rm", b)
	}
}

// rm of a pod whose pause is stopped (SIGSTOP) or traced (as a pod's root
// can leave it with ptrace) does not wait out its grace period: a stopped
// pause cannot act on SIGTERM, so it gets SIGKILL at once.
func TestRmStoppedPause(t *testing.T) {
	e := newEnv(t)
	rm := func(t *testing.T, name string) {
		// The grace period is 10 s: 5 s bounds an rm that does not wait it.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, e.bin, "--root", e.root, "rm", name)
		cmd.Env = append(os.Environ(), "PODSB_FASTEXEC=0")
		out, err := cmd.CombinedOutput()
		if ctx.Err() != nil {
			t.Fatalf("rm of a pod with a stopped pause still runs after 5 s")
		}
		if err != nil || string(out) != name+"\n" {
			t.Errorf("rm: %v: %s", err, out)
		}
	}
	t.Run("SIGSTOP", func(t *testing.T) {
		name, d := e.create()
		if err := unix.Kill(d.Pid, unix.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		waitState(t, d.Pid, 'T')
		rm(t, name)
		if err := waitDead(d.Pid, d.StartTime, 2*time.Second); err != nil {
			t.Errorf("pause survived rm")
		}
	})
	t.Run("traced", func(t *testing.T) {
		name, d := e.create()
		attached, detach := make(chan error), make(chan struct{})
		go func() {
			// The tracer is this thread: it stays locked, and the
			// tracee is detached when the thread ends with the
			// goroutine.
			runtime.LockOSThread()
			attached <- unix.PtraceAttach(d.Pid)
			<-detach
		}()
		if err := <-attached; err != nil {
			t.Fatal(err)
		}
		waitState(t, d.Pid, 't')
		rm(t, name)
		close(detach)
		if err := waitDead(d.Pid, d.StartTime, 2*time.Second); err != nil {
			t.Errorf("pause survived rm")
		}
	})
}

// waitState waits until pid is in state s.
func waitState(t *testing.T, pid int, s byte) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); procState(pid) != s; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d never reached state %c: %c", pid, s, procState(pid))
		}
	}
}

func procState(pid int) byte {
	b, err := os.ReadFile(filepathProc(pid, "stat"))
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

func filepathProc(pid int, f string) string {
	return filepath.Join("/proc", strconv.Itoa(pid), f)
}

// gc removes what dead writers left: *.tmp records in the root (a minute
// old) and in pods' directories, and ROOT/.tmp entries of a create or rm
// that died, but not one whose maker holds its lock.
func TestGCRemovesStaleTemps(t *testing.T) {
	e := newEnv(t)
	name, _ := e.create()
	e.must("run", "-d", "--name", "c", name, "--", "sleep", "1000")
	dir := filepath.Join(e.root, name)
	old := time.Now().Add(-2 * time.Minute)
	stale := []string{
		filepath.Join(e.root, ".create.tmp"),
		filepath.Join(dir, "state.json.tmp"),
		filepath.Join(dir, "join.tmp"),
		filepath.Join(dir, "containers", "c", "state.json.tmp"),
	}
	for _, f := range stale {
		write(t, f, "partial")
		os.Chtimes(f, old, old)
	}
	fresh := filepath.Join(e.root, "fresh.tmp")
	write(t, fresh, "being written")
	// A create that died before its rename, and an rm that died before
	// it removed its files; and one whose maker lives (we hold its lock).
	dead := filepath.Join(e.root, ".tmp", "rm-dead")
	write(t, filepath.Join(dead, "state.json"), "{}")
	live := filepath.Join(e.root, ".tmp", "create-live")
	write(t, filepath.Join(live, ".podsb"), "podsb pod 1\n")
	lock, err := os.Open(live)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}

	if out := e.must("gc"); out != "" {
		t.Errorf("gc removed %q", out)
	}
	for _, f := range append(stale, dead) {
		if _, err := os.Lstat(f); err == nil {
			t.Errorf("gc left %s", f)
		}
	}
	for _, f := range []string{fresh, live, filepath.Join(dir, "state.json"), filepath.Join(dir, "containers", "c", "state.json")} {
		if _, err := os.Lstat(f); err != nil {
			t.Errorf("gc removed %s", f)
		}
	}
	if st := e.inspect(name).Status; st != "running" {
		t.Errorf("pod %s after gc", st)
	}
	lock.Close()
	os.Remove(fresh)
	e.must("gc")
	if _, err := os.Lstat(filepath.Join(e.root, ".tmp")); err == nil {
		t.Errorf("gc left %s", filepath.Join(e.root, ".tmp"))
	}
}

// A state root that is full: a failed atomic write leaves no partial
// *.tmp record behind.
func TestFullRootLeavesNoTemp(t *testing.T) {
	e := newEnv(t)
	mnt := filepath.Join(t.TempDir(), "fs")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("podsb-test", mnt, "tmpfs", 0, "size=1m,mode=0700"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	f := &env{t: t, bin: e.bin, root: filepath.Join(mnt, "root"), names: map[string]bool{}, pids: map[int]uint64{}}
	t.Cleanup(f.cleanup)
	name, d := f.create()
	killPause(t, d)
	fill(t, filepath.Join(mnt, "filler"))
	wantFailure(t, f.run("start", name), "no space left on device")
	filepath.WalkDir(f.root, func(p string, de fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".tmp") && !de.IsDir() {
			t.Errorf("left %s", p)
		}
		return nil
	})
	os.Remove(filepath.Join(mnt, "filler"))
	f.must("rm", name)
}

// fill writes to path until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	w, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := w.Write(buf); err != nil {
			if !errors.Is(err, unix.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

// gc tidies a running pod: it removes the logs/.starting-* file of a
// detached exec that died and the directory of a container whose run died
// before its state, but not while a command holds the pod's shared lock
// (as a live exec -d or run does while it makes them).
func TestGCTidiesDeadStarts(t *testing.T) {
	e := newEnv(t)
	name, _ := e.create()
	dir := filepath.Join(e.root, name)
	e.must("run", "-d", "--name", "live", name, "--", "sleep", "1000")
	pid := strings.TrimSpace(e.must("exec", "-d", name, "--", "sleep", "1000"))
	starting := filepath.Join(dir, "logs", ".starting-123456")
	write(t, starting, "")
	deadC := filepath.Join(dir, "containers", "dead")
	write(t, filepath.Join(deadC, "etc", "hostname"), name+"\n")
	if err := os.Mkdir(filepath.Join(deadC, "rootfs"), 0o700); err != nil {
		t.Fatal(err)
	}

	// A live start holds the shared lock.
	lock, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_SH); err != nil {
		t.Fatal(err)
	}
	e.must("gc")
	for _, f := range []string{starting, deadC} {
		if _, err := os.Lstat(f); err != nil {
			t.Errorf("gc removed %s while a start held the pod's lock", f)
		}
	}
	lock.Close()

	e.must("gc")
	for _, f := range []string{starting, deadC} {
		if _, err := os.Lstat(f); err == nil {
			t.Errorf("gc left %s", f)
		}
	}
	for _, f := range []string{filepath.Join(dir, "containers", "live", "state.json"), filepath.Join(dir, "logs", pid+".log"), filepath.Join(dir, "logs", "live.log")} {
		if _, err := os.Lstat(f); err != nil {
			t.Errorf("gc removed %s", f)
		}
	}
	if out := e.must("ps", "--containers", "-q"); out != name+"/live\n" {
		t.Errorf("ps --containers: %q", out)
	}
	if st := e.inspect(name).Status; st != "running" {
		t.Errorf("pod %s after gc", st)
	}
}

// write writes a file, making its directories (0700).
func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
