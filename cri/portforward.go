package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/nsenter"
	"github.com/podsb/podsb/sandbox"
)

// dialTimeout bounds a port-forward's connect in the pod.
const dialTimeout = 10 * time.Second

// portForward connects to port on the loopback of the pod podID (127.0.0.1,
// else ::1) and copies between the connection and stream until the pod's
// side ends or ctx does. The client ending its side closes the
// connection's writing half: the pod's side may still answer.
func (s *Server) portForward(ctx context.Context, podID string, port int32, stream io.ReadWriteCloser) error {
	if err := checkPort(port); err != nil {
		return fmt.Errorf("port-forward to pod %s: %w", podID, err)
	}
	pod, err := sandbox.Load(s.root, podID)
	if err != nil {
		return fmt.Errorf("port-forward to pod %s: %w", podID, err)
	}
	if pod.Status() != specs.StateRunning {
		return fmt.Errorf("port-forward to pod %s: %w", podID, sandbox.ErrNotRunning)
	}
	conn, err := dialIn(ctx, pod.NamespacePath(specs.NetworkNamespace), port)
	if err != nil {
		return fmt.Errorf("port-forward to port %d in pod %s: %w", port, podID, err)
	}
	defer conn.Close()
	go func() {
		io.Copy(conn, stream)
		conn.CloseWrite()
	}()
	down := make(chan struct{})
	go func() {
		defer close(down)
		io.Copy(stream, conn)
	}()
	select {
	case <-down:
	case <-ctx.Done():
	}
	return nil
}

// dialIn connects to port on the loopback of the network namespace whose
// handle is at nsPath. The socket is made on a thread that joined the
// namespace (package nsenter), and so lives there; its data then moves on
// any thread.
func dialIn(ctx context.Context, nsPath string, port int32) (*net.TCPConn, error) {
	h, err := nsenter.Open([]nsenter.Namespace{{Type: unix.CLONE_NEWNET, Path: nsPath}})
	if err != nil {
		return nil, err
	}
	defer h.Close()
	var c net.Conn
	err = h.Do(func() error {
		d := net.Dialer{Timeout: dialTimeout}
		p := strconv.Itoa(int(port))
		c4, err4 := d.DialContext(ctx, "tcp4", net.JoinHostPort("127.0.0.1", p))
		if errors.Is(err4, unix.ECONNREFUSED) {
			if c6, err6 := d.DialContext(ctx, "tcp6", net.JoinHostPort("::1", p)); err6 == nil {
				c4, err4 = c6, nil
			}
		}
		c = c4
		return err4
	})
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}
