package crilog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// openPTY opens a terminal: its master (for the logger) and its slave (for
// the shell).
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, s, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	return m, s
}

func TestAttachStdinEcho(t *testing.T) {
	// cat echoes the client's input; with stdin-once the end of it ends
	// cat's input, so cat, the output and Attach end.
	c := startCtr(t, ctrOpts{script: `cat; echo done >&2`, stdin: "logger", stdinOnce: true})
	var out, errb bytes.Buffer
	if err := Attach(context.Background(), c.socket, strings.NewReader("hello\nworld\n"), &out, &errb, nil); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if out.String() != "hello\nworld\n" || errb.String() != "done\n" {
		t.Errorf("attach got %q, %q", out.String(), errb.String())
	}
	c.wait()
	ls := readLog(t, c.log)
	if text(ls, Stdout) != "hello\nworld\n" || text(ls, Stderr) != "done\n" {
		t.Errorf("log %q, %q", text(ls, Stdout), text(ls, Stderr))
	}
}

func TestAttachStdinWithoutOnce(t *testing.T) {
	// Without stdin-once the end of one client's input leaves the
	// container's stdin open for the next.
	c := startCtr(t, ctrOpts{script: `read a; echo "got $a"; read b; echo "got $b"`, stdin: "logger"})
	var out bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Attach(ctx, c.socket, strings.NewReader("one\n"), &out, nil, nil) }()
	waitFor(t, "the first line", func() bool { return logHas(t, c.log, Stdout, "got one") })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Attach after cancel: %v", err)
	}
	if err := Attach(context.Background(), c.socket, strings.NewReader("two\n"), nil, nil, nil); err != nil {
		t.Errorf("second Attach: %v", err)
	}
	c.wait()
	if got := text(readLog(t, c.log), Stdout); got != "got one\ngot two\n" {
		t.Errorf("log %q", got)
	}
}

func TestAttachTwoClients(t *testing.T) {
	c := startCtr(t, ctrOpts{script: `read x; seq 1 20000; echo err >&2`, stdin: "test"})
	a, b := attachRaw(t, c.socket, false), attachRaw(t, c.socket, false)
	c.stdin.Write([]byte("\n"))
	want, _ := exec.Command("seq", "1", "20000").Output()
	for i, cl := range []*rawClient{a, b} {
		out, errb := cl.readAll(t)
		if out != string(want) || errb != "err\n" {
			t.Errorf("client %d: %d bytes of stdout, stderr %q", i, len(out), errb)
		}
	}
	c.wait()
	if got := text(readLog(t, c.log), Stdout); got != string(want) {
		t.Errorf("log: %d bytes", len(got))
	}
}

func TestAttachClientVanishes(t *testing.T) {
	// One client goes away mid-stream, another never reads: neither stops
	// the output, the log or the third client. The one that never reads
	// holds the output for stallTimeout once it is clientBudget behind,
	// and is disconnected.
	c := startCtr(t, ctrOpts{script: `read x; seq 1 100000; read x; head -c 6000000 /dev/zero | tr '\0' x | fold -w 999`, stdin: "test"})
	gone, stuck, good := attachRaw(t, c.socket, false), attachRaw(t, c.socket, false), attachRaw(t, c.socket, false)
	c.stdin.Write([]byte("\n"))
	gone.fr.next()
	gone.conn.Close()
	c.stdin.Write([]byte("\n"))
	out, _ := good.readAll(t)
	seq, _ := exec.Command("seq", "1", "100000").Output()
	want := string(seq) + strings.Repeat(strings.Repeat("x", 999)+"\n", 6000000/999) + strings.Repeat("x", 6000000%999)
	if out != want {
		t.Errorf("the reading client got %d bytes, want %d", len(out), len(want))
	}
	c.wait()
	if got := text(readLog(t, c.log), Stdout); got != want+"\n" {
		t.Errorf("log: %d bytes, want %d", len(got), len(want)+1)
	}
	// The client that took nothing was disconnected without the end.
	for {
		typ, _, err := stuck.fr.next()
		if err != nil {
			break
		}
		if typ == frameExit {
			t.Errorf("the stuck client got the whole output")
		}
	}
}

func TestAttachAfterEnd(t *testing.T) {
	c := startCtr(t, ctrOpts{script: `exit 0`, stdin: "logger"})
	c.wait()
	if err := Attach(context.Background(), c.socket, nil, nil, nil, nil); !errors.Is(err, ErrEnded) {
		t.Errorf("Attach after the end: %v, want ErrEnded", err)
	}
}

func TestAttachStdinRefused(t *testing.T) {
	// A container without stdin, and one whose stdin-once input ended,
	// refuse input with a one-line error.
	c := startCtr(t, ctrOpts{script: `read x`, stdin: "test"})
	err := Attach(context.Background(), c.socket, strings.NewReader("x\n"), nil, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "has no stdin") {
		t.Errorf("Attach with stdin to a container without: %v", err)
	}
	c.stdin.Write([]byte("\n"))
	c.wait()

	c = startCtr(t, ctrOpts{script: `cat >/dev/null; sleep 1`, stdin: "logger", stdinOnce: true})
	first := attachRaw(t, c.socket, true)
	writeFrame(first.conn, frameClose, nil)
	first.conn.Close()
	waitFor(t, "stdin closed", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		err := Attach(ctx, c.socket, strings.NewReader(""), nil, nil, nil)
		return err != nil && strings.Contains(err.Error(), "stdin is closed")
	})
	c.wait()
}

func TestAttachTTYResize(t *testing.T) {
	c := startCtr(t, ctrOpts{script: `read x; stty size; read x; stty size`, stdin: "logger", tty: true})
	cl := attachRaw(t, c.socket, true)
	resize := func(w, h uint16) {
		var b [4]byte
		binary.BigEndian.PutUint16(b[0:2], w)
		binary.BigEndian.PutUint16(b[2:4], h)
		if err := writeFrame(cl.conn, frameResize, b[:]); err != nil {
			t.Fatal(err)
		}
	}
	resize(100, 40)
	writeFrame(cl.conn, frameStdin, []byte("\n"))
	waitFor(t, "the first size", func() bool { return logHas(t, c.log, Stdout, "40 100") })
	resize(132, 50)
	writeFrame(cl.conn, frameStdin, []byte("\n"))
	out, errb := cl.readAll(t)
	if !strings.Contains(out, "40 100\r\n") || !strings.Contains(out, "50 132\r\n") || errb != "" {
		t.Errorf("attach got %q, %q", out, errb)
	}
	c.wait()
	// A terminal's output is all stdout, its "\r\n" a line end.
	ls := readLog(t, c.log)
	if got := text(ls, Stdout); got != "\n40 100\n\n50 132\n" {
		t.Errorf("log %q", got)
	}
}

func TestAttachTTYStdinOnce(t *testing.T) {
	// On a terminal the end of the first client's input is the terminal's
	// end-of-file character: cat ends.
	c := startCtr(t, ctrOpts{script: `cat`, stdin: "logger", stdinOnce: true, tty: true})
	var out bytes.Buffer
	resize := make(chan Size, 1)
	resize <- Size{Width: 80, Height: 24}
	if err := Attach(context.Background(), c.socket, strings.NewReader("hi\nno newline"), &out, nil, resize); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	// The terminal echoes, cat repeats.
	if got := strings.Count(out.String(), "hi\r\n"); got != 2 || !strings.Contains(out.String(), "no newline") {
		t.Errorf("attach got %q", out.String())
	}
	c.wait()
}

// TestAttachWaitsForTheLog: an Attach without streams returns once the
// log is complete, the last line (without a newline) included.
func TestAttachWaitsForTheLog(t *testing.T) {
	c := startCtr(t, ctrOpts{script: `read x; printf 'last words'`, stdin: "test"})
	done := make(chan error, 1)
	go func() { done <- Attach(context.Background(), c.socket, nil, nil, nil, nil) }()
	time.Sleep(50 * time.Millisecond)
	c.stdin.Write([]byte("\n"))
	if err := <-done; err != nil && !errors.Is(err, ErrEnded) {
		t.Fatalf("Attach: %v", err)
	}
	if got := text(readLog(t, c.log), Stdout); got != "last words\n" {
		t.Errorf("log when Attach returned: %q", got)
	}
	c.wait()
}
