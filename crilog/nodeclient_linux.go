package crilog

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// NodeOptions says which node logger a Node uses.
type NodeOptions struct {
	// Binary is podsb-logger's path; "" finds BinaryName next to the
	// running program, else in PATH.
	Binary string
	// Control is the node logger's control socket (absolute): a Node
	// connects to the node logger serving it, or starts one there.
	Control string
	// Diag is the node logger's stderr; nil discards it.
	Diag *os.File
	// OnRestart, if not nil, is told when a node logger that died was
	// replaced (err nil) or could not be (the reason).
	OnRestart func(err error)
}

// Node is a server's side of its node logger: one podsb-logger process
// that writes the logs of all its containers (package doc). A Node holds
// duplicates of every container's outputs, so that a node logger that dies
// is replaced and given them back, and it gets them from the node logger
// when it connects, so that a server that restarted can do the same. Its
// methods are safe for concurrent use.
type Node struct {
	opts NodeOptions

	mu     sync.Mutex // serializes connecting and adds; guards conn, closed
	conn   *nodeConn
	closed bool

	hmu  sync.Mutex      // guards held
	held map[string]held // by container ID
}

// held is a container's spec and the Node's duplicates of its outputs.
type held struct {
	spec nodeSpec
	fds  []int
}

// nodeConn is one connection to a node logger.
type nodeConn struct {
	c       *net.UnixConn
	pid     int           // the node logger's, if this Node started it; else 0
	replies chan []byte   // the answer to the add in flight: type and payload
	done    chan struct{} // closed when the connection ended
}

// addTimeout bounds how long an add or a handshake takes.
const addTimeout = 10 * time.Second

// NewNode returns a Node. It connects to a node logger already serving
// Control (one a previous server started), taking the outputs it holds;
// otherwise it starts one at the first Add.
func NewNode(opts NodeOptions) *Node {
	n := &Node{opts: opts, held: map[string]held{}}
	if _, err := os.Lstat(opts.Control); err == nil {
		n.mu.Lock()
		_, _ = n.connectLocked(false)
		n.mu.Unlock()
	}
	return n
}

// Add has the node logger serve a container: id (no '/' or space), and its
// log, socket and files as for Start (Binary and Diag are the Node's). It
// returns once the log is open and the socket served. The files stay the
// caller's.
func (n *Node) Add(id string, o Options) error {
	spec := nodeSpec{id: id, logPath: o.LogPath, socket: o.Socket, tty: o.PTY != nil, stdin: o.Stdin, stdinOnce: o.StdinOnce}
	var files []*os.File
	if spec.tty {
		files = []*os.File{o.PTY}
	} else {
		files = []*os.File{o.Stdout, o.Stderr}
		if o.Stdin {
			files = append(files, o.StdinPipe)
		}
	}
	var fds []int
	for _, f := range files {
		if f == nil {
			return fmt.Errorf("log writer of %s: missing a file", id)
		}
		fds = append(fds, int(f.Fd()))
	}
	outs, err := dupFDs(fds[:min(len(fds), 2)])
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		closeFDs(outs)
		return errors.New("log writer: the node is closed")
	}
	for attempt := 0; ; attempt++ {
		var nc *nodeConn
		if nc, err = n.connectLocked(true); err != nil {
			err = connError{err} // another server's node logger won the control socket, say
		} else {
			if err = nc.add(spec, fds); err == nil {
				n.hmu.Lock()
				n.held[id] = held{spec: spec.outputs(), fds: outs}
				n.hmu.Unlock()
				return nil
			}
		}
		// A node logger that was exiting, or died, as we connected: once
		// more with a new one.
		var ce connError
		if !errors.As(err, &ce) || attempt > 0 {
			break
		}
	}
	closeFDs(outs)
	return fmt.Errorf("log writer: %w", err)
}

// Forget drops the Node's duplicates of a container's outputs (it was
// removed).
func (n *Node) Forget(id string) {
	n.hmu.Lock()
	defer n.hmu.Unlock()
	if h, ok := n.held[id]; ok {
		closeFDs(h.fds)
		delete(n.held, id)
	}
}

// PID is the node logger's process ID if this Node started the one it is
// connected to, else 0 (tests).
func (n *Node) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return 0
	}
	return n.conn.pid
}

// Close disconnects: a node logger with no container left exits. The
// containers' logs go on.
func (n *Node) Close() {
	n.mu.Lock()
	n.closed = true
	if n.conn != nil {
		n.conn.c.Close()
		n.conn = nil
	}
	n.mu.Unlock()
	n.hmu.Lock()
	for id, h := range n.held {
		closeFDs(h.fds)
		delete(n.held, id)
	}
	n.hmu.Unlock()
}

// connError is a connection that failed: the node logger is gone.
type connError struct{ err error }

func (e connError) Error() string { return e.err.Error() }
func (e connError) Unwrap() error { return e.err }

// connectLocked returns the live connection, or connects to the node
// logger at Control, or (if start) starts one; then it hands the node
// logger the containers it holds and the logger does not serve (a node
// logger that replaced one that died). n.mu is held.
func (n *Node) connectLocked(start bool) (*nodeConn, error) {
	if nc := n.conn; nc != nil {
		select {
		case <-nc.done:
		default:
			return nc, nil
		}
		n.conn = nil
	}
	var nc *nodeConn
	c, err := dial(context.Background(), "unixpacket", n.opts.Control)
	switch {
	case err == nil:
		nc = &nodeConn{c: c}
	case !start:
		return nil, err
	default:
		if nc, err = n.startLocked(); err != nil {
			return nil, err
		}
	}
	nc.replies, nc.done = make(chan []byte, 1), make(chan struct{})
	listed, err := n.handshake(nc)
	if err != nil {
		nc.c.Close()
		return nil, err
	}
	n.conn = nc
	go n.read(nc)
	n.hmu.Lock()
	var missing []held
	for id, h := range n.held {
		if !listed[id] {
			missing = append(missing, h)
		}
	}
	n.hmu.Unlock()
	for _, h := range missing {
		if err := nc.add(h.spec, h.fds); err != nil {
			n.restarted(fmt.Errorf("hand container %s to the node logger: %w", h.spec.id, err))
		}
	}
	return nc, nil
}

// startLocked starts a node logger, connected by a socket pair.
func (n *Node) startLocked() (*nodeConn, error) {
	bin := n.opts.Binary
	if bin == "" {
		var err error
		if bin, err = findBinary(); err != nil {
			return nil, err
		}
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket pair: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "node"), os.NewFile(uintptr(fds[1]), "node")
	defer theirs.Close()
	cmd := exec.Command(bin, "--node", "--control", n.opts.Control, "--conn-fd", "3")
	cmd.ExtraFiles = []*os.File{theirs}
	if n.opts.Diag != nil {
		cmd.Stderr = n.opts.Diag
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/"
	// One P: the logger waits on I/O, and each P costs memory.
	cmd.Env = []string{"GOMAXPROCS=1"}
	if err := cmd.Start(); err != nil {
		ours.Close()
		return nil, fmt.Errorf("start %s: %w", BinaryName, err)
	}
	go cmd.Wait() //nolint:errcheck // reaped; its end shows on the connection
	fc, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		return nil, err
	}
	return &nodeConn{c: fc.(*net.UnixConn), pid: cmd.Process.Pid}, nil
}

// handshake reads the node logger's hello and the containers it serves,
// taking the duplicates of their outputs it does not hold yet.
func (n *Node) handshake(nc *nodeConn) (map[string]bool, error) {
	_ = nc.c.SetReadDeadline(time.Now().Add(addTimeout))
	defer nc.c.SetReadDeadline(time.Time{})
	listed := map[string]bool{}
	for first := true; ; first = false {
		typ, p, fds, err := recvMsg(nc.c)
		if err != nil {
			return nil, connError{fmt.Errorf("node logger: %w", err)}
		}
		switch {
		case first && typ == nodeHello && string(p) == fmt.Sprintf("%s %d node", protoName, protoVersion):
			continue
		case first && typ == nodeErr:
			return nil, errors.New(string(p))
		case !first && typ == nodeEnd:
			return listed, nil
		case !first && typ == nodeList:
			spec, err := decodeSpec(p)
			if err != nil || len(fds) != min(spec.fdCount(), 2) {
				closeFDs(fds)
				continue
			}
			listed[spec.id] = true
			n.hmu.Lock()
			if _, ok := n.held[spec.id]; ok {
				closeFDs(fds)
			} else {
				n.held[spec.id] = held{spec: spec.outputs(), fds: fds}
			}
			n.hmu.Unlock()
			continue
		}
		closeFDs(fds)
		return nil, fmt.Errorf("node logger: %w: unexpected message %q", errProto, typ)
	}
}

// add sends an add and waits for its answer.
func (nc *nodeConn) add(spec nodeSpec, fds []int) error {
	if err := sendMsg(nc.c, nodeAdd, spec.encode(), fds); err != nil {
		return connError{err}
	}
	select {
	case r := <-nc.replies:
		if r[0] == nodeOK {
			return nil
		}
		_, msg, _ := strings.Cut(string(r[1:]), "\x00")
		return errors.New(msg)
	case <-nc.done:
		return connError{errors.New("the node logger exited")}
	case <-time.After(addTimeout):
		nc.c.Close()
		return fmt.Errorf("the node logger did not answer in %v", addTimeout)
	}
}

// read reads nc's messages: answers to adds, and containers whose output
// ended. When the connection ends (the node logger died), it replaces the
// node logger if it holds containers.
func (n *Node) read(nc *nodeConn) {
	for {
		typ, p, fds, err := recvMsg(nc.c)
		if err != nil {
			break
		}
		closeFDs(fds)
		switch typ {
		case nodeOK, nodeErr:
			select {
			case nc.replies <- append([]byte{typ}, p...):
			default:
			}
		case nodeDone:
			n.Forget(string(p))
		}
	}
	close(nc.done)
	nc.c.Close()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn != nc || n.closed {
		return
	}
	n.conn = nil
	n.hmu.Lock()
	holding := len(n.held) > 0
	n.hmu.Unlock()
	if !holding {
		return
	}
	var err error
	for range 3 {
		if _, err = n.connectLocked(true); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	n.restarted(err)
}

func (n *Node) restarted(err error) {
	if n.opts.OnRestart != nil {
		n.opts.OnRestart(err)
	}
}

// outputs is s as a Node holds it: without a stdin pipe, which the Node
// does not hold (a terminal's master is its output and input).
func (s nodeSpec) outputs() nodeSpec {
	if !s.tty {
		s.stdin, s.stdinOnce = false, false
	}
	return s
}
