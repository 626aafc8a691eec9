package crilog

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// node is a node logger: the log writer of every container of one
// podsb-cri, each served as by a logger of its own (same log, socket and
// protocol), in one process.
type node struct {
	diag    io.Writer
	control string
	ln      *net.UnixListener

	mu    sync.Mutex // guards the fields below
	ctrs  map[string]*nodeCtr
	conns map[*net.UnixConn]struct{}
	exit  chan struct{} // closed when it has neither containers nor servers
}

// nodeCtr is one container a node logger serves.
type nodeCtr struct {
	spec nodeSpec
	held []int // duplicates of its outputs, for a server that connects
}

// nodeMain is podsb-logger --node --control PATH --conn-fd N: a node
// logger, serving the server connected on fd N, and those that connect to
// PATH later, until it has neither containers nor servers.
func nodeMain(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("podsb-logger --node", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	control := fs.String("control", "", "")
	connFD := fs.Int("conn-fd", -1, "")
	fail := func(code int, err error) int {
		report(stderr, -1, err)
		return code
	}
	if err := fs.Parse(args); err != nil {
		return fail(ExitUsage, usageError{err.Error()})
	}
	if fs.NArg() > 0 {
		return fail(ExitUsage, usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))})
	}
	if *control == "" || !filepath.IsAbs(*control) {
		return fail(ExitUsage, usageError{fmt.Sprintf("--control must be an absolute path, got %q", *control)})
	}
	var conn *net.UnixConn
	if *connFD >= 3 {
		if typ, err := unix.GetsockoptInt(*connFD, unix.SOL_SOCKET, unix.SO_TYPE); err == nil && typ == unix.SOCK_SEQPACKET {
			f := os.NewFile(uintptr(*connFD), "conn")
			if fc, err := net.FileConn(f); err == nil {
				conn, _ = fc.(*net.UnixConn)
			}
			f.Close()
		}
	}
	if conn == nil {
		return fail(ExitUsage, usageError{fmt.Sprintf("--conn-fd %d: not a unix seqpacket socket of 3 or more", *connFD)})
	}
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE)
	_, _ = unix.Setsid()
	// Sockets are made 0600 with this umask, without changing it while
	// other goroutines create files; logs are chmodded to 0640.
	unix.Umask(0o177)
	ln, err := listenFresh("unixpacket", *control)
	if err != nil {
		_ = sendMsg(conn, nodeErr, []byte("podsb-logger: "+err.Error()), nil)
		return fail(ExitStart, err)
	}
	n := &node{diag: stderr, control: *control, ln: ln, ctrs: map[string]*nodeCtr{},
		conns: map[*net.UnixConn]struct{}{}, exit: make(chan struct{})}
	go n.accept()
	go n.serveConn(conn)
	<-n.exit
	return ExitOK
}

func (n *node) accept() {
	for {
		c, err := n.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		go n.serveConn(c)
	}
}

// serveConn greets a server, hands it duplicates of the outputs of every
// container it serves (so that the server can give them to a node logger
// that replaces this one), and serves its adds until it disconnects.
func (n *node) serveConn(c *net.UnixConn) {
	n.mu.Lock()
	err := sendMsg(c, nodeHello, []byte(fmt.Sprintf("%s %d node", protoName, protoVersion)), nil)
	for _, ctr := range n.ctrs {
		if err != nil {
			break
		}
		err = sendMsg(c, nodeList, ctr.spec.encode(), ctr.held)
	}
	if err == nil {
		err = sendMsg(c, nodeEnd, nil, nil)
	}
	if err == nil {
		n.conns[c] = struct{}{}
	}
	n.mu.Unlock()
	for err == nil {
		var typ byte
		var p []byte
		var fds []int
		if typ, p, fds, err = recvMsg(c); err != nil {
			break
		}
		if typ != nodeAdd {
			closeFDs(fds)
			break
		}
		id, aerr := n.add(p, fds)
		if aerr != nil {
			err = sendMsg(c, nodeErr, []byte(id+"\x00"+aerr.Error()), nil)
		} else {
			err = sendMsg(c, nodeOK, []byte(id), nil)
		}
	}
	c.Close()
	n.mu.Lock()
	delete(n.conns, c)
	n.maybeExit()
	n.mu.Unlock()
}

// add starts serving a container; it owns fds.
func (n *node) add(p []byte, fds []int) (string, error) {
	spec, err := decodeSpec(p)
	if err != nil {
		closeFDs(fds)
		return "", err
	}
	if len(fds) != spec.fdCount() {
		closeFDs(fds)
		return spec.id, fmt.Errorf("%w: %d fds, want %d", errProto, len(fds), spec.fdCount())
	}
	c := spec.config(fds)
	if err := c.check(); err != nil {
		closeFDs(fds)
		return spec.id, err
	}
	held, err := dupFDs(fds[:min(len(fds), 2)]) // the outputs (a terminal's master is one)
	if err != nil {
		closeFDs(fds)
		return spec.id, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.ctrs[spec.id]; ok {
		closeFDs(fds)
		closeFDs(held)
		return spec.id, fmt.Errorf("container %s is served already", spec.id)
	}
	l, err := newLogger(c, n.diag)
	if err != nil {
		closeFDs(fds)
		closeFDs(held)
		return spec.id, err
	}
	n.ctrs[spec.id] = &nodeCtr{spec: spec, held: held}
	go func() {
		l.run()
		n.ended(spec.id)
	}()
	return spec.id, nil
}

// ended forgets a container whose output ended and was written, and tells
// the servers.
func (n *node) ended(id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if ctr, ok := n.ctrs[id]; ok {
		closeFDs(ctr.held)
		delete(n.ctrs, id)
	}
	for c := range n.conns {
		_ = sendMsg(c, nodeDone, []byte(id), nil)
	}
	n.maybeExit()
}

// maybeExit ends the node logger once it serves no container and no
// server. n.mu is held.
func (n *node) maybeExit() {
	if len(n.ctrs) > 0 || len(n.conns) > 0 {
		return
	}
	select {
	case <-n.exit:
		return
	default:
	}
	n.ln.Close()
	os.Remove(n.control)
	close(n.exit)
}
