package cri

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podsb/podsb/internal/testenv"
	"github.com/podsb/podsb/sandbox"
)

// testServer is a server in this process, on a socket, state root, image
// root and bridge network of the test's own, with clients over the socket.
type testServer struct {
	t      *testing.T
	opts   Options
	sock   string
	rt     runtimeapi.RuntimeServiceClient
	im     runtimeapi.ImageServiceClient
	stop   func()
	ids    map[string]bool // every pod ID the test saw
	bridge string
}

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	testenv.RequireRoot(t)
	dir := t.TempDir()
	ts := &testServer{t: t, sock: filepath.Join(dir, "cri.sock"), ids: map[string]bool{}}
	ts.bridge = fmt.Sprintf("pc%06x", rand.IntN(1<<24))
	ts.opts = Options{
		LoggerBinary: loggerBinary(t),
		Root:         filepath.Join(dir, "root"), ImageRoot: filepath.Join(dir, "images"), StateDir: filepath.Join(dir, "state"),
		Bridge: ts.bridge, Subnet: netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.0/24", 200+rand.IntN(50), rand.IntN(256))),
	}
	ts.start()
	conn, err := grpc.NewClient("unix://"+ts.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ts.rt = runtimeapi.NewRuntimeServiceClient(conn)
	ts.im = runtimeapi.NewImageServiceClient(conn)
	t.Cleanup(func() {
		conn.Close()
		ts.stop()
		ts.checkNoLeaks(dir)
	})
	return ts
}

// start starts the server on the test's socket and state.
func (ts *testServer) start() {
	ts.t.Helper()
	s, err := New(ts.opts)
	if err != nil {
		ts.t.Fatal(err)
	}
	l, err := Listen("unix://" + ts.sock)
	if err != nil {
		ts.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l, time.Second) }()
	ts.stop = func() {
		cancel()
		if err := <-done; err != nil {
			ts.t.Errorf("serve: %v", err)
		}
	}
}

// restart stops the server and starts another on the same state.
func (ts *testServer) restart() {
	ts.stop()
	ts.start()
}

// checkNoLeaks removes what the test left, failing it if it left anything:
// pods, mounts under its directory, network namespaces and links.
func (ts *testServer) checkNoLeaks(dir string) {
	t := ts.t
	pods, err := sandbox.List(ts.opts.Root)
	if err != nil {
		t.Errorf("list pods: %v", err)
	}
	for _, p := range pods {
		t.Errorf("leaked pod %s", p.Name())
		p.Remove(context.Background(), sandbox.RemoveOptions{Force: true})
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(b), dir) {
		t.Errorf("leaked mounts under %s", dir)
	}
	for id := range ts.ids {
		if _, err := os.Lstat(filepath.Join(sandbox.NetNSDir, id)); err == nil {
			t.Errorf("leaked netns %s", id)
		}
	}
	if _, err := net.InterfaceByName(ts.bridge); err == nil {
		t.Errorf("leaked bridge %s", ts.bridge)
	}
	// Each pod's host veth: "pv" and 12 hex digits of SHA-256(root NUL
	// name), as package network names it.
	for id := range ts.ids {
		sum := sha256.Sum256([]byte(ts.opts.Root + "\x00" + id))
		veth := "pv" + hex.EncodeToString(sum[:])[:12]
		if _, err := net.InterfaceByName(veth); err == nil {
			t.Errorf("leaked veth %s of pod %s", veth, id)
		}
	}
	if c, err := nftables.New(); err == nil {
		tables, _ := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
		for _, tb := range tables {
			if tb.Name == "podsb_"+ts.bridge {
				t.Errorf("leaked nftables table %s", tb.Name)
			}
		}
	}
}

func podCfg(name string, attempt uint32) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "test", Uid: "uid-" + name, Attempt: attempt},
		Hostname:     name,
		Labels:       map[string]string{"app": name, "tier": "test"},
		Annotations:  map[string]string{"note": "hello " + name},
		LogDirectory: "/var/log/pods/" + name,
		DnsConfig:    &runtimeapi.DNSConfig{Servers: []string{"10.0.0.10"}, Searches: []string{"svc.cluster.local"}},
	}
}

func (ts *testServer) runp(cfg *runtimeapi.PodSandboxConfig) string {
	ts.t.Helper()
	r, err := ts.rt.RunPodSandbox(context.Background(), &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		ts.t.Fatalf("RunPodSandbox: %v", err)
	}
	ts.ids[r.PodSandboxId] = true
	return r.PodSandboxId
}

func (ts *testServer) status(id string) *runtimeapi.PodSandboxStatus {
	ts.t.Helper()
	r, err := ts.rt.PodSandboxStatus(context.Background(), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil {
		ts.t.Fatalf("PodSandboxStatus: %v", err)
	}
	return r.Status
}

func (ts *testServer) list(f *runtimeapi.PodSandboxFilter) []string {
	ts.t.Helper()
	r, err := ts.rt.ListPodSandbox(context.Background(), &runtimeapi.ListPodSandboxRequest{Filter: f})
	if err != nil {
		ts.t.Fatalf("ListPodSandbox: %v", err)
	}
	var ids []string
	for _, p := range r.Items {
		ids = append(ids, p.Id)
	}
	return ids
}

func wantCode(t *testing.T, what string, err error, code codes.Code) {
	t.Helper()
	if st, _ := status.FromError(err); st.Code() != code {
		t.Errorf("%s: got %v, want %v", what, err, code)
	}
}

func TestVersionStatus(t *testing.T) {
	ts := newTestServer(t)
	v, err := ts.rt.Version(context.Background(), &runtimeapi.VersionRequest{})
	if err != nil || v.RuntimeName != "podsb" || v.RuntimeApiVersion != "v1" {
		t.Fatalf("Version: %v %v", v, err)
	}
	s, err := ts.rt.Status(context.Background(), &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range s.Status.Conditions {
		if !c.Status {
			t.Errorf("condition %s not true", c.Type)
		}
	}
	// An update names its container.
	_, err = ts.rt.UpdateContainerResources(context.Background(), &runtimeapi.UpdateContainerResourcesRequest{})
	wantCode(t, "UpdateContainerResources", err, codes.InvalidArgument)
}

func TestSocketMode(t *testing.T) {
	ts := newTestServer(t)
	fi, err := os.Stat(ts.sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	// A second server on the same socket is refused, and leaves it alone.
	if _, err := Listen("unix://" + ts.sock); err == nil || !strings.Contains(err.Error(), "another server") {
		t.Errorf("second Listen: %v", err)
	}
	if _, err := Listen("tcp://127.0.0.1:1"); err == nil {
		t.Error("Listen took a TCP address")
	}
}

func TestPodSandboxLifecycle(t *testing.T) {
	ts := newTestServer(t)
	ctx := context.Background()
	alpha := podCfg("alpha", 0)
	hostPort := int32(20000 + rand.IntN(20000))
	alpha.PortMappings = []*runtimeapi.PortMapping{{ContainerPort: 80, HostPort: hostPort}, {ContainerPort: 81}}
	a := ts.runp(alpha)
	b := ts.runp(podCfg("beta", 1))
	if len(a) != 64 || !validID(a) {
		t.Fatalf("pod ID %q: want 64 hex digits", a)
	}

	st := ts.status(a)
	if st.State != runtimeapi.PodSandboxState_SANDBOX_READY || st.Network.GetIp() == "" ||
		st.Metadata.Name != "alpha" || st.Labels["app"] != "alpha" || st.Annotations["note"] != "hello alpha" || st.CreatedAt == 0 {
		t.Fatalf("status: %v", st)
	}
	if !netip.MustParsePrefix(ts.opts.Subnet.String()).Contains(netip.MustParseAddr(st.Network.GetIp())) {
		t.Errorf("IP %s outside %s", st.Network.GetIp(), ts.opts.Subnet)
	}
	// The pod's hostname and resolv.conf are the config's.
	p, err := sandbox.Load(ts.opts.Root, a)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/etc/resolv.conf", p.PID())); err != nil || string(b) != "nameserver 10.0.0.10\nsearch svc.cluster.local\n" {
		t.Errorf("pod resolv.conf %q %v", b, err)
	}
	if h := p.State().Hostname; h != "alpha" {
		t.Errorf("hostname %q", h)
	}
	// The mapping with a host port is published; the other is not.
	if ports := p.State().Network.Ports; len(ports) != 1 || ports[0].HostPort != uint16(hostPort) || ports[0].PodPort != 80 || ports[0].Proto != "tcp" {
		t.Errorf("published ports: %+v", ports)
	}

	// The same name, namespace, UID and attempt again is refused.
	_, err = ts.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: podCfg("alpha", 0)})
	wantCode(t, "second alpha", err, codes.AlreadyExists)

	// Filters.
	if got := ts.list(nil); len(got) != 2 {
		t.Errorf("list: %v", got)
	}
	if got := ts.list(&runtimeapi.PodSandboxFilter{Id: a[:10]}); len(got) != 1 || got[0] != a {
		t.Errorf("list by ID prefix: %v", got)
	}
	if got := ts.list(&runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"app": "beta"}}); len(got) != 1 || got[0] != b {
		t.Errorf("list by label: %v", got)
	}

	// Stop keeps the pod, not ready, with no process and no address.
	if _, err := ts.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: a}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: a}); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	st = ts.status(a)
	if st.State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY || st.Network.GetIp() != "" {
		t.Errorf("stopped: %v", st)
	}
	if p, _ := sandbox.Load(ts.opts.Root, a); p == nil || p.PID() != 0 {
		t.Errorf("stopped pod has a pause")
	}
	notReady := &runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_NOTREADY}}
	if got := ts.list(notReady); len(got) != 1 || got[0] != a {
		t.Errorf("list not ready: %v", got)
	}

	// A restarted server has every pod, with the same IDs and states.
	ts.restart()
	if got := ts.list(notReady); len(got) != 1 || got[0] != a {
		t.Errorf("after restart, not ready: %v", got)
	}
	if st := ts.status(b); st.State != runtimeapi.PodSandboxState_SANDBOX_READY || st.Metadata.Attempt != 1 || st.Labels["tier"] != "test" {
		t.Errorf("after restart, beta: %v", st)
	}

	// Bad and unknown IDs.
	unknown := strings.Repeat("0", 64)
	_, err = ts.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: unknown})
	wantCode(t, "status of unknown", err, codes.NotFound)
	// Stop and remove are idempotent, whatever the ID's form (critest
	// stops and removes UUIDs).
	for _, id := range []string{"nosuchpod", "8d3c7a0e-7f4b-4a8e-9a57-3a1f4f1f2b10", unknown} {
		if _, err = ts.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Errorf("stop of unknown %s: %v", id, err)
		}
		if _, err = ts.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Errorf("remove of unknown %s: %v", id, err)
		}
	}
	_, err = ts.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{})
	wantCode(t, "stop of empty ID", err, codes.InvalidArgument)
	_, err = ts.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{}})
	wantCode(t, "run without metadata", err, codes.InvalidArgument)

	for _, id := range []string{a, b} {
		if _, err := ts.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatalf("remove %s: %v", id, err)
		}
		// Removing again is no error (the CRI's idempotence).
		if _, err := ts.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Errorf("second remove: %v", err)
		}
	}
	if got := ts.list(nil); len(got) != 0 {
		t.Errorf("left: %v", got)
	}
	// The name is free again.
	c := ts.runp(podCfg("alpha", 0))
	if _, err := ts.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: c}); err != nil {
		t.Fatal(err)
	}
}

// A record written before its pod was made (a server killed in the middle
// of RunPodSandbox) is listed NOTREADY after a restart, and removed.
func TestHalfMadePod(t *testing.T) {
	ts := newTestServer(t)
	ts.stop()
	st, err := openStore(ts.opts.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	id := strings.Repeat("ab", 32)
	ts.ids[id] = true
	if err := st.write(&podRecord{ID: id, Name: "half", UID: "u", Namespace: "n", Created: time.Now().UnixNano()}); err != nil {
		t.Fatal(err)
	}
	ts.start()
	if s := ts.status(id); s.State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Errorf("half-made pod: %v", s.State)
	}
	if _, err := ts.rt.RemovePodSandbox(context.Background(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatal(err)
	}
	if got := ts.list(nil); len(got) != 0 {
		t.Errorf("left: %v", got)
	}
}

// Many RunPodSandbox calls at once, then many RemovePodSandbox calls, each
// racing a StopPodSandbox of the same pod: every pod is made with an
// address of its own, and nothing is left.
func TestConcurrentRunRemove(t *testing.T) {
	ts := newTestServer(t)
	ctx := context.Background()
	const n = 30
	ids := make([]string, n)
	errs := make(chan error, 2*n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := ts.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: podCfg(fmt.Sprintf("p%d", i), 0)})
			if err != nil {
				errs <- err
				return
			}
			ids[i] = r.PodSandboxId
		})
	}
	wg.Wait()
	for _, id := range ids {
		ts.ids[id] = true
	}
	ips := map[string]bool{}
	for _, id := range ts.list(nil) {
		ips[ts.status(id).Network.GetIp()] = true
	}
	if len(ips) != n {
		t.Errorf("%d pods with distinct addresses, want %d", len(ips), n)
	}
	for _, id := range ids {
		wg.Go(func() {
			if _, err := ts.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
				errs <- err
			}
		})
		wg.Go(func() {
			_, err := ts.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
			if st, _ := status.FromError(err); err != nil && st.Code() != codes.NotFound {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := ts.list(nil); len(got) != 0 {
		t.Errorf("left: %v", got)
	}
}

var (
	loggerOnce sync.Once
	loggerPath string
	loggerErr  error
)

// TestMain removes what loggerBinary built.
func TestMain(m *testing.M) {
	code := m.Run()
	if loggerPath != "" {
		os.RemoveAll(filepath.Dir(loggerPath))
	}
	os.Exit(code)
}

// loggerBinary builds podsb-logger once per test run, for the servers of
// the tests (a test binary has none next to it).
func loggerBinary(t *testing.T) string {
	t.Helper()
	loggerOnce.Do(func() {
		dir, err := os.MkdirTemp("", "podsb-logger-")
		if err != nil {
			loggerErr = err
			return
		}
		loggerPath = filepath.Join(dir, "podsb-logger")
		out, err := exec.Command("go", "build", "-o", loggerPath, "../cmd/podsb-logger").CombinedOutput()
		if err != nil {
			loggerErr = fmt.Errorf("build podsb-logger: %v: %s", err, out)
		}
	})
	if loggerErr != nil {
		t.Fatal(loggerErr)
	}
	return loggerPath
}
