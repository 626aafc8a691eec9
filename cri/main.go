package cri

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/image"
	"github.com/podsb/podsb/image/fetch"
	"github.com/podsb/podsb/sandbox"
)

// Main runs the server as the command podsb-cri (and podsb cri, which
// executes it) with args, logging to stderr, until SIGTERM or SIGINT. It
// returns the exit code: 0 after a graceful shutdown, 125 for bad flags or
// a server that could not start (docs/cli.md).
func Main(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("podsb cri", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "config `FILE` (TOML): any of these flags by name, and [[registry]] tables of mirrors (docs/cri.md)")
	listen := fs.String("listen", DefaultListen, "the `unix:///PATH` socket to serve the CRI on")
	root := fs.String("root", envOr("PODSB_ROOT", sandbox.DefaultRoot), "podsb state root of the pods (env PODSB_ROOT)")
	imageRoot := fs.String("image-root", envOr("PODSB_IMAGE_ROOT", image.DefaultRoot), "image store `DIR` (env PODSB_IMAGE_ROOT)")
	conf := fs.String("registries-conf", os.Getenv("PODSB_REGISTRIES_CONF"), "registries config `FILE`: mirrors, insecure registries")
	bridge := fs.String("bridge", "", "`NAME` of the pods' bridge, on the network's first use (default podsb0)")
	subnet := fs.String("subnet", "", "`CIDR` of the pods' network, on its first use (default 10.89.0.0/16)")
	cniConf := fs.String("cni-conf-dir", "", "`DIR` of CNI network configurations: the pods' network is its first valid one, run by CNI plugins, instead of podsb's bridge")
	cniBin := fs.String("cni-bin-dir", "", "comma-separated `DIRS` of the CNI plugins (default "+DefaultCNIBinDir+"); only with --cni-conf-dir")
	state := fs.String("state", DefaultStateDir, "`DIR` of the CRI records of the pods")
	stream := fs.String("stream-address", DefaultStreamAddr, "`HOST:PORT` of the streaming server (exec, attach, port-forward); loopback unless you mean otherwise")
	grace := fs.Duration("grace", 10*time.Second, "how long calls in flight get to finish on SIGTERM")
	logJSON := fs.Bool("log-json", false, "log as JSON instead of key=value text")
	debug := fs.Bool("debug", false, "log debug messages too")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: podsb cri [FLAGS]\n\nServe the Kubernetes CRI (RuntimeService, ImageService) on a unix socket, in the foreground.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 125
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "podsb cri: unexpected argument %q\n", fs.Arg(0))
		return 125
	}
	var regs *fetch.Registries
	if *config != "" {
		var err error
		if regs, err = loadConfig(fs, *config); err != nil {
			fmt.Fprintf(stderr, "podsb cri: %v\n", err)
			return 125
		}
	}
	if _, _, err := net.SplitHostPort(*stream); err != nil {
		fmt.Fprintf(stderr, "podsb cri: --stream-address %q: want HOST:PORT: %v\n", *stream, err)
		return 125
	}
	lvl := slog.LevelInfo
	if *debug {
		lvl = slog.LevelDebug
	}
	var h slog.Handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl})
	if *logJSON {
		h = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: lvl})
	}
	log := slog.New(h)
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "podsb cri: must be run as root")
		return 125
	}
	var sn netip.Prefix
	if *subnet != "" {
		p, err := sandbox.ParseSubnet(*subnet)
		if err != nil {
			fmt.Fprintf(stderr, "podsb cri: --subnet: %v\n", err)
			return 125
		}
		sn = p
	}
	s, err := New(Options{Root: *root, Bridge: *bridge, Subnet: sn, ImageRoot: *imageRoot, RegistriesConf: *conf, Registries: regs, StateDir: *state, StreamAddr: *stream, Log: log,
		CNIConfDir: *cniConf, CNIBinDirs: SplitDirs(*cniBin)})
	if err != nil {
		fmt.Fprintf(stderr, "podsb cri: %v\n", err)
		return 125
	}
	l, err := Listen(*listen)
	if err != nil {
		fmt.Fprintf(stderr, "podsb cri: %v\n", err)
		return 125
	}
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM, unix.SIGINT)
	defer stop()
	if err := s.Serve(ctx, l, *grace); err != nil {
		log.Error("serve", "err", err)
		return 1
	}
	log.Info("stopped; the pods keep running")
	return 0
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
