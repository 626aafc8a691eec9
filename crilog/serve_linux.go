package crilog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

const (
	// clientBudget is how many bytes of output may wait for an attached
	// client: beyond it the logger waits for the client (and the container
	// for the logger, as with containerd), for stallTimeout at most before
	// it disconnects the client.
	clientBudget = 4 << 20
	stallTimeout = 5 * time.Second
	// helloTimeout bounds how long a client may take to say what it wants.
	helloTimeout = 10 * time.Second
	// finishTimeout bounds how long the logger, once the output ended,
	// waits for a client to take the rest of its output.
	finishTimeout = 5 * time.Second
)

// client is one attached connection.
type client struct {
	conn     *net.UnixConn
	once     bool          // stdin-once: the end of its input ends the container's
	wake     chan struct{} // (capacity 1) the queue changed
	progress chan struct{} // (capacity 1) the writer sent some of the queue
	done     chan struct{} // closed when the writer ended

	mu     sync.Mutex // guards the fields below
	queue  [][]byte   // frames to send
	queued int        // their bytes
	closed bool       // no more frames: the writer ends once the queue is sent
}

func newClient(conn *net.UnixConn) *client {
	return &client{conn: conn, wake: make(chan struct{}, 1), progress: make(chan struct{}, 1), done: make(chan struct{})}
}

// push queues a frame. While the queue holds clientBudget bytes it waits
// for the writer, for stall at most (0: not at all), and then reports
// false.
func (c *client) push(f []byte, stall time.Duration) bool {
	var timeout <-chan time.Time
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return true
		}
		if stall == 0 || c.queued == 0 || c.queued+len(f) <= clientBudget {
			c.queue = append(c.queue, f)
			c.queued += len(f)
			c.mu.Unlock()
			notify(c.wake)
			return true
		}
		c.mu.Unlock()
		if timeout == nil {
			timeout = time.After(stall)
		}
		select {
		case <-c.progress:
		case <-timeout:
			return false
		}
	}
}

// close ends the queue: the writer sends what is queued and ends.
func (c *client) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	notify(c.wake)
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (l *logger) accept() {
	for {
		conn, err := l.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of fds or memory: wait rather than spin.
			time.Sleep(100 * time.Millisecond)
			continue
		}
		go l.serve(conn)
	}
}

// serve answers one connection: its hello, then a reopen or an attach.
func (l *logger) serve(conn *net.UnixConn) {
	_ = conn.SetDeadline(time.Now().Add(helloTimeout))
	fr := &frameReader{r: conn}
	typ, p, err := fr.next()
	if err != nil {
		conn.Close()
		return
	}
	h, err := parseHello(p)
	if err == nil && typ != frameHello {
		err = fmt.Errorf("%w: want a hello frame first", errProto)
	}
	if err == nil && h.stdin && l.stdin == nil {
		err = errors.New("attach with stdin: the container has no stdin")
	}
	if err == nil && h.stdin && l.stdinClosed.Load() {
		err = errors.New("attach with stdin: the container's stdin is closed (stdin-once)")
	}
	if err != nil {
		_ = writeFrame(conn, frameError, []byte(err.Error()))
		conn.Close()
		return
	}
	if h.op == "reopen" {
		if err := l.reopen(); err != nil {
			_ = writeFrame(conn, frameError, []byte(err.Error()))
		} else {
			_ = writeFrame(conn, frameOK, nil)
		}
		conn.Close()
		return
	}
	_ = conn.SetDeadline(time.Time{})
	l.attach(conn, fr, h)
}

// attach streams the output to conn and its input to the container until
// either side ends.
func (l *logger) attach(conn *net.UnixConn, fr *frameReader, h hello) {
	reply := frame(frameHello, []byte(fmt.Sprintf("%s %d", protoName, protoVersion)))
	l.mu.Lock()
	if l.ended {
		l.mu.Unlock()
		_, _ = conn.Write(append(reply, frame(frameExit, nil)...))
		conn.Close()
		return
	}
	c := newClient(conn)
	c.push(reply, 0)
	if h.stdin && l.c.stdinOnce && !l.onceTaken {
		l.onceTaken, c.once = true, true
	}
	l.clients[c] = struct{}{}
	l.mu.Unlock()
	go l.writeLoop(c)

	inputEnded := !h.stdin
	for {
		typ, p, err := fr.next()
		if err != nil {
			break
		}
		switch {
		case typ == frameStdin && !inputEnded:
			// Input the container cannot take any more is dropped; the
			// client learns of the end from the output.
			_ = l.writeInput(p)
			continue
		case typ == frameClose && !inputEnded:
			inputEnded = true
			if c.once {
				l.closeInput()
			}
			continue
		case typ == frameResize && len(p) == 4:
			l.resize(binary.BigEndian.Uint16(p[0:2]), binary.BigEndian.Uint16(p[2:4]))
			continue
		}
		break // a protocol error
	}
	// A client that vanished ended its input too.
	if c.once && !inputEnded {
		l.closeInput()
	}
	l.drop(c)
}

// writeLoop sends c's frames, all that are queued with one writev, until c
// is closed; once a write failed, it drops c.
func (l *logger) writeLoop(c *client) {
	defer close(c.done)
	failed := false
	for {
		c.mu.Lock()
		q, closed := c.queue, c.closed
		c.queue = nil
		c.mu.Unlock()
		if len(q) == 0 {
			if closed {
				return
			}
			<-c.wake
			continue
		}
		n := 0
		for _, f := range q {
			n += len(f)
		}
		if !failed {
			bufs := net.Buffers(q)
			if _, err := bufs.WriteTo(c.conn); err != nil {
				failed = true
				l.drop(c)
			}
		}
		c.mu.Lock()
		c.queued -= n
		c.mu.Unlock()
		notify(c.progress)
	}
}

// drop forgets c and closes its connection.
func (l *logger) drop(c *client) {
	l.mu.Lock()
	if _, ok := l.clients[c]; ok {
		delete(l.clients, c)
		c.close()
	}
	l.mu.Unlock()
	c.conn.Close()
}

// finish sends c the end of the output and closes it, waiting at most
// finishTimeout for a slow client. c is no longer in l.clients.
func (c *client) finish() {
	_ = c.conn.SetWriteDeadline(time.Now().Add(finishTimeout))
	c.push(frame(frameExit, nil), 0)
	c.close()
	<-c.done
	c.conn.Close()
}
