package crilog

import (
	"bufio"
	"context"
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
)

func TestLogLines(t *testing.T) {
	before := time.Now()
	c := startCtr(t, ctrOpts{script: `echo one; echo two >&2; echo "three  with  spaces"; printf 'no newline at the end'`})
	if fi, err := os.Lstat(c.socket); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v (%v), want 0600", fi.Mode(), err)
	}
	// The logger left its starter's session.
	if sid, err := unix.Getsid(c.h.PID); err != nil || sid != c.h.PID {
		t.Errorf("logger's session %d (%v), want its own (%d)", sid, err, c.h.PID)
	}
	c.wait()
	after := time.Now()
	ls := readLog(t, c.log)
	if got, want := text(ls, Stdout), "one\nthree  with  spaces\nno newline at the end\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if got, want := text(ls, Stderr), "two\n"; got != want {
		t.Errorf("stderr %q, want %q", got, want)
	}
	last := map[string]time.Time{}
	for _, l := range ls {
		if l.Partial {
			t.Errorf("partial record %+v", l)
		}
		if l.Time.Before(before) || l.Time.After(after) || l.Time.Before(last[l.Stream]) {
			t.Errorf("record time %v: not in [%v, %v] or before the stream's last", l.Time, before, after)
		}
		last[l.Stream] = l.Time
	}
	// Every record is one line "TIME STREAM F CONTENT", the time in UTC
	// with nine digits, as containerd writes it.
	b, _ := os.ReadFile(c.log)
	for _, raw := range strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n") {
		ts, _, _ := strings.Cut(raw, " ")
		if len(ts) != len("2016-10-06T00:17:09.669794202Z") || !strings.HasSuffix(ts, "Z") {
			t.Errorf("record time %q", ts)
		}
	}
	fi, err := os.Stat(c.log)
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("log mode %v (%v), want 0640", fi.Mode(), err)
	}
}

func TestLogPartialLines(t *testing.T) {
	// 40000 a's and a newline, then 16384 b's and a newline (exactly the
	// limit: one F record), then 16385 c's without one.
	c := startCtr(t, ctrOpts{script: `head -c 40000 /dev/zero | tr '\0' a; echo; head -c 16384 /dev/zero | tr '\0' b; echo; head -c 16385 /dev/zero | tr '\0' c`})
	c.wait()
	var got []string
	for _, l := range readLog(t, c.log) {
		tag := "F"
		if l.Partial {
			tag = "P"
		}
		got = append(got, fmt.Sprintf("%s%d%s", tag, len(l.Content), l.Content[:min(1, len(l.Content))]))
	}
	want := []string{"P16384a", "P16384a", "F7232a", "F16384b", "P16384c", "F1c"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("records %v, want %v", got, want)
	}
}

func TestLogUntilOutputEnds(t *testing.T) {
	// The shell exits at once; a child of it holds its stdout and writes
	// later: the logger waits for it.
	c := startCtr(t, ctrOpts{script: `(sleep 0.5; echo late) & echo early`})
	if err := <-c.exited; err != nil {
		t.Fatal(err)
	}
	c.exited <- nil // for Cleanup
	c.wait()
	if got := text(readLog(t, c.log), Stdout); got != "early\nlate\n" {
		t.Errorf("stdout %q", got)
	}
}

func TestLogPromptly(t *testing.T) {
	// A line is in the log while the container still runs: nothing waits
	// for more output.
	c := startCtr(t, ctrOpts{script: `echo first; read x; echo second`, stdin: "test"})
	waitFor(t, "the first line in the log", func() bool { return logHas(t, c.log, Stdout, "first\n") })
	c.stdin.Write([]byte("\n"))
	c.wait()
}

func TestLogIgnoresSignals(t *testing.T) {
	c := startCtr(t, ctrOpts{script: `read x; echo after`, stdin: "test"})
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE} {
		if err := syscall.Kill(c.h.PID, sig); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	select {
	case <-c.loggerDone:
		t.Fatalf("the logger died of a signal: %v", c.loggerErr)
	default:
	}
	c.stdin.Write([]byte("\n"))
	c.wait()
	if got := text(readLog(t, c.log), Stdout); got != "after\n" {
		t.Errorf("stdout %q", got)
	}
}

func TestReopenAfterRename(t *testing.T) {
	c := startCtr(t, ctrOpts{script: `echo before; read x; echo after`, stdin: "test"})
	waitFor(t, "the first line", func() bool { return logHas(t, c.log, Stdout, "before") })
	if err := os.Rename(c.log, c.log+".1"); err != nil {
		t.Fatal(err)
	}
	if err := Reopen(context.Background(), c.socket); err != nil {
		t.Fatalf("Reopen: %v", err)
	}
	c.stdin.Write([]byte("\n"))
	c.wait()
	if got := text(readLog(t, c.log+".1"), Stdout); got != "before\n" {
		t.Errorf("rotated log %q", got)
	}
	if got := text(readLog(t, c.log), Stdout); got != "after\n" {
		t.Errorf("new log %q", got)
	}
	fi, err := os.Stat(c.log)
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("new log's mode %v (%v), want 0640", fi.Mode(), err)
	}
	// The logger is gone: Reopen says so.
	if err := Reopen(context.Background(), c.socket); !errors.Is(err, ErrEnded) {
		t.Errorf("Reopen after the end: %v, want ErrEnded", err)
	}
}

func TestReopenDirectoryGone(t *testing.T) {
	logs := filepath.Join(t.TempDir(), "logs")
	if err := os.Mkdir(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	c := startCtr(t, ctrOpts{script: `echo before; read x; echo after`, stdin: "test", logDir: logs})
	waitFor(t, "the first line", func() bool { return logHas(t, c.log, Stdout, "before") })
	moved := logs + ".moved"
	if err := os.Rename(logs, moved); err != nil {
		t.Fatal(err)
	}
	err := Reopen(context.Background(), c.socket)
	if err == nil || !strings.Contains(err.Error(), "no such file or directory") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Reopen into a vanished directory: %v, want one line with ENOENT", err)
	}
	// The logger keeps writing the file it has.
	c.log = filepath.Join(moved, "ctr.log")
	c.stdin.Write([]byte("\n"))
	c.wait()
	if got := text(readLog(t, c.log), Stdout); got != "before\nafter\n" {
		t.Errorf("log %q", got)
	}
}

func TestLogDiskFull(t *testing.T) {
	// The log is /dev/full, whose writes fail with ENOSPC: the logger
	// drops the records, says so once, and keeps the container's output
	// flowing; after a Reopen onto a file it says it writes again.
	dir := t.TempDir()
	log, sock := filepath.Join(dir, "log"), filepath.Join(dir, "s")
	if err := os.Symlink("/dev/full", log); err != nil {
		t.Fatal(err)
	}
	diag, _ := os.Create(filepath.Join(dir, "diag"))
	defer diag.Close()
	outR, outW := pipe(t)
	errR, errW := pipe(t)
	h, err := Start(Options{Binary: loggerBin, LogPath: log, Socket: sock, Stdout: outR, Stderr: errR, Diag: diag})
	if err != nil {
		t.Fatal(err)
	}
	outR.Close()
	errR.Close()
	errW.Close()
	line := []byte(strings.Repeat("y", 99) + "\n")
	for i := 0; i < 20000; i++ { // 2 MB: more than a pipe holds
		if _, err := outW.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the report", func() bool {
		b, _ := os.ReadFile(diag.Name())
		return len(b) > 0
	})
	os.Remove(log)
	if err := Reopen(context.Background(), sock); err != nil {
		t.Fatal(err)
	}
	outW.Write([]byte("fine\n"))
	outW.Close()
	if err := h.Wait(); err != nil {
		t.Fatalf("logger: %v", err)
	}
	b, _ := os.ReadFile(diag.Name())
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "podsb-logger: write "+log+": no space left on device: dropping output until writes succeed") ||
		!strings.Contains(lines[1], "writing "+log+" again: ") {
		t.Errorf("reports %q, want one about ENOSPC and one about the recovery", lines)
	}
	// (Output read before the reopen may be written after it.)
	if got := text(readLog(t, log), Stdout); !strings.HasSuffix("\n"+got, "\nfine\n") {
		t.Errorf("log after the reopen: %d bytes, not ending in fine", len(got))
	}
}

// TestLoggerOutlivesStarter: the program that started the logger is
// killed (a CRI server's SIGKILL); the logger keeps the container's output
// flowing, serves attach, and ends with it.
func TestLoggerOutlivesStarter(t *testing.T) {
	dir := t.TempDir()
	log, sock := filepath.Join(dir, "ctr.log"), filepath.Join(dir, "ctr.sock")
	outR, outW := pipe(t)
	errR, errW := pipe(t)
	inR, inW := pipe(t)
	defer inW.Close()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	st := exec.Command(self)
	st.Env = append(os.Environ(), "CRILOG_TEST_STARTER="+loggerBin, "CRILOG_TEST_LOG="+log, "CRILOG_TEST_SOCKET="+sock)
	st.ExtraFiles = []*os.File{outR, errR}
	out, err := st.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Start(); err != nil {
		t.Fatal(err)
	}
	outR.Close()
	errR.Close()
	line, err := bufio.NewReader(out).ReadString('\n')
	pid, perr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || perr != nil {
		st.Process.Kill()
		st.Wait()
		t.Fatalf("starter: %q %v %v", line, err, perr)
	}
	st.Process.Kill()
	st.Wait()
	sh := exec.Command("/bin/sh", "-c", "echo before; read x; echo after")
	sh.Stdin, sh.Stdout, sh.Stderr = inR, outW, errW
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	inR.Close()
	outW.Close()
	errW.Close()
	defer sh.Wait()
	waitFor(t, "the first line", func() bool { return logHas(t, log, Stdout, "before") })
	var got strings.Builder
	attached := make(chan error, 1)
	go func() { attached <- Attach(context.Background(), sock, nil, &got, nil, nil) }()
	time.Sleep(100 * time.Millisecond) // let it attach (a late one sees less, not an error)
	inW.Write([]byte("\n"))
	if err := <-attached; err != nil {
		t.Errorf("Attach: %v", err)
	}
	waitFor(t, "the orphaned logger to exit", func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		return err != nil || strings.Contains(string(b), ") Z ")
	})
	if text := text(readLog(t, log), Stdout); text != "before\nafter\n" {
		t.Errorf("log %q", text)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left: %v", err)
	}
}
