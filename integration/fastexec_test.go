package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// runFast runs podsb with exec's C part on (fast) or off (PODSB_FASTEXEC=0,
// the Go program does everything).
func (e *env) runFast(fast bool, stdin string, args ...string) result {
	e.t.Helper()
	cmd := exec.Command(e.bin, append([]string{"--root", e.root}, args...)...)
	cmd.Env = append(os.Environ(), "PODSB_FASTEXEC=1")
	if !fast {
		cmd.Env = append(os.Environ(), "PODSB_FASTEXEC=0")
	}
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	return e.runCmd(cmd)
}

// TestFastExecParity runs the forms of exec that the C part takes (and some
// it leaves to Go) both ways: the same output, errors and exit codes.
func TestFastExecParity(t *testing.T) {
	e := newEnv(t)
	name, _ := e.create("--hostname", "parity")
	stopped, d := e.create()
	unix.Kill(d.Pid, unix.SIGKILL)
	if err := waitDead(d.Pid, d.StartTime, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		stdin string
		args  []string
	}{
		{"", []string{"exec", name, "--", "echo", "hello"}},
		{"", []string{"exec", name, "echo", "no", "dashes"}},
		{"", []string{"exec", name, "--", "sh", "-c", "exit 3"}},
		{"", []string{"exec", name, "--", "sh", "-c", "kill -9 $$"}},
		{"", []string{"exec", name, "--", "no-such-command"}},
		{"", []string{"exec", name, "--", "/etc/hosts"}},
		{"", []string{"exec", name, "--", "/etc"}},
		{"", []string{"exec", name, "--", "sh", "-c", "env | sort"}},
		{"", []string{"exec", "-e", "A=1", "--env", "HOME=/tmp", "--env=B=2=3", "-e", "A=4", name, "--", "sh", "-c", "env | sort"}},
		{"", []string{"exec", "-w", "/etc", name, "--", "pwd"}},
		{"", []string{"exec", "--workdir=/proc", name, "--", "pwd"}},
		{"", []string{"exec", "-w", "/nonexistent", name, "--", "true"}},
		{"", []string{"exec", "-w", "/etc/hosts", name, "--", "true"}},
		{"round trip\n", []string{"exec", "-i", name, "--", "cat"}},
		{"not read\n", []string{"exec", name, "--", "cat"}},
		{"", []string{"exec", name, "--", "sh", "-c", "ls /proc/self/fd | wc -l; cat /proc/self/status | grep -E '^(Cap|NoNewPrivs|Seccomp:)'"}},
		{"", []string{"exec", name, "--", "sh", "-c", "test $$ -gt 1 && cat /proc/1/comm"}},
		{"", []string{"exec", stopped, "--", "true"}},
		{"", []string{"exec", "nosuchpod", "--", "true"}},
		{"", []string{"exec", "../x", "--", "true"}},
		{"", []string{"exec", strings.Repeat("a", 64), "--", "true"}},
		{"", []string{"exec", name, "--"}},
		{"", []string{"exec", "-e", "NOEQUALS", name, "--", "true"}},
		{"", []string{"exec", "-e", "=x", name, "--", "true"}},
		{"", []string{"exec", "-w", "relative", name, "--", "true"}},
		{"", []string{"--root=" + e.root, "exec", name, "--", "hostname"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			fast := e.runFast(true, tc.stdin, tc.args...)
			slow := e.runFast(false, tc.stdin, tc.args...)
			if fast != slow {
				t.Errorf("C part: %+v\nGo:     %+v", fast, slow)
			}
		})
	}
}

// TestFastExecTaken checks that the C part does run the common form: the
// launcher of a running command is then a single thread, where the Go
// program has several. After podsb start (a new pause) too.
func TestFastExecTaken(t *testing.T) {
	e := newEnv(t)
	name, d := e.create()
	if n := launcherThreads(t, e, name, true); n != 1 {
		t.Errorf("C part: the launcher has %d threads", n)
	}
	if n := launcherThreads(t, e, name, false); n < 2 {
		t.Errorf("PODSB_FASTEXEC=0: the launcher has %d threads", n)
	}
	unix.Kill(d.Pid, unix.SIGKILL)
	if err := waitDead(d.Pid, d.StartTime, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	e.must("start", name)
	e.inspect(name) // its new pause, for the leak check
	if n := launcherThreads(t, e, name, true); n != 1 {
		t.Errorf("after start: the launcher has %d threads", n)
	}
	// A pod with a cgroup has no join record: exec is Go's.
	limited, _ := e.create("--pids-limit", "50")
	if _, err := os.Stat(filepath.Join(e.root, limited, "join")); !os.IsNotExist(err) {
		t.Errorf("join record of a pod with a cgroup: %v", err)
	}
	if n := launcherThreads(t, e, limited, true); n < 2 {
		t.Errorf("pod with a cgroup: the launcher has %d threads", n)
	}
}

// launcherThreads runs a command in the pod and returns how many threads
// podsb exec has while it runs; it checks that SIGTERM is forwarded.
func launcherThreads(t *testing.T, e *env, name string, fast bool) int {
	t.Helper()
	cmd := exec.Command(e.bin, "--root", e.root, "exec", name, "--", "sleep", "5")
	cmd.Env = append(os.Environ(), fmt.Sprintf("PODSB_FASTEXEC=%d", map[bool]int{true: 1}[fast]))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	threads := 0
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		// The child of any of its threads (Go forks from a locked one).
		task := filepath.Join("/proc", fmt.Sprint(cmd.Process.Pid), "task")
		ents, _ := os.ReadDir(task)
		kids := ""
		for _, t := range ents {
			b, _ := os.ReadFile(filepath.Join(task, t.Name(), "children"))
			kids += string(b)
		}
		if len(strings.Fields(kids)) > 0 {
			threads = len(ents)
			break
		}
	}
	cmd.Process.Signal(unix.SIGTERM)
	if err := cmd.Wait(); err == nil || cmd.ProcessState.ExitCode() != 128+15 {
		t.Errorf("fast=%v: forwarded SIGTERM: %v", fast, err)
	}
	return threads
}

// TestFastRmParity removes pods with rm's C part and with Go
// (PODSB_FASTEXEC=0): the same output, errors and exit codes, and nothing
// left (the env's leak checks).
func TestFastRmParity(t *testing.T) {
	e := newEnv(t)
	long := strings.Repeat("a", 64)
	for _, fast := range []bool{true, false} {
		// A running pod with a container and a detached command.
		busy, _ := e.create()
		e.must("run", "-d", "--name", "c1", busy, "--", "sleep", "100")
		e.must("exec", "-d", busy, "--", "sleep", "100")
		// A pod whose pause was killed.
		stopped, d := e.create()
		unix.Kill(d.Pid, unix.SIGKILL)
		if err := waitDead(d.Pid, d.StartTime, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		plain, _ := e.create()
		limited, _ := e.create("--pids-limit", "50")
		for _, args := range [][]string{
			{"rm", busy}, {"rm", stopped}, {"rm", "-f", plain}, {"rm", limited},
			{"rm", "nosuchpod"}, {"rm", "-f", "nosuchpod"}, {"rm", "../x"}, {"rm", long}, {"rm", busy},
		} {
			r := e.runFast(fast, "", args...)
			want := result{stdout: args[len(args)-1] + "\n"}
			switch args[len(args)-1] {
			case "nosuchpod":
				want = result{stderr: "podsb: no such pod: nosuchpod\n", code: 125}
				if args[1] == "-f" {
					want = result{}
				}
			case "../x":
				want = result{stderr: "podsb: pod name \"../x\": must match [A-Za-z0-9][A-Za-z0-9_.-]*\n", code: 125}
			case long:
				want = result{stderr: fmt.Sprintf("podsb: pod name %.20q...: longer than 63 characters\n", long), code: 125}
			}
			if args[1] == busy && r.code == 125 { // the second rm of busy
				want = result{stderr: "podsb: no such pod: " + busy + "\n", code: 125}
			}
			if r != want {
				t.Errorf("fast=%v %v: %+v, want %+v", fast, args, r, want)
			}
		}
		checkNoLeaks(t, e.root, e.names, e.pids)
	}
}

// TestFastRmTaken checks that rm's C part runs: while it waits for a
// stopped pause to take its SIGTERM, podsb rm is a single thread.
func TestFastRmTaken(t *testing.T) {
	e := newEnv(t)
	for _, fast := range []bool{true, false} {
		name, d := e.create()
		unix.Kill(d.Pid, unix.SIGSTOP)
		cmd := exec.Command(e.bin, "--root", e.root, "rm", name)
		cmd.Env = append(os.Environ(), fmt.Sprintf("PODSB_FASTEXEC=%d", map[bool]int{true: 1}[fast]))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", cmd.Process.Pid))
		unix.Kill(d.Pid, unix.SIGCONT)
		if err := cmd.Wait(); err != nil {
			t.Errorf("fast=%v: rm: %v", fast, err)
		}
		if fast && len(ents) != 1 || !fast && len(ents) < 2 {
			t.Errorf("fast=%v: podsb rm had %d threads", fast, len(ents))
		}
	}
}

// TestFastCreateParity makes pods with create's C part and with Go: the
// same state (but for PIDs, times and inodes), join record, root, mounts
// and devices in the pod, output and errors.
func TestFastCreateParity(t *testing.T) {
	e := newEnv(t)
	// The first create of a state root is Go's, and writes the record.
	first := e.name()
	if r := e.runFast(true, "", "create", "--network", "none", first); r.code != 0 {
		t.Fatal(r)
	}
	record := filepath.Join(e.root, ".create")
	fi, err := os.Stat(record)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("create record: %v %v", fi, err)
	}
	look := "hostname; cat /etc/hostname /etc/hosts /etc/resolv.conf /etc/passwd; ls -l /dev | cut -c1-10,35-; " +
		"cut -d' ' -f5,6 /proc/self/mountinfo | sort; grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/1/status; " +
		"ps -o pid,comm 2>/dev/null | head -3; ip -o link"
	norm := func(name string) (string, string) {
		b, err := os.ReadFile(filepath.Join(e.root, name, "state.json"))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		d := e.inspect(name)
		for _, v := range []string{fmt.Sprint(d.Pid), fmt.Sprint(d.StartTime), d.Created.Format(time.RFC3339Nano)} {
			s = strings.ReplaceAll(s, v, "X")
		}
		for _, ns := range d.Namespaces {
			s = strings.ReplaceAll(s, fmt.Sprint(ns.Inode), "INO")
		}
		s = strings.ReplaceAll(s, name, "NAME")
		r := e.run("exec", name, "--", "sh", "-c", look)
		if r.code != 0 {
			t.Fatalf("in %s: %+v", name, r)
		}
		return s, strings.ReplaceAll(r.stdout, name, "NAME")
	}
	fast, slow := e.name(), e.name()
	for _, c := range []struct {
		fast bool
		name string
	}{{true, fast}, {false, slow}} {
		if r := e.runFast(c.fast, "", "create", "--network", "none", c.name); r != (result{stdout: c.name + "\n"}) {
			t.Fatalf("fast=%v create: %+v", c.fast, r)
		}
		// The C part only reads the record; Go's create writes it anew
		// (a new file): so the C part made the first pod.
		fi2, _ := os.Stat(record)
		if os.SameFile(fi, fi2) != c.fast {
			t.Errorf("fast=%v: the record was rewritten: %v", c.fast, !os.SameFile(fi, fi2))
		}
		fi = fi2
	}
	fs, fp := norm(fast)
	ss, sp := norm(slow)
	if fs != ss {
		t.Errorf("state.json: C part:\n%s\nGo:\n%s", fs, ss)
	}
	if fp != sp {
		t.Errorf("in the pod: C part:\n%s\nGo:\n%s", fp, sp)
	}
	jf, _ := os.ReadFile(filepath.Join(e.root, fast, "join"))
	js, _ := os.ReadFile(filepath.Join(e.root, slow, "join"))
	jf = bytes.ReplaceAll(jf, []byte(fast), []byte("NAME"))
	js = bytes.ReplaceAll(js, []byte(slow), []byte("NAME"))
	if len(jf) != len(js) || len(jf) < 24 || !bytes.Equal(jf[24:], js[24:]) { // past magic, PID and start time
		t.Errorf("join records differ: %d and %d bytes", len(jf), len(js))
	}
	// Errors, and a generated name.
	for _, args := range [][]string{
		{"create", "--network", "none", fast}, {"create", "--network", "none", "../x"},
		{"create", "--network", "none", strings.Repeat("a", 64)},
	} {
		a, b := e.runFast(true, "", args...), e.runFast(false, "", args...)
		if a != b || a.code != 125 {
			t.Errorf("%v: C part %+v, Go %+v", args, a, b)
		}
	}
	r := e.runFast(true, "", "create", "--network", "none")
	gen := strings.TrimSpace(r.stdout)
	if r.code != 0 || len(gen) != 12 || strings.Trim(gen, "0123456789abcdef") != "" {
		t.Fatalf("generated name: %+v", r)
	}
	e.use(gen)
	e.inspect(gen)
	// A record that no longer holds (another boot, a corrupt one) leaves
	// the create to Go, which writes it again.
	b, _ := os.ReadFile(record)
	d := e.inspect(fast)
	os.WriteFile(record, bytes.Replace(b, []byte(d.BootID), []byte("00000000-0000-0000-0000-000000000000"), 1), 0o600)
	stale, _ := os.Stat(record)
	if r := e.runFast(true, "", "create", "--network", "none", e.name()); r.code != 0 {
		t.Fatal(r)
	}
	if now, _ := os.Stat(record); os.SameFile(stale, now) {
		t.Errorf("a stale record was used, or not rewritten")
	}
	os.WriteFile(record, []byte("podsbC1\ngarbage"), 0o600)
	if r := e.runFast(true, "", "create", "--network", "none", e.name()); r.code != 0 {
		t.Fatal(r)
	}
	// A record others could have written is not used either.
	os.Chmod(record, 0o666)
	open, _ := os.Stat(record)
	if r := e.runFast(true, "", "create", "--network", "none", e.name()); r.code != 0 {
		t.Fatal(r)
	}
	if now, _ := os.Stat(record); os.SameFile(open, now) || now.Mode().Perm() != 0o600 {
		t.Errorf("a world-writable record was used, or not rewritten: %v", now.Mode())
	}
	// A name another state root's pod holds in /run/netns: declined by
	// the C part, refused by Go, nothing made in this state root.
	other := newEnv(t)
	other.create() // in Go: writes other's record
	for _, c := range []bool{true, false} {
		r := other.runFast(c, "", "create", "--network", "none", fast)
		if r.code != 125 || !strings.Contains(r.stderr, "exists in /run/netns") {
			t.Errorf("C part %v: the name of another root's pod: %+v", c, r)
		}
		if ents := stateEntries(other.root); len(ents) != 1 {
			t.Errorf("C part %v: %s holds %v", c, other.root, ents)
		}
	}
	// A record whose program fails in the init (sysfs misspelled, its
	// lengths intact): the C part's attempt is undone, and Go makes the
	// pod from its own plan.
	b, _ = os.ReadFile(record)
	os.WriteFile(record, bytes.ReplaceAll(b, []byte("sysfs\x00"), []byte("sysfz\x00")), 0o600)
	bad, _ := os.Stat(record)
	name := e.name()
	if r := e.runFast(true, "", "create", "--network", "none", name); r != (result{stdout: name + "\n"}) {
		t.Fatalf("after a failed init: %+v", r)
	}
	if now, _ := os.Stat(record); os.SameFile(bad, now) {
		t.Errorf("the failing record was not rewritten")
	}
	if r := e.run("exec", name, "--", "sh", "-c", "grep -c ' /sys sysfs ' /proc/self/mounts"); r.stdout != "1\n" {
		t.Errorf("the pod made after a failed init: %+v", r)
	}
	// Nothing but the record is left once the pods are gone (the env's
	// leak check).
}

// TestFastCreateKilled kills podsb create, run by its C part, at 40 points
// from its start to its end: rm -f then removes whatever it left, and
// nothing remains (no process, mount, link or file).
func TestFastCreateKilled(t *testing.T) {
	e := newEnv(t)
	first, _ := e.create() // in Go: writes the create record
	before := livePauses(t)
	for i := range 40 {
		name := e.name()
		cmd := exec.Command(e.bin, "--root", e.root, "create", "--network", "none", name)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(i) * 100 * time.Microsecond)
		cmd.Process.Kill()
		cmd.Wait()
		if r := e.run("rm", "-f", name); r.code != 0 {
			t.Errorf("rm -f after a create killed at %d µs: %+v", i*100, r)
		}
	}
	e.must("rm", first)
	checkPausesBack(t, before)
	checkNoLeaks(t, e.root, e.names, e.pids)
}
