package reaper_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/testenv"
	"github.com/podsb/podsb/reaper"
)

// helperEnv makes the re-executed test binary become pause (see TestMain)
// instead of running tests. Its value says what to do first.
const helperEnv = "PODSB_REAPER_TEST_HELPER"

// orphanScript waits until pause has closed the write end of the pipe on its
// fd 3 (so pause is up and a subreaper), then leaves an orphan behind and
// prints its PID.
const orphanScript = `read x <&3; exec 3<&-; sleep 60 & echo $!`

func TestMain(m *testing.M) {
	dir, err := useFreshPause()
	if err != nil {
		fail(err)
	}
	switch os.Getenv(helperEnv) {
	case "":
		code := m.Run()
		if dir != "" {
			os.RemoveAll(dir)
		}
		os.Exit(code)
	case "pause":
		execPause()
	case "orphan":
		// Start a child that pause inherits across execve, holding the
		// other end of a pipe that only pause's close_range closes.
		r, w, err := os.Pipe()
		if err != nil {
			fail(err)
		}
		sh := exec.Command("/bin/sh", "-c", orphanScript)
		sh.ExtraFiles = []*os.File{r}
		sh.Stdout = os.Stdout
		if err := sh.Start(); err != nil {
			fail(err)
		}
		r.Close()
		if _, err := unix.FcntlInt(w.Fd(), unix.F_SETFD, 0); err != nil {
			fail(err)
		}
		execPause()
		runtime.KeepAlive(w)
	}
	fail(fmt.Errorf("unknown %s=%q", helperEnv, os.Getenv(helperEnv)))
}

// execPause replaces the process with pause, as a pod's launcher does.
func execPause() {
	f, err := reaper.Memfd()
	if err != nil {
		fail(err)
	}
	err = reaper.Exec(int(f.Fd()))
	runtime.KeepAlive(f)
	fail(err)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "reaper test helper:", err)
	os.Exit(2)
}

// pauseCmd returns a command that re-executes the test binary, which then
// becomes pause, as PID 1 of new PID and mount namespaces: a pod's init.
// Pdeathsig kills it if the test process dies.
func pauseCmd(helper string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+helper)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNS,
		Pdeathsig:  syscall.SIGKILL,
	}
	return cmd
}

// child is a started process and its waiter.
type child struct {
	cmd  *exec.Cmd
	pid  int
	done chan struct{}
	err  error // what cmd.Wait returned; set before done is closed
}

// start starts cmd, and kills and waits for it when the test ends. Killing a
// PID namespace's init makes the kernel kill everything else in it.
func start(t *testing.T, cmd *exec.Cmd) *child {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

// wait waits up to timeout for c to exit and returns how it did.
func (c *child) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case <-c.done:
		return c.err
	case <-time.After(timeout):
		t.Fatalf("%s (pid %d) still running after %v", c.cmd.Path, c.pid, timeout)
		return nil
	}
}

// sigBit reports whether sig is in a /proc/PID/status signal mask.
func sigBit(mask string, sig unix.Signal) bool {
	m, err := strconv.ParseUint(mask, 16, 64)
	return err == nil && m&(1<<(sig-1)) != 0
}

// waitSleeping waits until pid, named comm, sleeps waiting for signals it
// blocks: a signal-handling init is then ready. While a process waits in
// rt_sigtimedwait the kernel shows the waited-for signals as unblocked (they
// are saved in real_blocked), so that system call counts as blocking them.
func waitSleeping(t *testing.T, pid int, comm string) {
	t.Helper()
	waitFor(t, 20*time.Second, func() string {
		st, err := procStatus(pid)
		if err != nil {
			return err.Error()
		}
		sc, _ := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
		inWait := strings.HasPrefix(string(sc), strconv.Itoa(unix.SYS_RT_SIGTIMEDWAIT)+" ")
		if st["Name"] != comm || !strings.HasPrefix(st["State"], "S") || !inWait && !sigBit(st["SigBlk"], unix.SIGTERM) {
			return fmt.Sprintf("pid %d is %q, %s, blocking %s, in system call %q; want %q asleep waiting for signals",
				pid, st["Name"], st["State"], st["SigBlk"], strings.TrimSpace(string(sc)), comm)
		}
		return ""
	})
}

// startPause starts pause with cmd and waits until it is ready.
func startPause(t *testing.T, cmd *exec.Cmd) *child {
	t.Helper()
	p := start(t, cmd)
	waitSleeping(t, p.pid, "pause")
	return p
}

func TestPauseIsPodInit(t *testing.T) {
	testenv.RequireRoot(t)
	p := startPause(t, pauseCmd("pause"))
	st, err := procStatus(p.pid)
	if err != nil {
		t.Fatal(err)
	}
	nspid := strings.Fields(st["NSpid"])
	if len(nspid) != 2 || nspid[1] != "1" {
		t.Errorf("NSpid = %q, want the host PID and 1", st["NSpid"])
	}
}

func TestSignals(t *testing.T) {
	testenv.RequireRoot(t)
	// Signals that must not end pause. SIGTSTP would stop a process that
	// does not block it; 40 is a real-time signal.
	ignored := []unix.Signal{
		unix.SIGHUP, unix.SIGUSR1, unix.SIGUSR2, unix.SIGPIPE, unix.SIGQUIT,
		unix.SIGALRM, unix.SIGCHLD, unix.SIGTSTP, unix.SIGWINCH, unix.Signal(40),
	}
	for _, stop := range []unix.Signal{unix.SIGTERM, unix.SIGINT} {
		t.Run(unix.SignalName(stop), func(t *testing.T) {
			p := startPause(t, pauseCmd("pause"))
			for _, sig := range ignored {
				if err := unix.Kill(p.pid, sig); err != nil {
					t.Fatalf("kill %s: %v", unix.SignalName(sig), err)
				}
			}
			// Once nothing is pending pause has dequeued every signal, and
			// it is still asleep (not a zombie, not stopped).
			waitFor(t, 5*time.Second, func() string {
				st, err := procStatus(p.pid)
				if err != nil {
					return err.Error()
				}
				if pnd := st["SigPnd"] + st["ShdPnd"]; strings.Trim(pnd, "0") != "" {
					return "signals still pending: " + pnd
				}
				if !strings.HasPrefix(st["State"], "S") {
					return "pause is " + st["State"] + " after ignored signals, want sleeping"
				}
				return ""
			})
			select {
			case <-p.done:
				t.Fatalf("pause ended after ignored signals: %v", p.err)
			default:
			}

			if err := unix.Kill(p.pid, stop); err != nil {
				t.Fatal(err)
			}
			if err := p.wait(t, 5*time.Second); err != nil {
				t.Fatalf("pause after %s: %v, want exit status 0", unix.SignalName(stop), err)
			}
		})
	}
}

// TestOrphanStorm makes thousands of orphans inside pause's PID namespace,
// from several processes at once, and checks that pause reaps them all.
func TestOrphanStorm(t *testing.T) {
	testenv.RequireRoot(t)
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		t.Fatal(err)
	}
	const workers, orphans = 8, 500
	p := startPause(t, pauseCmd("pause"))
	ns, err := pidNS(p.pid)
	if err != nil {
		t.Fatal(err)
	}

	// nsenter forks into pause's PID namespace, so the shell is in it. Each
	// "(true &)" is a subshell that forks a child and exits at once: the
	// child, alive or already a zombie, is reparented to pause.
	script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do (true &); i=$((i+1)); done`, orphans)
	var ws []*child
	for range workers {
		ws = append(ws, start(t, exec.Command(nsenter, "--target", strconv.Itoa(p.pid), "--pid", "--", "/bin/sh", "-c", script)))
	}
	for _, w := range ws {
		if err := w.wait(t, time.Minute); err != nil {
			t.Fatalf("nsenter worker: %v", err)
		}
	}
	end := time.Now()

	zombies := func() string {
		procs, err := nsProcs(ns, p.pid)
		if err != nil {
			return err.Error()
		}
		var z []int
		for pid, st := range procs {
			if st.state == 'Z' {
				z = append(z, pid)
			}
		}
		if len(z) > 0 {
			slices.Sort(z)
			return fmt.Sprintf("%d zombies in pause's PID namespace, e.g. %v", len(z), z[:min(len(z), 10)])
		}
		return ""
	}
	waitFor(t, 100*time.Millisecond, zombies)
	t.Logf("no zombie left %v after the storm of %d orphans ended", time.Since(end).Round(time.Millisecond), workers*orphans)

	// Orphans still running then must also be reaped when they end.
	waitFor(t, 5*time.Second, func() string {
		procs, err := nsProcs(ns, p.pid)
		if err != nil {
			return err.Error()
		}
		if len(procs) > 0 {
			return fmt.Sprintf("%d processes left in pause's PID namespace", len(procs))
		}
		return ""
	})
	// The kernel adds a child's page faults to its parent's cminflt when the
	// parent waits for it; a kernel auto-reaping them would add nothing.
	st, err := readStat(p.pid)
	if err != nil {
		t.Fatal(err)
	}
	if st.cminflt == 0 {
		t.Error("pause's cminflt is 0: it waited for none of the orphans")
	}
}

// TestSubreaper checks that pause, when it is not PID 1, still adopts and
// reaps its descendants' orphans.
func TestSubreaper(t *testing.T) {
	testenv.RequireRoot(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	// The shell prints the orphan's PID once pause closes its fd 3, or once
	// the helper dies, whichever comes first. Unless the orphan was reaped,
	// the cleanup reads the PID and kills it even if the test failed early,
	// so the orphan never outlives the test. It runs after start's cleanup,
	// which kills pause.
	br := bufio.NewReader(r)
	orphan, reaped := 0, false
	readOrphan := func(timeout time.Duration) error {
		if orphan != 0 {
			return nil
		}
		if err := r.SetReadDeadline(time.Now().Add(timeout)); err != nil {
			return err
		}
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		orphan, err = strconv.Atoi(strings.TrimSpace(line))
		return err
	}
	t.Cleanup(func() {
		if !reaped && readOrphan(5*time.Second) == nil {
			unix.Kill(orphan, unix.SIGKILL)
		}
		r.Close()
	})
	cmd := pauseCmd("orphan")
	cmd.SysProcAttr.Cloneflags = 0
	cmd.Stdout = w
	p := start(t, cmd)
	w.Close()
	waitSleeping(t, p.pid, "pause")
	if err := readOrphan(10 * time.Second); err != nil {
		t.Fatalf("read the orphan's PID: %v", err)
	}

	waitFor(t, 5*time.Second, func() string {
		st, err := readStat(orphan)
		if err != nil {
			return err.Error()
		}
		if st.ppid != p.pid {
			return fmt.Sprintf("orphan %d has parent %d, want pause (%d)", orphan, st.ppid, p.pid)
		}
		return ""
	})
	if err := unix.Kill(orphan, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The orphan and the shell that left it are both gone: reaped by pause.
	waitFor(t, 5*time.Second, func() string {
		if _, err := readStat(orphan); err == nil {
			return fmt.Sprintf("orphan %d not reaped", orphan)
		}
		if kids := childrenOf(t, p.pid); len(kids) > 0 {
			return fmt.Sprintf("pause still has children %v", kids)
		}
		return ""
	})
	reaped = true

	if err := unix.Kill(p.pid, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(t, 5*time.Second); err != nil {
		t.Fatalf("pause after SIGTERM: %v, want exit status 0", err)
	}
}

// childrenOf returns the PIDs whose parent is pid, zombies included.
func childrenOf(t *testing.T, pid int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var kids []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			if st, err := readStat(n); err == nil && st.ppid == pid {
				kids = append(kids, n)
			}
		}
	}
	return kids
}
