package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/setup"
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
	requireFastPath(t)
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
		{"", []string{"exec", strings.Repeat("a", 65), "--", "true"}},
		{"", []string{"exec", name, "--"}},
		{"", []string{"exec", "-e", "NOEQUALS", name, "--", "true"}},
		{"", []string{"exec", "-e", "=x", name, "--", "true"}},
		{"", []string{"exec", "-w", "relative", name, "--", "true"}},
		{"", []string{"--root=" + e.root, "exec", name, "--", "hostname"}},
		{"", []string{"exec", "--interactive", name, "--", "sh", "-c", "echo $HOSTNAME $HOME; pwd"}},
		{"", []string{"exec", name, "--", "sh", "-c", "cat /proc/self/status | grep -E '^(Uid|Gid|Groups):'"}},
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
	requireFastPath(t)
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
	threads := runningThreads(t, cmd)
	if err := cmd.Wait(); err == nil || cmd.ProcessState.ExitCode() != 128+15 {
		t.Errorf("fast=%v: forwarded SIGTERM: %v", fast, err)
	}
	return threads
}

// fastRan tells whether exec's C part ran the command: the launcher of a
// running command is then one thread, where Go's has several.
func fastRan(t *testing.T, e *env, name string) bool {
	t.Helper()
	return launcherThreads(t, e, name, true) == 1
}

// joinOf reads and decodes a pod's join record.
func joinOf(t *testing.T, e *env, name string) *setup.Join {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.root, name, setup.JoinFile))
	if err != nil {
		t.Fatal(err)
	}
	j, err := setup.DecodeJoin(b)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// writeJoin writes a join record to path as podsb would (root's, 0600).
func writeJoin(t *testing.T, path string, j *setup.Join) {
	t.Helper()
	b, err := j.Encode()
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestFastExecRefusesRecords gives exec's C part records it must not run:
// each time it leaves the exec to Go (the launcher is Go's), and the
// outcome is Go's (the same with PODSB_FASTEXEC=0).
func TestFastExecRefusesRecords(t *testing.T) {
	requireFastPath(t)
	both := func(t *testing.T, e *env, args ...string) result {
		t.Helper()
		fast, slow := e.runFast(true, "", args...), e.runFast(false, "", args...)
		if fast != slow {
			t.Errorf("%v: C part %+v, Go %+v", args, fast, slow)
		}
		return fast
	}
	t.Run("a join that is a symlink", func(t *testing.T) {
		e := newEnv(t)
		name, _ := e.create()
		// To the record itself, renamed: only the symlink is wrong.
		rec := filepath.Join(e.root, name, setup.JoinFile)
		if err := os.Rename(rec, rec+".real"); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(setup.JoinFile+".real", rec); err != nil {
			t.Fatal(err)
		}
		if fastRan(t, e, name) {
			t.Error("the C part ran a join record that is a symlink")
		}
		both(t, e, "exec", name, "--", "hostname")
	})
	t.Run("a group-writable join", func(t *testing.T) {
		e := newEnv(t)
		name, _ := e.create()
		if err := os.Chmod(filepath.Join(e.root, name, setup.JoinFile), 0o620); err != nil {
			t.Fatal(err)
		}
		if fastRan(t, e, name) {
			t.Error("the C part ran a group-writable join record")
		}
		both(t, e, "exec", name, "--", "hostname")
	})
	t.Run("a join not root's", func(t *testing.T) {
		e := newEnv(t)
		name, _ := e.create()
		if err := os.Chown(filepath.Join(e.root, name, setup.JoinFile), 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if fastRan(t, e, name) {
			t.Error("the C part ran a join record owned by nobody")
		}
		both(t, e, "exec", name, "--", "hostname")
	})
	t.Run("a join copied from another pod", func(t *testing.T) {
		e := newEnv(t)
		a, _ := e.create()
		b, _ := e.create()
		rec := filepath.Join(e.root, b, setup.JoinFile)
		ja := joinOf(t, e, a)
		// As it is: another pod's name.
		writeJoin(t, rec, ja)
		if fastRan(t, e, b) {
			t.Error("the C part ran another pod's join record")
		}
		if r := both(t, e, "exec", b, "--", "hostname"); r != (result{stdout: b + "\n"}) {
			t.Errorf("exec in %s: %+v", b, r)
		}
		// Renamed: its pause is not in the PID namespace pinned in ns/pid.
		ja.Name = b
		writeJoin(t, rec, ja)
		if fastRan(t, e, b) {
			t.Error("the C part ran a join record whose pause is another pod's")
		}
		if r := both(t, e, "exec", b, "--", "hostname"); r != (result{stdout: b + "\n"}) {
			t.Errorf("exec in %s: %+v", b, r)
		}
	})
	t.Run("a pod's directory under another name", func(t *testing.T) {
		// ROOT/ALIAS, a bind mount of ROOT/NAME: its record is NAME's.
		e := newEnv(t)
		name, _ := e.create()
		alias := e.name()
		dir := filepath.Join(e.root, alias)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount(filepath.Join(e.root, name), dir, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			unix.Unmount(dir, unix.MNT_DETACH)
			os.Remove(dir)
		})
		if fastRan(t, e, alias) {
			t.Error("the C part ran the record of a pod of another name")
		}
		both(t, e, "exec", alias, "--", "hostname")
	})
	t.Run("a state root others may write", func(t *testing.T) {
		// A 1777 state root: anyone could have planted a pod directory and
		// a record. Go's own refusal of such a root is another change;
		// here: the C part does not act, and the outcome is Go's.
		e := newEnv(t)
		name, _ := e.create()
		planted := e.name()
		if err := os.Mkdir(filepath.Join(e.root, planted), 0o700); err != nil {
			t.Fatal(err)
		}
		j := joinOf(t, e, name)
		j.Name = planted
		for i := range j.Namespaces {
			j.Namespaces[i].Path = filepath.Join("..", name, j.Namespaces[i].Path)
		}
		writeJoin(t, filepath.Join(e.root, planted, setup.JoinFile), j)
		t.Cleanup(func() { os.RemoveAll(filepath.Join(e.root, planted)) })
		if err := os.Chmod(e.root, 0o1777); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(e.root, 0o755) })
		// Where Go refuses such a root, the same refusal both ways shows
		// that the C part did not run the command; where Go accepts it,
		// the launcher must be Go's.
		if r := both(t, e, "exec", name, "--", "hostname"); r.code == 0 && fastRan(t, e, name) {
			t.Error("the C part acted in a state root writable by others")
		}
		// The planted pod has no state: Go's error, either way.
		if r := both(t, e, "exec", planted, "--", "hostname"); r.code != 125 || r.stdout != "" {
			t.Errorf("exec in a planted pod: %+v", r)
		}
	})
}

// TestFastExecLongCommand runs commands with very long names that are not
// found: stderr is one clean line, Go's, however long the name.
func TestFastExecLongCommand(t *testing.T) {
	requireFastPath(t)
	e := newEnv(t)
	name, _ := e.create()
	for _, cmd := range []string{
		strings.Repeat("a", 300),                           // longer than NAME_MAX
		"/" + strings.Repeat("b", 600),                     // a path longer than 512 bytes
		"/tmp/" + strings.Repeat("c/", 2100) + "nosuch",    // longer than PATH_MAX
		strings.Repeat("\u00e9", 200) + " with \"quotes\"", // not ASCII
	} {
		want := result{stderr: "podsb: " + cmd + ": command not found\n", code: 127}
		for _, fast := range []bool{true, false} {
			r := e.runFast(fast, "", "exec", name, "--", cmd)
			if r != want {
				t.Errorf("fast=%v: exec of a %d-byte name: %.200q (code %d), want one line", fast, len(cmd), r.stderr, r.code)
			}
			if strings.ContainsRune(r.stderr, 0) {
				t.Errorf("fast=%v: NUL bytes on stderr", fast)
			}
		}
	}
}
