package main

import (
	"archive/tar"
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/podsb/podsb/image/fetch"
)

func busybox(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skipf("no /bin/busybox (Debian's busybox-static, make deps): %v", err)
	}
	return "/bin/busybox"
}

// layerFiles lists a layer's entries: name to link target, or "" for a
// file or directory.
func layerFiles(t *testing.T, l v1.Layer) map[string]string {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimSuffix(h.Name, "/")] = h.Linkname
	}
}

// The images are those critest names, made as cri-tools' images/build
// makes them: the same image where critest wants one, images of their
// own where it wants several, the users it reads back, and what its
// commands run.
func TestImages(t *testing.T) {
	imgs, err := images(busybox(t), "/usr/sbin/nginx")
	if err != nil {
		t.Fatal(err)
	}
	digest := func(n string) v1.Hash {
		t.Helper()
		img, ok := imgs[n]
		if !ok {
			t.Fatalf("no image %s", n)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, n := range []string{busyboxImage, nginxImage, httpdImage, criToolsImages + "hostnet-nginx-" + runtime.GOARCH + ":latest",
		criToolsImages + "test-image-latest:latest", criToolsImages + "test-image-predefined-group:latest"} {
		digest(n)
	}
	if a, b := digest("registry.k8s.io/pause:3.9"), digest("k8s.gcr.io/pause:3.9"); a != b {
		t.Errorf("the pause images differ: %s %s", a, b)
	}
	tags := criToolsImages + "test-image-tags:"
	if a, b, c := digest(tags+"1"), digest(tags+"2"), digest(tags+"3"); a != b || b != c {
		t.Errorf("test-image-tags:1,2,3 are not one image: %s %s %s", a, b, c)
	}
	seen := map[v1.Hash]string{}
	for _, n := range []string{"test-image-1:latest", "test-image-2:latest", "test-image-3:latest", "test-image-tag:test", "test-image-tag:all", "test-image-tags:1"} {
		d := digest(criToolsImages + n)
		if o, ok := seen[d]; ok {
			t.Errorf("%s and %s are one image", n, o)
		}
		seen[d] = n
	}
	for n, want := range map[string]string{"test-image-user-uid": "1002", "test-image-user-username": "www-data",
		"test-image-user-uid-group": "1003:1004", "test-image-user-username-group": "www-data:1004", "test-image-predefined-group": "1000"} {
		cf, err := imgs[criToolsImages+n+":latest"].ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Config.User != want || cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
			t.Errorf("%s: user %q, %s/%s", n, cf.Config.User, cf.OS, cf.Architecture)
		}
	}
	layers, err := imgs[busyboxImage].Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("busybox image: %d layers, %v", len(layers), err)
	}
	files := layerFiles(t, layers[0])
	for _, f := range []string{"bin/busybox", "usr/bin/pgrep", "etc/passwd", "etc/group", "tmp"} {
		if _, ok := files[f]; !ok {
			t.Errorf("busybox image lacks %s", f)
		}
	}
	if _, ok := imgs[nonewprivsImage]; !ok {
		t.Errorf("no %s", nonewprivsImage)
	}
	// What critest's specs run.
	for _, f := range []string{"bin/sh", "bin/echo", "bin/sleep", "bin/ls", "bin/cat", "bin/hostname", "usr/bin/top", "usr/bin/seq", "bin/sync", "usr/sbin/httpd", "bin/pidof"} {
		if files[f] != "bin/busybox" { // a hard link
			t.Errorf("busybox image: %s -> %q", f, files[f])
		}
	}
}

// The web server images are Debian's nginx with its libraries and the
// loader, configured for their port.
func TestNginxImages(t *testing.T) {
	imgs, err := images(busybox(t), "/usr/sbin/nginx")
	if err != nil {
		t.Fatal(err)
	}
	for n, port := range map[string]string{nginxImage: "80", criToolsImages + "hostnet-nginx-" + runtime.GOARCH + ":latest": "12003"} {
		layers, err := imgs[n].Layers()
		if err != nil || len(layers) != 3 {
			t.Fatalf("%s: %d layers, %v", n, len(layers), err)
		}
		files := layerFiles(t, layers[1])
		for _, f := range []string{"usr/sbin/nginx", "etc/nginx/mime.types", "var/lib/nginx", "var/log/nginx", "run"} {
			if _, ok := files[f]; !ok {
				t.Errorf("%s lacks %s", n, f)
			}
		}
		var libc, loader bool
		for f := range files {
			libc = libc || strings.HasSuffix(f, "/libc.so.6")
			loader = loader || strings.Contains(f, "/ld-linux")
		}
		if !libc || !loader {
			t.Errorf("%s: libc %v, loader %v", n, libc, loader)
		}
		conf := layerFile(t, layers[2], "etc/nginx/nginx.conf")
		if !strings.Contains(conf, "listen "+port+";") || !strings.Contains(conf, "daemon off;") {
			t.Errorf("%s: nginx.conf:\n%s", n, conf)
		}
	}
}

// layerFile returns the content of the file name of a layer.
func layerFile(t *testing.T, l v1.Layer, name string) string {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if h.Name == name {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
	}
}

// criregistry serves the images on 127.0.0.1 and writes a registries
// config that podsb reads, which sends every registry critest names
// there, and a test-images file.
func TestServe(t *testing.T) {
	bb := busybox(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-busybox", bb, dir}, pw); pw.Close() }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("criregistry: %v (%v)", err, <-done)
	}
	go io.Copy(io.Discard, pr)
	host, ok := strings.CutPrefix(strings.TrimSpace(line), "serving ")
	if !ok {
		t.Fatalf("criregistry said %q", line)
	}

	r, err := fetch.LoadRegistries(filepath.Join(dir, "registries.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var prefixes []string
	for _, reg := range r.Registry {
		prefixes = append(prefixes, reg.Prefix)
		want := host + "/" + reg.Prefix
		if reg.Location != want || !reg.Insecure || len(reg.Mirror) != 1 || reg.Mirror[0].Location != want || !reg.Mirror[0].Insecure {
			t.Errorf("registry %s: %+v", reg.Prefix, reg)
		}
	}
	for _, p := range []string{"registry.k8s.io", "k8s.gcr.io", "gcr.io", "docker.io"} {
		if !slices.Contains(prefixes, p) {
			t.Errorf("registries.conf does not send %s to the local registry", p)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "test-images.yaml"))
	if err != nil || !strings.Contains(string(b), "defaultTestContainerImage: "+busyboxImage+"\n") ||
		!strings.Contains(string(b), "webServerTestImage: "+nginxImage+"\n") {
		t.Errorf("test-images.yaml: %q %v", b, err)
	}

	ref, err := name.ParseReference(host+"/"+criToolsImages+"test-image-tags:2", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Image(ref); err != nil {
		t.Errorf("pull %s: %v", ref, err)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("criregistry after its context ended: %v", err)
	}
}

func TestListenOnlyLoopback(t *testing.T) {
	for _, a := range []string{"0.0.0.0:0", "[::]:5000", "example.com:5000", "5000"} {
		if err := run(context.Background(), []string{"-listen", a, t.TempDir()}, io.Discard); err == nil || !strings.Contains(err.Error(), "not a loopback") {
			t.Errorf("-listen %s: %v", a, err)
		}
	}
}
