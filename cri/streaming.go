package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/klog/v2"
	utilexec "k8s.io/utils/exec"
)

// DefaultStreamAddr is where the streaming server listens unless
// Options.StreamAddr says otherwise: loopback, on a port chosen at start,
// as containerd's default. Exec, Attach and PortForward answer URLs on it
// that kubelet (or crictl), on the same machine, connects to.
const DefaultStreamAddr = "127.0.0.1:0"

// attachFunc streams a container's standard I/O: what Attach serves. ctx
// ends when the client disconnects or the server stops.
type attachFunc func(ctx context.Context, containerID string, stdin io.Reader, stdout, stderr io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error

// targetFunc resolves a CRI container ID to its pod's ID and its podsb
// container name (sandbox.ExecConfig.Container).
type targetFunc func(containerID string) (podID, name string, err error)

// streamer serves the streaming side of the CRI: the HTTP server whose URLs
// Exec, Attach and PortForward answer.
type streamer struct {
	addr string // to listen on

	// attach serves Attach; nil: Attach is Unimplemented.
	attach attachFunc
	// target resolves container IDs; nil: searchTarget.
	target targetFunc

	mu       sync.Mutex
	srv      streaming.Server // nil until start
	http     *http.Server
	stopping bool            // no new requests
	ctx      context.Context // ends when the server stops: ends every stream
	cancel   context.CancelFunc
	active   sync.WaitGroup // exec and attach requests being served
	conns    map[*watchedConn]struct{}
}

// track counts the exec and attach requests h serves, until the status
// of each has been written: a stop waits for them. A port-forward has no
// status: a stop closes its connection.
func (st *streamer) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st.mu.Lock()
		if st.stopping {
			st.mu.Unlock()
			http.Error(w, "the server is stopping", http.StatusServiceUnavailable)
			return
		}
		counted := !strings.HasPrefix(r.URL.Path, "/portforward/")
		if counted {
			st.active.Add(1)
		}
		st.mu.Unlock()
		if counted {
			defer st.active.Done()
		}
		h.ServeHTTP(w, r)
	})
}

var klogOnce sync.Once

func newStreamer(addr string) *streamer {
	if addr == "" {
		addr = DefaultStreamAddr
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &streamer{addr: addr, ctx: ctx, cancel: cancel, conns: map[*watchedConn]struct{}{}}
}

// startStreams listens on the streaming address and serves it until
// stopStreams.
func (s *Server) startStreams() error {
	st := s.stream
	l, err := net.Listen("tcp", st.addr)
	if err != nil {
		return fmt.Errorf("streaming server: %w", err)
	}
	addr := l.Addr().(*net.TCPAddr)
	if !addr.IP.IsLoopback() {
		s.log.Warn("streaming server not on loopback: anyone who reaches it and learns a URL's token can exec in containers", "addr", addr.String())
	}
	// The streaming package logs through klog: into the server's log.
	klogOnce.Do(func() { klog.SetSlogLogger(s.log.With("from", "streaming")) })
	cfg := streaming.DefaultConfig
	cfg.Addr = addr.String()
	cfg.BaseURL = &url.URL{Scheme: "http", Host: addr.String()}
	srv, err := streaming.NewServer(cfg, streamRuntime{s})
	if err != nil {
		l.Close()
		return fmt.Errorf("streaming server: %w", err)
	}
	hs := &http.Server{
		Handler:           st.track(srv),
		ReadHeaderTimeout: 10 * time.Second,
		ConnContext:       withConn,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	st.mu.Lock()
	st.srv, st.http = srv, hs
	st.mu.Unlock()
	s.log.Info("streaming", "addr", addr.String())
	go hs.Serve(watchListener{l, st})
	return nil
}

// stopStreams stops the streaming server: no new streams; the commands of
// exec streams are killed and their statuses sent, waited for up to grace;
// then every connection left (port-forwards) is closed.
func (s *Server) stopStreams(grace time.Duration) {
	st := s.stream
	st.mu.Lock()
	hs := st.http
	st.stopping = true
	st.mu.Unlock()
	if hs == nil {
		return
	}
	hs.Close() // the listener; upgraded connections are the streams'
	st.cancel()
	done := make(chan struct{})
	go func() {
		st.active.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(grace):
		s.log.Warn("exec streams still running at shutdown")
	}
	st.mu.Lock()
	left := make([]*watchedConn, 0, len(st.conns))
	for c := range st.conns {
		left = append(left, c)
	}
	st.mu.Unlock()
	for _, c := range left {
		c.Close()
	}
}

// server returns the streaming server, or an Unavailable error before it
// has started.
func (st *streamer) server() (streaming.Server, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.srv == nil {
		return nil, status.Error(codes.Unavailable, "the streaming server is not running")
	}
	return st.srv, nil
}

// Exec checks the request and answers the URL of a stream that runs the
// command in the container (streamRuntime.Exec).
func (s *Server) Exec(_ context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	if len(req.GetCmd()) == 0 || req.GetCmd()[0] == "" {
		return nil, invalidf("exec in container %s: the command is empty", req.GetContainerId())
	}
	if _, _, err := s.execPod(req.GetContainerId()); err != nil {
		return nil, err
	}
	srv, err := s.stream.server()
	if err != nil {
		return nil, err
	}
	return srv.GetExec(req)
}

// Attach answers the URL of a stream of the container's standard I/O, once
// something serves it (streamer.attach).
func (s *Server) Attach(_ context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	if s.stream.attach == nil {
		return nil, unimplementedf("attach to container %s: not supported by podsb yet", req.GetContainerId())
	}
	if _, _, err := s.execPod(req.GetContainerId()); err != nil {
		return nil, err
	}
	srv, err := s.stream.server()
	if err != nil {
		return nil, err
	}
	return srv.GetAttach(req)
}

// PortForward checks the pod and ports and answers the URL of a stream that
// forwards to the ports on the pod's loopback (streamRuntime.PortForward).
func (s *Server) PortForward(_ context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	rec, err := s.find(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	for _, p := range req.GetPort() {
		if err := checkPort(p); err != nil {
			return nil, invalidf("port-forward to pod %s: %v", rec.ID, err)
		}
	}
	srv, err := s.stream.server()
	if err != nil {
		return nil, err
	}
	return srv.GetPortForward(&runtimeapi.PortForwardRequest{PodSandboxId: rec.ID, Port: req.GetPort()})
}

func checkPort(p int32) error {
	if p < 1 || p > 65535 {
		return fmt.Errorf("port %d: want 1 to 65535", p)
	}
	return nil
}

// streamRuntime is what the streaming server runs: its methods serve the
// URLs' streams.
type streamRuntime struct{ s *Server }

func (r streamRuntime) Exec(ctx context.Context, containerID string, cmd []string, stdin io.Reader, stdout, stderr io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	ctx, done := r.s.stream.begin(ctx)
	defer done()
	err := r.s.execStream(ctx, containerID, cmd, stdin, stdout, stderr, tty, resize)
	var ee utilexec.CodeExitError
	switch {
	case errors.As(err, &ee):
		r.s.log.Info("exec", "container", containerID, "cmd", cmd[0], "exit", ee.Code)
	case err != nil:
		r.s.log.Warn("exec failed", "container", containerID, "cmd", cmd[0], "err", err)
	default:
		r.s.log.Info("exec", "container", containerID, "cmd", cmd[0], "exit", 0)
	}
	return err
}

func (r streamRuntime) Attach(ctx context.Context, containerID string, stdin io.Reader, stdout, stderr io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	ctx, done := r.s.stream.begin(ctx)
	defer done()
	if r.s.stream.attach == nil {
		return unimplementedf("attach to container %s: not supported by podsb yet", containerID)
	}
	err := r.s.stream.attach(ctx, containerID, stdin, stdout, stderr, tty, resize)
	if err != nil {
		r.s.log.Warn("attach failed", "container", containerID, "err", err)
	}
	return err
}

func (r streamRuntime) PortForward(ctx context.Context, podID string, port int32, stream io.ReadWriteCloser) error {
	ctx, done := r.s.stream.begin(ctx)
	defer done()
	defer stream.Close()
	err := r.s.portForward(ctx, podID, port, stream)
	if err != nil {
		r.s.log.Warn("port-forward failed", "pod", podID, "port", port, "err", err)
	}
	return err
}

// begin returns a stream's context: it ends when the stream's client
// disconnects (its connection is gone) or the server stops, and when done
// is called.
func (st *streamer) begin(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(st.ctx, cancel)
	if c, ok := ctx.Value(connKey{}).(*watchedConn); ok {
		go func() {
			select {
			case <-c.gone:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	return ctx, func() {
		stop()
		cancel()
	}
}

// An upgraded (hijacked) connection is the streams' alone: net/http no
// longer reads it, so a request's context does not end when the client
// goes. watchedConn tells: its reader (the streams' demultiplexer) sees
// the connection's end as an error, or closes it.
type watchedConn struct {
	net.Conn
	st   *streamer // whose conns list it; nil in tests
	once sync.Once
	gone chan struct{}
}

func (c *watchedConn) end() {
	c.once.Do(func() {
		close(c.gone)
		if c.st != nil {
			c.st.mu.Lock()
			delete(c.st.conns, c)
			c.st.mu.Unlock()
		}
	})
}

func (c *watchedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	// A deadline's timeout is not the end: net/http ends its own read so
	// when it hands the connection over.
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		c.end()
	}
	return n, err
}

func (c *watchedConn) Close() error {
	c.end()
	return c.Conn.Close()
}

// watchListener hands out watchedConns, listed in its streamer's conns.
type watchListener struct {
	net.Listener
	st *streamer
}

func (l watchListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	w := &watchedConn{Conn: c, st: l.st, gone: make(chan struct{})}
	l.st.mu.Lock()
	l.st.conns[w] = struct{}{}
	l.st.mu.Unlock()
	return w, nil
}

type connKey struct{}

// withConn puts a request's connection in its context (http.Server's
// ConnContext).
func withConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}
