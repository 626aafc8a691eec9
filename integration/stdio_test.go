package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A host directory (or an O_PATH descriptor) given as a command's stdio
// would let the command reach host files through /proc/self/fd/N (the
// CVE-2024-21626 class): exec and run refuse it, with the fast path and
// without, and exec -d passes none of the caller's stdio.
func TestStdioDirectoryRefused(t *testing.T) {
	e := newEnv(t)
	name, _ := e.create()
	dir := t.TempDir()
	const secret = "host-secret-7f3a"
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	openDir := func(t *testing.T, flags int) *os.File {
		fd, err := unix.Open(dir, flags|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		return os.NewFile(uintptr(fd), dir)
	}
	for _, fast := range []bool{true, false} {
		for _, tc := range []struct {
			name  string
			fd    int // which stdio fd gets the directory
			flags int
			args  []string
			want  string
		}{
			{"exec stdin", 0, unix.O_RDONLY, []string{"exec", "-i", name, "--", "cat", "/proc/self/fd/0/secret"}, "stdin (fd 0) is a directory"},
			{"exec stdout", 1, unix.O_RDONLY, []string{"exec", name, "--", "sh", "-c", "cat /proc/$$/fd/1/secret >&2"}, "stdout (fd 1) is a directory"},
			{"exec stderr", 2, unix.O_RDONLY, []string{"exec", name, "--", "sh", "-c", "cat /proc/self/fd/2/secret"}, "stderr (fd 2) is a directory"},
			{"exec stdin O_PATH", 0, unix.O_PATH, []string{"exec", "-i", name, "--", "cat", "/proc/self/fd/0/secret"}, "stdin (fd 0) is"},
			{"run stdin", 0, unix.O_RDONLY, []string{"run", "-i", name, "--", "cat", "/proc/self/fd/0/secret"}, "stdin (fd 0) is a directory"},
			{"run stdout", 1, unix.O_RDONLY, []string{"run", name, "--", "sh", "-c", "cat /proc/$$/fd/1/secret >&2"}, "stdout (fd 1) is a directory"},
		} {
			t.Run(map[bool]string{true: "fast/", false: "go/"}[fast]+tc.name, func(t *testing.T) {
				if fast {
					requireFastPath(t)
				}
				f := openDir(t, tc.flags)
				defer f.Close()
				cmd := exec.Command(e.bin, append([]string{"--root", e.root}, tc.args...)...)
				cmd.Env = append(os.Environ(), map[bool]string{true: "PODSB_FASTEXEC=1", false: "PODSB_FASTEXEC=0"}[fast])
				var out, errb strings.Builder
				cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(""), &out, &errb
				switch tc.fd {
				case 0:
					cmd.Stdin = f
				case 1:
					cmd.Stdout = f
				case 2:
					cmd.Stderr = f
				}
				err := cmd.Run()
				code := cmd.ProcessState.ExitCode()
				if strings.Contains(out.String()+errb.String(), secret) {
					t.Fatalf("the pod read a host file through its %s: %v", tc.name, err)
				}
				if tc.fd == 2 {
					// The error went to the directory: only the code tells.
					if code != 125 {
						t.Errorf("exit %d, want 125", code)
					}
					return
				}
				if code != 125 || !strings.Contains(errb.String(), tc.want) || strings.Count(errb.String(), "\n") != 1 {
					t.Errorf("exit %d, stderr %q; want 125 and one line with %q", code, errb.String(), tc.want)
				}
			})
		}
	}
	// exec -d: stdin is /dev/null and the output goes to the log, whatever
	// the caller's stdin is.
	t.Run("exec -d", func(t *testing.T) {
		f := openDir(t, unix.O_RDONLY)
		defer f.Close()
		cmd := exec.Command(e.bin, "--root", e.root, "exec", "-d", name, "--", "sh", "-c", "cat /proc/self/fd/0/secret; echo done")
		cmd.Stdin = f
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("exec -d: %v", err)
		}
		pid := strings.TrimSpace(string(b))
		deadline := time.Now().Add(5 * time.Second)
		var log string
		for time.Now().Before(deadline) && !strings.Contains(log, "done") {
			log = e.must("logs", name, pid)
			time.Sleep(20 * time.Millisecond)
		}
		if !strings.Contains(log, "done") || strings.Contains(log, secret) {
			t.Errorf("log of exec -d: %q", log)
		}
	})
}

// exec racing rm: every exec runs, is killed with the pod, or fails with
// one of the documented errors; none prints a raw errno (the fast path
// once setns'd a handle rm had just unmounted: "errno 22").
func TestExecRacingRm(t *testing.T) {
	e := newEnv(t)
	allowed := regexp.MustCompile(`^podsb: (no such pod: t[0-9a-f]+|t[0-9a-f]+: pod is not running)\n$`)
	for round := range 30 {
		name, _ := e.create()
		var wg sync.WaitGroup
		results := make(chan result, 16)
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results <- e.runFast(i%2 == 0, "", "exec", name, "--", "true")
			}()
		}
		time.Sleep(time.Duration(round%5) * time.Millisecond)
		e.must("rm", "-f", name)
		wg.Wait()
		close(results)
		for r := range results {
			ok := r.code == 0 || r.code == 128+9 || (r.code == 125 && allowed.MatchString(r.stderr))
			if !ok || strings.Contains(r.stderr, "errno") {
				t.Errorf("exec racing rm: exit %d: %q", r.code, r.stderr)
			}
		}
	}
}
