package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podsb/podsb/cni"
	"github.com/podsb/podsb/crilog"
	"github.com/podsb/podsb/image"
	"github.com/podsb/podsb/image/fetch"
	"github.com/podsb/podsb/sandbox"
)

// DefaultListen is the socket the server listens on unless told otherwise.
const DefaultListen = "unix:///run/podsb/cri.sock"

// DefaultStateDir is where the server keeps its pods' CRI records: beside
// the image store, which persists across reboots as they must (kubelet
// removes the pods a reboot stopped).
const DefaultStateDir = "/var/lib/podsb/cri"

// Options configure a Server. The zero value serves podsb's defaults.
type Options struct {
	// Root is the podsb state root of the server's pods; sandbox.DefaultRoot
	// if empty.
	Root string
	// ImageRoot is the image store's root; image.DefaultRoot if empty.
	ImageRoot string
	// RegistriesConf is a registries config (fetch.LoadRegistries):
	// mirrors, insecure registries. Empty: fetch.DefaultRegistriesConf if
	// it exists.
	RegistriesConf string
	// Registries, if set, is the registries config itself (the [[registry]]
	// tables of a --config file); it excludes RegistriesConf.
	Registries *fetch.Registries
	// Bridge and Subnet choose podsb's bridge network of the pods, on its
	// first use (sandbox.NetworkConfig); empty: podsb's defaults.
	Bridge string
	Subnet netip.Prefix
	// StateDir holds the CRI records of the pods; DefaultStateDir if empty.
	StateDir string
	// Log receives the server's structured logs; nil discards them.
	Log *slog.Logger
	// LoggerBinary is podsb-logger, the containers' log writer; empty:
	// the one next to the running program, else in PATH.
	LoggerBinary string
	// StreamAddr is the host:port the streaming server (exec, attach,
	// port-forward) listens on; DefaultStreamAddr, loopback, if empty.
	StreamAddr string
	// CNIConfDir, if set, hands the pods' networks to the CNI plugins of
	// its first valid network configuration, found in CNIBinDirs
	// (DefaultCNIBinDir if empty), instead of podsb's bridge.
	CNIConfDir string
	CNIBinDirs []string
}

// Server serves the CRI's RuntimeService and ImageService. Its methods are
// safe for concurrent use, as gRPC calls them.
type Server struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	runtimeapi.UnimplementedImageServiceServer

	root string
	// logs is the node logger, which writes every container's log.
	logs   *crilog.Node
	bridge string
	subnet netip.Prefix
	images *image.Store
	// registries is the registries config pulls follow (nil: none).
	registries *fetch.Registries
	store      *store
	log        *slog.Logger
	// stream serves Exec, Attach and PortForward's URLs (streaming.go).
	stream *streamer
	// cni locates the CNI network of the pods; nil: podsb's bridge.
	cni *cni.Options

	// mu guards pods, names, containers, cnames and ops. Long operations (creating, stopping,
	// removing a pod) run without it, each under its pod's op lock, so
	// that a RemovePodSandbox waits for the RunPodSandbox of the same pod.
	mu    sync.Mutex
	pods  map[string]*podRecord  // by ID
	names map[string]string      // podRecord.key() -> ID
	ops   map[string]*sync.Mutex // by ID: the pod's or container's op lock

	containers map[string]*containerRecord // by ID
	cnames     map[string]string           // containerRecord.key() -> ID

	// creating is held shared by each RunPodSandbox while it makes its
	// pod, and exclusively to clean up after killed creates
	// (sandbox.CleanWork), which would free a create's address.
	creating sync.RWMutex
}

// cleanWork removes what creates of a killed server left: half-made pod
// directories in the root's work directory, and addresses and ports of
// pods that are gone.
func (s *Server) cleanWork() {
	s.creating.Lock()
	defer s.creating.Unlock()
	if err := sandbox.CleanWork(s.root); err != nil {
		s.log.Warn("clean up after killed creates", "err", err)
	}
}

// lockPod takes the op lock of the pod id, and returns its release.
func (s *Server) lockPod(id string) func() {
	s.mu.Lock()
	m, ok := s.ops[id]
	if !ok {
		m = &sync.Mutex{}
		s.ops[id] = m
	}
	s.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// New opens the server's state and image store and loads the records of
// the pods a previous server left.
func New(o Options) (*Server, error) {
	if o.Root == "" {
		o.Root = sandbox.DefaultRoot
	}
	if o.StateDir == "" {
		o.StateDir = DefaultStateDir
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	root, err := filepath.Abs(o.Root)
	if err != nil {
		return nil, err
	}
	cniOpts, err := openCNI(o.CNIConfDir, o.CNIBinDirs, o.StateDir)
	if err != nil {
		return nil, err
	}
	st, err := openStore(o.StateDir)
	if err != nil {
		return nil, err
	}
	if o.Registries != nil && o.RegistriesConf != "" {
		return nil, fmt.Errorf("registries: from a registries config file or from the config's [[registry]] tables, not both")
	}
	im, regs, err := openImages(o.ImageRoot, o.RegistriesConf)
	if err != nil {
		return nil, err
	}
	if o.Registries != nil {
		regs = o.Registries
	}
	s := &Server{root: root, bridge: o.Bridge, subnet: o.Subnet, images: im, registries: regs, store: st, log: o.Log, cni: cniOpts,
		pods: map[string]*podRecord{}, names: map[string]string{}, ops: map[string]*sync.Mutex{},
		containers: map[string]*containerRecord{}, cnames: map[string]string{}}
	im.HolderAlive = s.holderAlive
	s.logs = crilog.NewNode(crilog.NodeOptions{Binary: o.LoggerBinary, Control: s.loggerControl(), OnRestart: func(err error) {
		if err != nil {
			s.log.Error("replace the node logger, which died", "err", err)
		} else {
			s.log.Warn("the node logger died: replaced, and given the containers' outputs")
		}
	}})
	s.stream = newStreamer(o.StreamAddr)
	s.stream.attach = s.attachContainer
	recs, bad := st.load()
	for _, err := range bad {
		s.log.Warn("skip unreadable pod record", "err", err)
	}
	for _, r := range recs {
		s.pods[r.ID] = r
		s.names[r.key()] = r.ID
	}
	crecs, bad := st.loadContainers()
	for _, err := range bad {
		s.log.Warn("skip unreadable container record", "err", err)
	}
	for _, r := range crecs {
		if _, ok := s.pods[r.PodID]; !ok {
			// Its pod's removal was cut short: finish it.
			s.log.Warn("drop record of a container of a removed pod", "container", r.ID, "pod", r.PodID)
			s.containers[r.ID] = r
			s.dropContainer(r)
			continue
		}
		s.containers[r.ID] = r
		s.cnames[r.key()] = r.ID
	}
	s.log.Info("loaded records", "pods", len(recs), "containers", len(s.containers), "state", o.StateDir, "root", root)
	s.cleanWork()
	return s, nil
}

func openImages(root, conf string) (*image.Store, *fetch.Registries, error) {
	s, err := image.Open(root)
	if err != nil {
		return nil, nil, err
	}
	if conf == "" {
		if _, err := os.Stat(fetch.DefaultRegistriesConf); err != nil {
			return s, nil, nil
		}
		conf = fetch.DefaultRegistriesConf
	}
	regs, err := fetch.LoadRegistries(conf)
	if err != nil {
		return nil, nil, err
	}
	return s, regs, nil
}

// Listen makes the unix socket addr names (unix:///PATH or a path), mode
// 0600, replacing a socket a previous server left.
func Listen(addr string) (net.Listener, error) {
	path, ok := strings.CutPrefix(addr, "unix://")
	if !ok && strings.Contains(addr, "://") {
		return nil, fmt.Errorf("listen address %q: want unix:///PATH", addr)
	}
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("listen address %q: want an absolute socket path", addr)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("listen on %s: a file that is not a socket is in the way", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("listen on %s: another server is serving it", path)
		}
		os.Remove(path)
	}
	// The socket is made 0600 from the start: root's umask for it.
	l, err := listenUmask(path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// Serve serves the CRI on l until ctx is done, then stops gracefully: calls
// in flight finish (for up to grace), new ones are refused. The pods keep
// running; the bridge network, which stays while the server runs, goes if
// no pod is left.
func (s *Server) Serve(ctx context.Context, l net.Listener, grace time.Duration) error {
	g := grpc.NewServer(grpc.ChainUnaryInterceptor(s.logCalls))
	runtimeapi.RegisterRuntimeServiceServer(g, s)
	runtimeapi.RegisterImageServiceServer(g, s)
	if err := s.startStreams(); err != nil {
		l.Close()
		return err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		s.log.Info("shutting down", "grace", grace)
		t := time.AfterFunc(grace, g.Stop)
		g.GracefulStop()
		t.Stop()
		s.stopStreams(grace)
		// Pods leave the network in place while the server runs
		// (RemoveOptions.KeepNetwork): with none left, it goes now.
		if err := sandbox.PruneNetwork(s.root); err != nil {
			s.log.Warn("prune the pods' network", "err", err)
		}
	}()
	s.log.Info("serving", "addr", l.Addr().String())
	err := g.Serve(l)
	if ctx.Err() != nil {
		// The shutdown may wait on a call that never ends (one stuck on
		// a lock): the server exits anyway. An abandoned call is as if
		// the server were killed, which a restart recovers from.
		select {
		case <-done:
		case <-time.After(shutdownLimit(grace)):
			s.log.Error("shutdown did not finish; exiting with calls or the network's pruning still running", "after", shutdownLimit(grace))
		}
		if errors.Is(err, grpc.ErrServerStopped) {
			err = nil
		}
	}
	return err
}

// shutdownLimit is how long Serve waits for its shutdown: grace for the
// calls, grace for the streams, and a little for pruning the network.
func shutdownLimit(grace time.Duration) time.Duration { return 2*grace + 5*time.Second }

// logCalls logs each call that changes something, and every failure, and
// turns a panic into an Internal error: nothing a client sends may end the
// server.
func (s *Server) logCalls(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic", "method", info.FullMethod, "panic", fmt.Sprint(p))
			resp, err = nil, internalf("%s: internal error: %v", info.FullMethod, p)
		}
		m := info.FullMethod[strings.LastIndexByte(info.FullMethod, '/')+1:]
		switch {
		case err != nil:
			s.log.Warn("call failed", "method", m, "err", err, "took", time.Since(start))
		case !readOnly[m]:
			s.log.Info("call", "method", m, "took", time.Since(start))
		}
	}()
	return h(ctx, req)
}

// readOnly are the methods kubelet polls: not logged unless they fail.
var readOnly = map[string]bool{
	"Version": true, "Status": true, "ListPodSandbox": true, "PodSandboxStatus": true,
	"ListImages": true, "ImageStatus": true, "ImageFsInfo": true, "ListContainers": true,
	"ListPodSandboxStats": true, "ListContainerStats": true, "RuntimeConfig": true,
	"ListPodSandboxMetrics": true, "ListMetricDescriptors": true, "PodSandboxStats": true, "ContainerStats": true,
}
