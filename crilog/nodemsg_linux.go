package crilog

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// The node protocol (version 1), between podsb-cri and a node logger, on a
// unix seqpacket socket: one message per packet, a type byte and a
// payload, with file descriptors as SCM_RIGHTS.
const (
	nodeHello = 'H' // logger to server, first: "podsb-logger 1 node"
	nodeList  = 'L' // logger to server: a container it serves (spec), with its outputs
	nodeEnd   = 'Z' // logger to server: the list is complete
	nodeAdd   = 'A' // server to logger: serve a container (spec), with its fds
	nodeOK    = 'K' // logger to server: the add is done (payload: the ID)
	nodeErr   = 'E' // logger to server: the add failed (ID, NUL, reason) or the logger cannot start (reason)
	nodeDone  = 'D' // logger to server: a container's output ended and is written (ID)

	// maxNodeFDs is the most fds a message carries: stdout, stderr, stdin.
	maxNodeFDs = 3
	// maxNodeMsg bounds a message: two paths and an ID.
	maxNodeMsg = 3 * 4096
)

// nodeSpec is one container as a node logger serves it: its ID, log,
// attach socket and flags. On the wire: the fields NUL-separated, the
// flags as space-separated words.
type nodeSpec struct {
	id, logPath, socket   string
	tty, stdin, stdinOnce bool
}

func (s nodeSpec) encode() []byte {
	var flags []string
	for _, f := range []struct {
		on   bool
		word string
	}{{s.tty, "tty"}, {s.stdin, "stdin"}, {s.stdinOnce, "stdin-once"}} {
		if f.on {
			flags = append(flags, f.word)
		}
	}
	return []byte(s.id + "\x00" + s.logPath + "\x00" + s.socket + "\x00" + strings.Join(flags, " "))
}

func decodeSpec(p []byte) (nodeSpec, error) {
	f := strings.Split(string(p), "\x00")
	if len(f) != 4 || f[0] == "" || strings.ContainsAny(f[0], "/ ") {
		return nodeSpec{}, fmt.Errorf("%w: bad container spec %q", errProto, p)
	}
	s := nodeSpec{id: f[0], logPath: f[1], socket: f[2]}
	for _, w := range strings.Fields(f[3]) {
		switch w {
		case "tty":
			s.tty = true
		case "stdin":
			s.stdin = true
		case "stdin-once":
			s.stdinOnce = true
		default:
			return nodeSpec{}, fmt.Errorf("%w: bad flag %q", errProto, w)
		}
	}
	return s, nil
}

// fdCount is how many fds come with s: the terminal, or stdout, stderr and
// stdin if it has one.
func (s nodeSpec) fdCount() int {
	switch {
	case s.tty:
		return 1
	case s.stdin:
		return 3
	}
	return 2
}

// config is s as the logger of one container runs it, on fds.
func (s nodeSpec) config(fds []int) config {
	c := config{logPath: s.logPath, socket: s.socket, stdin: s.stdin, stdinOnce: s.stdinOnce,
		stdoutFD: -1, stderrFD: -1, stdinFD: -1, ptyFD: -1, readyFD: -1}
	switch {
	case s.tty:
		c.ptyFD = fds[0]
	default:
		c.stdoutFD, c.stderrFD = fds[0], fds[1]
		if s.stdin {
			c.stdinFD = fds[2]
		}
	}
	return c
}

// sendMsg sends one message with fds (which stay the caller's).
func sendMsg(c *net.UnixConn, typ byte, payload []byte, fds []int) error {
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	_, _, err := c.WriteMsgUnix(append([]byte{typ}, payload...), oob, nil)
	return err
}

// recvMsg receives one message; its fds are the caller's to close. io.EOF
// when the peer closed.
func recvMsg(c *net.UnixConn) (typ byte, payload []byte, fds []int, err error) {
	buf := make([]byte, maxNodeMsg)
	oob := make([]byte, unix.CmsgSpace(4*maxNodeFDs))
	n, oobn, flags, _, err := c.ReadMsgUnix(buf, oob)
	if oobn > 0 {
		if msgs, perr := unix.ParseSocketControlMessage(oob[:oobn]); perr == nil {
			for _, m := range msgs {
				if r, perr := unix.ParseUnixRights(&m); perr == nil {
					fds = append(fds, r...)
				}
			}
		}
	}
	switch {
	case err == nil && n == 0:
		err = io.EOF
	case err == nil && flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0:
		err = fmt.Errorf("%w: message or fds cut short", errProto)
	}
	if err != nil {
		closeFDs(fds)
		if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, io.EOF) || errors.Is(err, errProto) {
			return 0, nil, nil, err
		}
		return 0, nil, nil, unwrapOp(err)
	}
	return buf[0], buf[1:n], fds, nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// dupFDs duplicates fds (close-on-exec).
func dupFDs(fds []int) ([]int, error) {
	var out []int
	for _, fd := range fds {
		d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			closeFDs(out)
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}
