// Command criregistry builds the images critest v1.37.0 pulls, from
// Debian's busybox-static (and nginx, the web server's), and serves them from a registry on 127.0.0.1
// (go-containerregistry's pkg/registry), so that critest runs with no
// traffic leaving the machine. TestCritest runs it; so can a person, for
// critest against any CRI runtime:
//
//	criregistry [-listen 127.0.0.1:0] [-busybox /bin/busybox] [-nginx /usr/sbin/nginx] DIR
//
// Once it serves, it writes in DIR
//
//	registries.conf   for podsb-cri --registries-conf: each registry critest
//	                  names (registry.k8s.io, gcr.io, ...) mirrored, and
//	                  located, on the local registry, under its own name
//	test-images.yaml  for critest --test-images-file
//
// and prints "serving HOST:PORT" on stdout. It serves until SIGTERM or
// SIGINT. No root needed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// mirrored are the registries the registries config sends to the local
// registry: those critest names, and the other public ones, so that no
// name critest might pull reaches the network.
var mirrored = []string{"registry.k8s.io", "k8s.gcr.io", "gcr.io", "docker.io", "quay.io", "ghcr.io", "mcr.microsoft.com", "public.ecr.aws"}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "criregistry:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("criregistry", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "`HOST:PORT` to serve on (a loopback address)")
	bb := fs.String("busybox", "/bin/busybox", "the static busybox `FILE` the images are made of")
	nginx := fs.String("nginx", "/usr/sbin/nginx", "Debian's nginx `FILE`, the web server images'")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: criregistry [-listen HOST:PORT] [-busybox FILE] [-nginx FILE] DIR")
	}
	dir := fs.Arg(0)
	if h, _, err := net.SplitHostPort(*listen); err != nil || net.ParseIP(h) == nil || !net.ParseIP(h).IsLoopback() {
		return fmt.Errorf("-listen %s: not a loopback HOST:PORT", *listen)
	}
	imgs, err := images(*bb, *nginx)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	defer srv.Close()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	host := ln.Addr().String()

	names := make([]string, 0, len(imgs))
	for n := range imgs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ref, err := name.ParseReference(local(host, n), name.Insecure)
		if err != nil {
			return err
		}
		if err := remote.Write(ref, imgs[n]); err != nil {
			return fmt.Errorf("push %s: %w", n, err)
		}
	}
	if err := writeConfig(dir, host); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "serving %s\n", host)

	select {
	case <-ctx.Done():
		return srv.Shutdown(context.Background())
	case err := <-done:
		return err
	}
}

// local is where the local registry keeps image n: under the name of n's
// registry, so that one registry holds the images of all.
func local(host, n string) string {
	return host + "/" + n
}

// writeConfig writes the registries config and the test-images file, each
// through a temporary file, so that a reader never sees half of one.
func writeConfig(dir, host string) error {
	var b strings.Builder
	b.WriteString("# Written by criregistry: every registry critest may name is mirrored on\n" +
		"# the local registry, and located there too, so that a name the local\n" +
		"# registry lacks fails there rather than reaching the network.\n")
	for _, r := range mirrored {
		fmt.Fprintf(&b, "\n[[registry]]\nprefix = %q\nlocation = %q\ninsecure = true\n[[registry.mirror]]\nlocation = %q\ninsecure = true\n",
			r, local(host, r), local(host, r))
	}
	if err := writeFile(filepath.Join(dir, "registries.conf"), b.String()); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, "test-images.yaml"),
		fmt.Sprintf("# critest --test-images-file, written by criregistry.\ndefaultTestContainerImage: %s\nwebServerTestImage: %s\n", busyboxImage, nginxImage))
}

func writeFile(path, s string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
