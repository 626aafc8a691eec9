package crilog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"
)

const (
	// clientQueue is how many reads of output an attached client may fall
	// behind before it is disconnected.
	clientQueue = 64
	// helloTimeout bounds how long a client may take to say what it wants.
	helloTimeout = 10 * time.Second
	// finishTimeout bounds how long the logger, once the output ended,
	// waits for a client to take the rest of its output.
	finishTimeout = 5 * time.Second
)

// client is one attached connection.
type client struct {
	conn *net.UnixConn
	out  chan []byte   // frames to send; closed when the client is dropped
	done chan struct{} // closed when the writer ended
	once bool          // stdin-once: the end of its input ends the container's
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
	c := &client{conn: conn, out: make(chan []byte, clientQueue), done: make(chan struct{})}
	c.out <- reply
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

// writeLoop sends c's frames until c is dropped or finished.
func (l *logger) writeLoop(c *client) {
	defer close(c.done)
	failed := false
	for f := range c.out {
		if failed {
			continue
		}
		if _, err := c.conn.Write(f); err != nil {
			failed = true
			l.drop(c)
		}
	}
}

// drop forgets c and closes its connection.
func (l *logger) drop(c *client) {
	l.mu.Lock()
	if _, ok := l.clients[c]; ok {
		delete(l.clients, c)
		close(c.out)
	}
	l.mu.Unlock()
	c.conn.Close()
}

// finish sends c the end of the output and closes it, waiting at most
// finishTimeout for a slow client. c is no longer in l.clients.
func (c *client) finish() {
	deadline := time.Now().Add(finishTimeout)
	_ = c.conn.SetWriteDeadline(deadline)
	select {
	case c.out <- frame(frameExit, nil):
	case <-time.After(time.Until(deadline)):
	}
	close(c.out)
	<-c.done
	c.conn.Close()
}
