package cri

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"

	"github.com/podsb/podsb/internal/testenv"
	"github.com/podsb/podsb/sandbox"
)

func TestCapped(t *testing.T) {
	for _, tc := range []struct {
		name    string
		writes  []string
		max     int
		want    string
		dropped int64
	}{
		{"under", []string{"ab", "cd"}, 8, "abcd", 0},
		{"exact", []string{"abcd"}, 4, "abcd", 0},
		{"cut in a write", []string{"ab", "cdef"}, 3, "abc", 3},
		{"after the cap", []string{"abc", "de", "f"}, 3, "abc", 3},
		{"none kept", []string{"abc"}, 0, "", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &capped{max: tc.max}
			for _, w := range tc.writes {
				if n, err := c.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v: a capped writer takes everything", w, n, err)
				}
			}
			if string(c.b) != tc.want || c.dropped != tc.dropped {
				t.Errorf("kept %q, dropped %d; want %q, %d", c.b, c.dropped, tc.want, tc.dropped)
			}
		})
	}
}

func TestCheckPort(t *testing.T) {
	for p, ok := range map[int32]bool{-1: false, 0: false, 1: true, 8080: true, 65535: true, 65536: false, 70000: false} {
		if err := checkPort(p); (err == nil) != ok {
			t.Errorf("checkPort(%d) = %v", p, err)
		}
	}
}

// TestWatchedConn: the end of a connection marks it gone; net/http's
// deadline, with which it hands a connection over, does not.
func TestWatchedConn(t *testing.T) {
	a, b := net.Pipe()
	c := &watchedConn{Conn: a, gone: make(chan struct{})}
	c.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v", err)
	}
	select {
	case <-c.gone:
		t.Fatal("a deadline marked the connection gone")
	default:
	}
	c.SetReadDeadline(time.Time{})
	b.Close()
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read from a closed pipe")
	}
	select {
	case <-c.gone:
	default:
		t.Fatal("the peer's close did not mark the connection gone")
	}
	c.Close() // again: no panic
}

// newStreamingServer returns a server with no pods, images or gRPC, for
// the streaming side alone: its RPC methods are called directly. It needs
// no root.
func newStreamingServer(t *testing.T) *Server {
	return &Server{root: t.TempDir(), log: slog.New(slog.DiscardHandler), stream: newStreamer(""),
		pods: map[string]*podRecord{}, names: map[string]string{}, ops: map[string]*sync.Mutex{}}
}

func startStreaming(t *testing.T, s *Server) {
	t.Helper()
	if err := s.startStreams(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.stopStreams(5 * time.Second) })
}

// TestStreamAddrInUse: a streaming address that cannot be listened on is
// an error of the server's start, not a server without streams.
func TestStreamAddrInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := newStreamingServer(t)
	s.stream = newStreamer(l.Addr().String())
	if err := s.startStreams(); err == nil || !strings.Contains(err.Error(), "streaming server") {
		t.Errorf("start on a taken address: %v", err)
	}
	if _, err := s.stream.server(); err == nil {
		t.Error("a streaming server that did not start serves")
	}
}

// TestStreamingBadInput: what a streaming RPC or ExecSync is asked that
// cannot be done gets InvalidArgument, NotFound or Unimplemented, with a
// message that names it, and no URL.
func TestStreamingBadInput(t *testing.T) {
	s := newStreamingServer(t)
	ctx := context.Background()
	// Before the streaming server started: Unavailable, not a URL that
	// no one serves.
	s.pods["f00d"] = &podRecord{ID: "f00d"}
	_, err := s.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: "f00d", Port: []int32{80}})
	wantCode(t, "PortForward before start", err, codes.Unavailable)
	startStreaming(t, s)

	for _, tc := range []struct {
		name string
		call func() error
		code codes.Code
		msg  string
	}{
		{"exec, empty command", func() error {
			_, err := s.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: "c1", Stdout: true})
			return err
		}, codes.InvalidArgument, "the command is empty"},
		{"exec, empty container ID", func() error {
			_, err := s.Exec(ctx, &runtimeapi.ExecRequest{Cmd: []string{"true"}, Stdout: true})
			return err
		}, codes.InvalidArgument, "container ID is empty"},
		{"exec, unknown container", func() error {
			_, err := s.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: "nosuch", Cmd: []string{"true"}, Stdout: true})
			return err
		}, codes.NotFound, `container "nosuch": not found`},
		{"exec sync, empty command", func() error {
			_, err := s.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: "c1", Cmd: []string{""}})
			return err
		}, codes.InvalidArgument, "the command is empty"},
		{"exec sync, negative timeout", func() error {
			_, err := s.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: "c1", Cmd: []string{"true"}, Timeout: -1})
			return err
		}, codes.InvalidArgument, "timeout -1s is negative"},
		{"exec sync, unknown container", func() error {
			_, err := s.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: "nosuch", Cmd: []string{"true"}})
			return err
		}, codes.NotFound, `container "nosuch": not found`},
		{"attach, not wired", func() error {
			_, err := s.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: "c1", Stdout: true})
			return err
		}, codes.Unimplemented, "attach to container c1: not supported"},
		{"port-forward, unknown pod", func() error {
			_, err := s.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: "beef", Port: []int32{80}})
			return err
		}, codes.NotFound, `pod sandbox "beef": not found`},
		{"port-forward, empty pod ID", func() error {
			_, err := s.PortForward(ctx, &runtimeapi.PortForwardRequest{})
			return err
		}, codes.InvalidArgument, "pod sandbox ID is empty"},
		{"port-forward, port 0", func() error {
			_, err := s.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: "f00d", Port: []int32{80, 0}})
			return err
		}, codes.InvalidArgument, "port 0: want 1 to 65535"},
		{"port-forward, port 70000", func() error {
			_, err := s.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: "f00d", Port: []int32{70000}})
			return err
		}, codes.InvalidArgument, "port 70000: want 1 to 65535"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			wantCode(t, tc.name, err, tc.code)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("%s: %v, want %q in it", tc.name, err, tc.msg)
			}
		})
	}
}

// TestStreamingURLs: the URLs are the streaming server's, on loopback, one
// token each, used once.
func TestStreamingURLs(t *testing.T) {
	s := newStreamingServer(t)
	s.stream.target = func(id string) (string, string, error) { return "", "", notFoundf("container %q: not found", id) }
	s.pods["f00d"] = &podRecord{ID: "f00d"}
	startStreaming(t, s)
	r1, err := s.PortForward(context.Background(), &runtimeapi.PortForwardRequest{PodSandboxId: "f0", Port: []int32{80}})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := s.PortForward(context.Background(), &runtimeapi.PortForwardRequest{PodSandboxId: "f00d"})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(r1.Url)
	if err != nil {
		t.Fatal(err)
	}
	if ap, err := netip.ParseAddrPort(u.Host); err != nil || !ap.Addr().IsLoopback() || ap.Port() == 0 || !strings.HasPrefix(u.Path, "/portforward/") {
		t.Errorf("URL %s: want http://127.0.0.1:PORT/portforward/TOKEN", r1.Url)
	}
	if r1.Url == r2.Url {
		t.Errorf("two requests, one URL: %s", r1.Url)
	}
	// A token is consumed by its first use.
	for i, want := range []int{http.StatusBadRequest, http.StatusNotFound} {
		resp, err := http.Get(r1.Url) // not an upgrade: refused, but the token is used
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if i == 1 && resp.StatusCode != want {
			t.Errorf("second use of %s: %s, want %d", r1.Url, resp.Status, want)
		}
	}
}

// execClient is a client of the remote command protocol v4 over SPDY, as
// kubelet's and crictl's (client-go's) speak it.
type execClient struct {
	conn                           httpstream.Connection
	errs, in, out, stderr, resizes httpstream.Stream
}

func dialStream(t *testing.T, rawURL string, stdin, stdout, stderr, tty bool) *execClient {
	t.Helper()
	rt, err := spdy.NewRoundTripper(nil)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("POST", rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(httpstream.HeaderProtocolVersion, remotecommand.StreamProtocolV4Name)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := rt.NewConnection(resp)
	if err != nil {
		t.Fatalf("upgrade %s: %v", rawURL, err)
	}
	c := &execClient{conn: conn}
	t.Cleanup(func() { conn.Close() })
	mk := func(typ string) httpstream.Stream {
		h := http.Header{}
		h.Set(remotecommand.StreamType, typ)
		s, err := conn.CreateStream(h)
		if err != nil {
			t.Fatalf("stream %s: %v", typ, err)
		}
		return s
	}
	c.errs = mk(remotecommand.StreamTypeError)
	c.errs.Close() // the client writes nothing on it
	if stdin {
		c.in = mk(remotecommand.StreamTypeStdin)
	}
	if stdout {
		c.out = mk(remotecommand.StreamTypeStdout)
	}
	if stderr {
		c.stderr = mk(remotecommand.StreamTypeStderr)
	}
	if tty {
		c.resizes = mk(remotecommand.StreamTypeResize)
	}
	return c
}

// status reads the error stream: the command's exit code (0 for success),
// or the failure's message.
func (c *execClient) status() (int, string, error) {
	b, err := io.ReadAll(c.errs)
	if err != nil {
		return 0, "", err
	}
	var st struct {
		Status, Message, Reason string
		Details                 *struct {
			Causes []struct{ Reason, Message string }
		}
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return 0, "", fmt.Errorf("status %q: %v", b, err)
	}
	if st.Status == "Success" {
		return 0, "", nil
	}
	if st.Reason == remotecommand.NonZeroExitCodeReason && st.Details != nil {
		for _, cause := range st.Details.Causes {
			if cause.Reason == remotecommand.ExitCodeCauseType {
				code, err := strconv.Atoi(cause.Message)
				return code, st.Message, err
			}
		}
	}
	return -1, st.Message, nil
}

func (c *execClient) resize(w, h uint16) error {
	return json.NewEncoder(c.resizes).Encode(remotecommand.TerminalSize{Width: w, Height: h})
}

// TestAttachHook: Attach streams through the hook the server is given:
// the streams, the terminal sizes, an error, and a client that disconnects
// ending the hook's context.
func TestAttachHook(t *testing.T) {
	s := newStreamingServer(t)
	s.stream.target = func(id string) (string, string, error) {
		if id != "c1" {
			return "", "", notFoundf("container %q: not found", id)
		}
		return "pod", "ctr", nil
	}
	sizes := make(chan remotecommand.TerminalSize, 4)
	started, ended := make(chan struct{}), make(chan error, 1)
	s.stream.attach = func(ctx context.Context, id string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
		switch {
		case tty:
			for sz := range resize {
				sizes <- sz
				if sz.Width == 0 {
					return nil
				}
			}
			return nil
		case in == nil:
			close(started)
			<-ctx.Done() // until the client goes
			ended <- ctx.Err()
			return nil
		}
		b, _ := io.ReadAll(in)
		fmt.Fprintf(out, "%s to %s", b, id)
		fmt.Fprint(errw, "to stderr")
		return errors.New("attach hook says no")
	}
	startStreaming(t, s)
	getURL := func(req *runtimeapi.AttachRequest) string {
		t.Helper()
		srv, _ := s.stream.server()
		r, err := srv.GetAttach(req)
		if err != nil {
			t.Fatal(err)
		}
		return r.Url
	}

	t.Run("streams", func(t *testing.T) {
		c := dialStream(t, getURL(&runtimeapi.AttachRequest{ContainerId: "c1", Stdin: true, Stdout: true, Stderr: true}), true, true, true, false)
		io.WriteString(c.in, "hello")
		c.in.Close()
		var out, errOut bytes.Buffer
		var wg sync.WaitGroup
		wg.Go(func() { io.Copy(&out, c.out) })
		wg.Go(func() { io.Copy(&errOut, c.stderr) })
		code, msg, err := c.status()
		wg.Wait()
		if err != nil || code != -1 || !strings.Contains(msg, "attach hook says no") {
			t.Errorf("status: %d %q %v", code, msg, err)
		}
		if out.String() != "hello to c1" || errOut.String() != "to stderr" {
			t.Errorf("stdout %q, stderr %q", out.String(), errOut.String())
		}
	})
	t.Run("resize", func(t *testing.T) {
		c := dialStream(t, getURL(&runtimeapi.AttachRequest{ContainerId: "c1", Stdout: true, Tty: true}), false, true, false, true)
		c.resize(80, 24)
		c.resize(100, 30)
		c.resize(0, 0)
		for _, want := range []remotecommand.TerminalSize{{Width: 80, Height: 24}, {Width: 100, Height: 30}} {
			if got := <-sizes; got != want {
				t.Errorf("size %+v, want %+v", got, want)
			}
		}
		<-sizes
		if code, msg, err := c.status(); code != 0 || err != nil {
			t.Errorf("status: %d %q %v", code, msg, err)
		}
	})
	t.Run("client disconnects", func(t *testing.T) {
		c := dialStream(t, getURL(&runtimeapi.AttachRequest{ContainerId: "c1", Stdout: true}), false, true, false, false)
		<-started
		c.conn.Close()
		select {
		case err := <-ended:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("hook's context: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the hook's context did not end when the client went")
		}
	})
}

// streamTestServer is a server in this process with gRPC on a socket, its
// exec targets from a map the test fills, and the test server's cleanup
// and leak checks.
type streamTestServer struct {
	*testServer
	srv     *Server
	mu      sync.Mutex
	targets map[string][2]string // container ID -> pod ID, podsb name
}

func newStreamTestServer(t *testing.T) *streamTestServer {
	t.Helper()
	testenv.RequireRoot(t)
	dir := t.TempDir()
	ts := &testServer{t: t, sock: filepath.Join(dir, "cri.sock"), ids: map[string]bool{}}
	ts.bridge = fmt.Sprintf("ps%06x", rand.IntN(1<<24))
	ts.opts = Options{
		Root: filepath.Join(dir, "root"), ImageRoot: filepath.Join(dir, "images"), StateDir: filepath.Join(dir, "state"),
		Bridge: ts.bridge, Subnet: netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.0/24", 200+rand.IntN(50), rand.IntN(256))),
	}
	st := &streamTestServer{testServer: ts, targets: map[string][2]string{}}
	s, err := New(ts.opts)
	if err != nil {
		t.Fatal(err)
	}
	s.stream.target = func(id string) (string, string, error) {
		st.mu.Lock()
		defer st.mu.Unlock()
		if tg, ok := st.targets[id]; ok {
			return tg[0], tg[1], nil
		}
		return "", "", notFoundf("container %q: not found", id)
	}
	st.srv = s
	l, err := Listen("unix://" + ts.sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l, 5*time.Second) }()
	ts.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
	conn, err := grpc.NewClient("unix://"+ts.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ts.rt = runtimeapi.NewRuntimeServiceClient(conn)
	t.Cleanup(func() {
		conn.Close()
		ts.stop()
		ts.checkNoLeaks(dir)
	})
	return st
}

// container runs a pod with a detached container sleeping in it, and
// registers it as the container id. The pod is removed at the test's end.
func (st *streamTestServer) container(id string) *sandbox.Pod {
	t := st.t
	t.Helper()
	podID := st.runp(podCfg("s"+id, 0))
	t.Cleanup(func() {
		if _, err := st.rt.RemovePodSandbox(context.Background(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
			t.Errorf("remove pod: %v", err)
		}
	})
	pod, err := sandbox.Load(st.opts.Root, podID)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pod.Run(context.Background(), sandbox.ContainerConfig{Name: "ctr", ExecConfig: sandbox.ExecConfig{Args: []string{"sleep", "100000"}, Detach: true}})
	if err != nil {
		t.Fatal(err)
	}
	p.Wait()
	st.mu.Lock()
	st.targets[id] = [2]string{podID, "ctr"}
	st.mu.Unlock()
	return pod
}

// inPod reports whether a process of the pod has a command line with s.
func inPod(t *testing.T, pod *sandbox.Pod, s string) bool {
	t.Helper()
	procs, err := pod.Processes()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if strings.Contains(p.Command, s) {
			return true
		}
	}
	return false
}

// waitGone waits until no process of the pod has s in its command line.
func waitGone(t *testing.T, pod *sandbox.Pod, s string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); inPod(t, pod, s); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%q still runs in the pod", s)
		}
	}
}

// TestExecInProcess runs commands in a container of a real pod through the
// gRPC API: ExecSync (output, exit code, timeout killing the command and
// its children) and Exec's stream (stdin, exit code, a terminal with its
// size, a client that disconnects).
func TestExecInProcess(t *testing.T) {
	st := newStreamTestServer(t)
	pod := st.container("c1")
	ctx := context.Background()

	t.Run("sync", func(t *testing.T) {
		r, err := st.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: "c1", Cmd: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}})
		if err != nil || r.ExitCode != 3 || string(r.Stdout) != "out\n" || string(r.Stderr) != "err\n" {
			t.Errorf("ExecSync: %v %+v", err, r)
		}
		r, err = st.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: "c1", Cmd: []string{"nosuch-command"}})
		if err != nil || r.ExitCode != 127 || !strings.Contains(string(r.Stderr), "command not found") {
			t.Errorf("ExecSync of a missing command: %v %+v", err, r)
		}
	})
	t.Run("sync timeout", func(t *testing.T) {
		_, err := st.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: "c1", Cmd: []string{"sh", "-c", "sleep 1011 & sleep 1012"}, Timeout: 1})
		wantCode(t, "ExecSync past its timeout", err, codes.DeadlineExceeded)
		for _, s := range []string{"sleep 1011", "sleep 1012"} {
			if inPod(t, pod, s) {
				t.Errorf("%q runs after its ExecSync timed out", s)
			}
		}
	})
	t.Run("sync output cap", func(t *testing.T) {
		// kubelet's and crictl's limit on a message: 16 MiB.
		limit := grpc.MaxCallRecvMsgSize(16 << 20)
		r, err := st.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: "c1", Cmd: []string{"sh", "-c", "head -c 17000000 /dev/zero; head -c 1000 /dev/zero >&2"}}, limit)
		if err != nil || len(r.Stdout) != maxExecSyncOutput || len(r.Stderr) != 0 || r.ExitCode != 0 {
			t.Errorf("ExecSync of 17 MB and 1 KB: %v, %d and %d bytes", err, len(r.GetStdout()), len(r.GetStderr()))
		}
		r, err = st.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: "c1", Cmd: []string{"sh", "-c", "head -c 10000000 /dev/zero; head -c 10000000 /dev/zero >&2"}}, limit)
		if err != nil || len(r.Stdout) != 10000000 || len(r.Stdout)+len(r.Stderr) != maxExecSyncOutput {
			t.Errorf("ExecSync of 10 MB and 10 MB: %v, %d and %d bytes", err, len(r.GetStdout()), len(r.GetStderr()))
		}
	})
	execURL := func(req *runtimeapi.ExecRequest) string {
		t.Helper()
		r, err := st.rt.Exec(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return r.Url
	}
	t.Run("stdin and exit code", func(t *testing.T) {
		c := dialStream(t, execURL(&runtimeapi.ExecRequest{ContainerId: "c1", Cmd: []string{"sh", "-c", "tr a-z A-Z; echo e >&2; exit 5"}, Stdin: true, Stdout: true, Stderr: true}), true, true, true, false)
		io.WriteString(c.in, "hello\n")
		c.in.Close()
		var out, errOut bytes.Buffer
		var wg sync.WaitGroup
		wg.Go(func() { io.Copy(&out, c.out) })
		wg.Go(func() { io.Copy(&errOut, c.stderr) })
		code, msg, err := c.status()
		wg.Wait()
		if code != 5 || err != nil {
			t.Errorf("status: %d %q %v", code, msg, err)
		}
		if out.String() != "HELLO\n" || errOut.String() != "e\n" {
			t.Errorf("stdout %q, stderr %q", out.String(), errOut.String())
		}
	})
	t.Run("terminal", func(t *testing.T) {
		cmd := []string{"sh", "-c", `while read x; do [ "$x" = q ] && exit 0; stty size; done`}
		c := dialStream(t, execURL(&runtimeapi.ExecRequest{ContainerId: "c1", Cmd: cmd, Stdin: true, Stdout: true, Tty: true}), true, true, false, true)
		var mu sync.Mutex
		var out bytes.Buffer
		done := make(chan struct{})
		go func() {
			defer close(done)
			b := make([]byte, 1024)
			for {
				n, err := c.out.Read(b)
				mu.Lock()
				out.Write(b[:n])
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
		output := func() string {
			mu.Lock()
			defer mu.Unlock()
			return out.String()
		}
		saw := func(s string) bool { return strings.Contains(output(), s) }
		// The first size is set before the command reads its input.
		c.resize(101, 33)
		io.WriteString(c.in, "go\n")
		size := regexp.MustCompile(`[0-9]+ [0-9]+\r\n`)
		for deadline := time.Now().Add(30 * time.Second); !size.MatchString(output()); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("no answer from stty size")
			}
		}
		if !saw("33 101\r\n") {
			t.Errorf("first size: %q, want 33 101", output())
		}
		// A later one at some point: the resize stream is not ordered
		// with stdin.
		c.resize(120, 40)
		for deadline := time.Now().Add(30 * time.Second); !saw("40 120\r\n"); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("terminal output %q: no 40 120 after a resize", output())
			}
			io.WriteString(c.in, "go\n")
		}
		io.WriteString(c.in, "q\n")
		code, msg, err := c.status()
		<-done
		if code != 0 || err != nil {
			t.Errorf("status: %d %q %v", code, msg, err)
		}
	})
	t.Run("client disconnects", func(t *testing.T) {
		c := dialStream(t, execURL(&runtimeapi.ExecRequest{ContainerId: "c1", Cmd: []string{"sh", "-c", "sleep 1013 & sleep 1014"}, Stdout: true}), false, true, false, false)
		for deadline := time.Now().Add(30 * time.Second); !inPod(t, pod, "sleep 1014"); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the command did not start")
			}
		}
		c.conn.Close()
		waitGone(t, pod, "sleep 1013")
		waitGone(t, pod, "sleep 1014")
		// The server goes on.
		if r, err := st.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: "c1", Cmd: []string{"true"}}); err != nil || r.ExitCode != 0 {
			t.Errorf("ExecSync after a client went: %v", err)
		}
	})
}
