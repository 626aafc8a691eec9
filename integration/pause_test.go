package integration

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A pod's pause ends the pod on SIGTERM and SIGINT (a namespace init ignores
// signals it has no handler for, so this is pause's own doing) and ignores
// every other signal.
func TestPauseSignals(t *testing.T) {
	e := newEnv(t)
	name, d := e.create()
	for _, sig := range []unix.Signal{unix.SIGHUP, unix.SIGUSR1, unix.SIGUSR2, unix.SIGPIPE, unix.SIGQUIT, unix.SIGALRM, unix.SIGWINCH, unix.SIGCHLD} {
		if err := unix.Kill(d.Pid, sig); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if !alive(d.Pid, d.StartTime) {
		t.Fatalf("pause died of an ignorable signal")
	}
	if r := e.run("exec", name, "--", "true"); r.code != 0 {
		t.Fatalf("pod unusable after signals: %+v", r)
	}
	for _, sig := range []unix.Signal{unix.SIGTERM, unix.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			name, d := e.create()
			e.must("exec", "-d", name, "--", "sleep", "100")
			procs := podHostPIDs(t, d)
			if err := unix.Kill(d.Pid, sig); err != nil {
				t.Fatal(err)
			}
			for _, p := range procs {
				if err := waitDead(p.pid, p.start, 2*time.Second); err != nil {
					t.Errorf("process %d outlived pause after %v", p.pid, sig)
				}
			}
			if st := e.inspect(name).Status; st != "stopped" {
				t.Errorf("status %s after %v", st, sig)
			}
		})
	}
}

// pause holds nothing of the host: its stdio is the pod's /dev/null, its
// only other fd a detached mount of the pod's exits directory, and its
// root and cwd are the pod's root.
func TestPauseHoldsNoHostFD(t *testing.T) {
	e := newEnv(t)
	name, d := e.create()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", d.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 4 {
		t.Errorf("pause has fds %v, want 0 1 2 3", ents)
	}
	// fd 3 is the pod's exits directory (exit records), as a detached
	// mount: from it, ".." leads nowhere, not to the pod's directory and
	// the host. (Opened as a plain directory, it would.)
	exits, err := os.OpenFile(fmt.Sprintf("/proc/%d/fd/3", d.Pid), unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer exits.Close()
	var self, up, podExits unix.Stat_t
	unix.Fstat(int(exits.Fd()), &self)
	unix.Fstatat(int(exits.Fd()), "..", &up, 0)
	unix.Stat(filepath.Join(e.root, name, "exits"), &podExits)
	if self.Ino != podExits.Ino || up.Dev != self.Dev || up.Ino != self.Ino {
		t.Errorf("pause fd 3: inode %d, its .. %d:%d; want the exits directory %d, and itself", self.Ino, up.Dev, up.Ino, podExits.Ino)
	}
	// The pod's /dev/null is a bind mount of the host's node: the same
	// inode, on a mount of the pod's own.
	r := e.inPod(name, "sh", "-c", "grep '^[0-9]* [0-9]* [0-9:]* [^ ]* /dev/null ' /proc/self/mountinfo | cut -d' ' -f1")
	podNull := strings.TrimSpace(r.stdout)
	if r.code != 0 || podNull == "" {
		t.Fatalf("the pod's /dev/null mount: %+v", r)
	}
	for fd := 0; fd < 3; fd++ {
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", d.Pid, fd))
		if err != nil {
			t.Fatal(err)
		}
		link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", d.Pid, fd))
		if !strings.Contains(string(info), "\nmnt_id:\t"+podNull+"\n") || link != "/dev/null" {
			t.Errorf("pause fd %d is not the pod's /dev/null (mount %s): %s %q", fd, podNull, link, info)
		}
	}
	// cwd and root: the pod's root, which is not the host's.
	var cwd, root, hostRoot unix.Stat_t
	unix.Stat(fmt.Sprintf("/proc/%d/cwd", d.Pid), &cwd)
	unix.Stat(fmt.Sprintf("/proc/%d/root", d.Pid), &root)
	unix.Stat("/", &hostRoot)
	if cwd.Dev != root.Dev || cwd.Ino != root.Ino || root.Dev == hostRoot.Dev && root.Ino == hostRoot.Ino {
		t.Errorf("pause cwd %d:%d root %d:%d host root %d:%d", cwd.Dev, cwd.Ino, root.Dev, root.Ino, hostRoot.Dev, hostRoot.Ino)
	}
	// It is named pause, for ps and top, and its OOM score is no higher than
	// its creator's (lowering it needs CAP_SYS_RESOURCE).
	if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", d.Pid)); string(b) != "pause\n" {
		t.Errorf("comm %q", b)
	}
	adj, _ := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", d.Pid))
	mine, _ := os.ReadFile("/proc/self/oom_score_adj")
	a, _ := strconv.Atoi(strings.TrimSpace(string(adj)))
	m, _ := strconv.Atoi(strings.TrimSpace(string(mine)))
	if a > m {
		t.Errorf("pause oom_score_adj %d above its creator's %d", a, m)
	}
}

// A pod outlives the shell that created it: pause is not the shell's child.
func TestPodSurvivesCreatingShell(t *testing.T) {
	e := newEnv(t)
	name := e.name()
	r := e.runCmd(cmdOf("sh", "-c", fmt.Sprintf("%s --root %s create %s; echo $$", e.bin, e.root, name)))
	lines := strings.Fields(r.stdout)
	if r.code != 0 || len(lines) != 2 {
		t.Fatalf("%+v", r)
	}
	shell, _ := strconv.Atoi(lines[1])
	time.Sleep(50 * time.Millisecond)
	d := e.inspect(name)
	if d.Status != "running" {
		t.Fatalf("pod %s after its shell exited", d.Status)
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.Pid))
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if ppid, _ := strconv.Atoi(f[1]); ppid == shell || ppid == os.Getpid() {
		t.Errorf("pause's parent is %d (shell %d, test %d)", ppid, shell, os.Getpid())
	}
	if sid, _ := strconv.Atoi(f[3]); sid != d.Pid {
		t.Errorf("pause's session %d, want its own (%d)", sid, d.Pid)
	}
}

// 10,000 orphans created in bursts by several processes at once are all
// reaped: once the storm ends, no zombie lasts longer than 100 ms.
func TestPauseOrphanStorm(t *testing.T) {
	e := newEnv(t)
	name, d := e.create()
	const workers, each = 5, 2000
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Bursts of 100 orphans: each subshell forks a child and
			// exits before it.
			e.must("exec", name, "--", "sh", "-c", fmt.Sprintf("i=0; while [ $i -lt %d ]; do for j in 1 2 3 4 5 6 7 8 9 10; do (true &) & (true &) & (true &) & (true &) & (true &) & (true &) & (true &) & (true &) & (true &) & (true &) & done; wait; i=$((i+100)); done", each))
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(100 * time.Millisecond)
	for {
		zombies := 0
		for _, p := range podHostPIDs(t, d) {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid))
			if i := bytes.LastIndexByte(b, ')'); i > 0 && len(b) > i+2 && b[i+2] == 'Z' {
				zombies++
			}
		}
		if zombies == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d zombies 100 ms after the storm", zombies)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if top := e.must("top", name); strings.Count(strings.TrimSpace(top), "\n") != 1 {
		t.Errorf("pod not back to pause alone:\n%s", top)
	}
}

// 100 pods created and removed concurrently leave nothing behind.
func TestConcurrentCreateRemove(t *testing.T) {
	e := newEnv(t)
	const n = 100
	names := make([]string, n)
	for i := range names {
		names[i] = e.name()
	}
	var wg sync.WaitGroup
	errs := make(chan string, 2*n)
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := e.run("create", name); r.code != 0 {
				errs <- fmt.Sprintf("create %s: %+v", name, r)
			}
		}()
	}
	wg.Wait()
	if out := e.must("ps", "-q"); len(strings.Fields(out)) != n {
		t.Errorf("ps lists %d pods, want %d", len(strings.Fields(out)), n)
	}
	for _, name := range names {
		e.inspect(name) // remember pause for the leak check
	}
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := e.run("rm", name); r.code != 0 {
				errs <- fmt.Sprintf("rm %s: %+v", name, r)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	checkNoLeaks(t, e.root, e.names, e.pids)
}

// killPause SIGKILLs a pod's pause and waits until it is dead.
func killPause(t *testing.T, d inspectDoc) {
	t.Helper()
	unix.Kill(d.Pid, unix.SIGKILL)
	if err := waitDead(d.Pid, d.StartTime, 2*time.Second); err != nil {
		t.Fatal(err)
	}
}
