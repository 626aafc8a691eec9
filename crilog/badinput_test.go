package crilog

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadInput runs podsb-logger with wrong flags, fds and paths: each
// gets one "podsb-logger: " line on stderr, its exit code, and leaves no
// log or socket behind.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	log, sock := filepath.Join(dir, "log"), filepath.Join(dir, "sock")
	longName := strings.Repeat("n", 100)
	notSock := filepath.Join(dir, "file")
	os.WriteFile(notSock, nil, 0o600)
	r, w := pipe(t)
	defer r.Close()
	defer w.Close()
	file, err := os.Open(notSock)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	for _, tc := range []struct {
		name  string
		args  []string
		files []*os.File // fds 3, 4, ...
		code  int
		want  string
	}{
		{"no flags", nil, nil, ExitUsage, "--log-path must be an absolute path"},
		{"unknown flag", []string{"--nope"}, nil, ExitUsage, "flag provided but not defined: -nope"},
		{"argument", []string{"--log-path", log, "--socket", sock, "x"}, nil, ExitUsage, `unexpected argument "x"`},
		{"relative log", []string{"--log-path", "log", "--socket", sock}, nil, ExitUsage, "--log-path must be an absolute path"},
		{"relative socket", []string{"--log-path", log, "--socket", "sock"}, nil, ExitUsage, "--socket must be an absolute path"},
		{"no fds", []string{"--log-path", log, "--socket", sock}, nil, ExitUsage, "want --stdout-fd and --stderr-fd"},
		{"missing fds", []string{"--log-path", log, "--socket", sock, "--stdout-fd", "3", "--stderr-fd", "4"}, nil, ExitUsage, "--stdout-fd 3: bad file descriptor"},
		{"same fd", []string{"--log-path", log, "--socket", sock, "--stdout-fd", "3", "--stderr-fd", "3"}, []*os.File{r}, ExitUsage, "--stderr-fd 3: must be 3 or more and differ"},
		{"stdio fd", []string{"--log-path", log, "--socket", sock, "--stdout-fd", "1", "--stderr-fd", "3"}, []*os.File{r}, ExitUsage, "--stdout-fd 1: must be 3 or more"},
		{"write end as output", []string{"--log-path", log, "--socket", sock, "--stdout-fd", "3", "--stderr-fd", "4"}, []*os.File{w, r}, ExitUsage, "--stdout-fd 3: not open for reading"},
		{"read end as stdin", []string{"--log-path", log, "--socket", sock, "--stdout-fd", "3", "--stderr-fd", "4", "--stdin", "--stdin-fd", "5"}, []*os.File{r, r, r}, ExitUsage, "--stdin-fd 5: not open for writing"},
		{"file as output", []string{"--log-path", log, "--socket", sock, "--stdout-fd", "3", "--stderr-fd", "4"}, []*os.File{file, r}, ExitUsage, "--stdout-fd 3: not a pipe or socket"},
		{"pipe as pty", []string{"--log-path", log, "--socket", sock, "--pty-fd", "3"}, []*os.File{r}, ExitUsage, "--pty-fd 3: not a terminal"},
		{"pty and pipes", []string{"--log-path", log, "--socket", sock, "--pty-fd", "3", "--stdout-fd", "4"}, nil, ExitUsage, "--pty-fd takes no --stdout-fd"},
		{"stdin without fd", []string{"--log-path", log, "--socket", sock, "--stdout-fd", "3", "--stderr-fd", "4", "--stdin"}, []*os.File{r, r}, ExitUsage, "--stdin and --stdin-fd go together"},
		{"stdin-once without stdin", []string{"--log-path", log, "--socket", sock, "--stdin-once"}, nil, ExitUsage, "--stdin-once needs --stdin"},
		{"bad ready fd", []string{"--log-path", log, "--socket", sock, "--ready-fd", "9"}, nil, ExitUsage, "--ready-fd 9: not an open fd"},
		{"log dir missing", []string{"--log-path", filepath.Join(dir, "no", "log"), "--socket", sock, "--stdout-fd", "3", "--stderr-fd", "4"}, []*os.File{r, r}, ExitStart, "open log: open " + filepath.Join(dir, "no", "log") + ": no such file or directory"},
		{"socket dir missing", []string{"--log-path", log, "--socket", filepath.Join(dir, "no", "sock"), "--stdout-fd", "3", "--stderr-fd", "4"}, []*os.File{r, r}, ExitStart, "no such file or directory"},
		{"socket name too long", []string{"--log-path", log, "--socket", filepath.Join(dir, longName), "--stdout-fd", "3", "--stderr-fd", "4"}, []*os.File{r, r}, ExitStart, "its name has 100 bytes, at most"},
		{"socket path is a file", []string{"--log-path", log, "--socket", notSock, "--stdout-fd", "3", "--stderr-fd", "4"}, []*os.File{r, r}, ExitStart, "the path exists and is not a socket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			cmd := exec.Command(loggerBin, tc.args...)
			cmd.ExtraFiles, cmd.Stderr = tc.files, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tc.code {
				t.Errorf("exit %v, want %d", err, tc.code)
			}
			msg := stderr.String()
			if !strings.HasPrefix(msg, "podsb-logger: ") || strings.Count(msg, "\n") != 1 || !strings.Contains(msg, tc.want) {
				t.Errorf("stderr %q, want one line with %q", msg, tc.want)
			}
			if _, err := os.Lstat(log); err == nil {
				t.Errorf("a failed start left the log")
			}
			if _, err := os.Lstat(sock); err == nil {
				t.Errorf("a failed start left the socket")
			}
		})
	}
}

// TestStartErrors: Start returns the logger's one-line error and reaps it.
func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	r, w := pipe(t)
	defer r.Close()
	defer w.Close()
	_, err := Start(Options{Binary: loggerBin, LogPath: filepath.Join(dir, "no", "log"), Socket: filepath.Join(dir, "s"), Stdout: r, Stderr: r})
	if err == nil || err.Error() != "podsb-logger: open log: open "+filepath.Join(dir, "no", "log")+": no such file or directory" {
		t.Errorf("Start with a missing log directory: %v", err)
	}
	_, err = Start(Options{Binary: filepath.Join(dir, "nope"), LogPath: filepath.Join(dir, "log"), Socket: filepath.Join(dir, "s"), Stdout: r, Stderr: r})
	if err == nil || !strings.Contains(err.Error(), "no such file or directory") {
		t.Errorf("Start of a missing binary: %v", err)
	}
	// A live logger's socket is not taken over.
	c := startCtr(t, ctrOpts{script: `read x`, stdin: "test"})
	_, err = Start(Options{Binary: loggerBin, LogPath: filepath.Join(dir, "log2"), Socket: c.socket, Stdout: r, Stderr: r})
	if err == nil || !strings.Contains(err.Error(), "another logger serves it") {
		t.Errorf("Start on a live socket: %v", err)
	}
	c.stdin.Write([]byte("\n"))
	c.wait()
}

// TestLongSocketPath: a socket path longer than a unix socket address
// holds is served and reached through its directory.
func TestLongSocketPath(t *testing.T) {
	dir := t.TempDir()
	for len(dir) < 200 {
		dir = filepath.Join(dir, strings.Repeat("d", 40))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := startCtr(t, ctrOpts{script: `cat`, stdin: "logger", stdinOnce: true, dir: dir})
	if len(c.socket) <= maxSockPath {
		t.Fatalf("socket path of %d bytes", len(c.socket))
	}
	if err := Reopen(context.Background(), c.socket); err != nil {
		t.Errorf("Reopen: %v", err)
	}
	var out bytes.Buffer
	if err := Attach(context.Background(), c.socket, strings.NewReader("long\n"), &out, nil, nil); err != nil || out.String() != "long\n" {
		t.Errorf("Attach: %v, %q", err, out.String())
	}
	c.wait()
}

// TestStaleSocket: the socket of a killed logger is replaced.
func TestStaleSocket(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "ctr.sock"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	c := startCtr(t, ctrOpts{script: `echo hi`, dir: dir})
	c.wait()
	if got := text(readLog(t, c.log), Stdout); got != "hi\n" {
		t.Errorf("log %q", got)
	}
}
