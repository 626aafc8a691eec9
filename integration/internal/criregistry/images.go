package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The images critest v1.37.0 names (pkg/framework/util.go,
// pkg/validate/consts*.go, multi_container_linux.go), and the images
// cri-tools builds for them (its images/build): each is busybox and a
// little more. The default test image and the web server image are also
// the test-images file's.
const (
	busyboxImage   = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
	nginxImage     = "registry.k8s.io/e2e-test-images/nginx:1.14-2"
	httpdImage     = "registry.k8s.io/e2e-test-images/httpd:2.4.39-4"
	criToolsImages = "gcr.io/k8s-staging-cri-tools/"
	// nonewprivsImage is the NoNewPrivs specs' (pkg/validate/consts.go).
	nonewprivsImage = "registry.k8s.io/e2e-test-images/nonewprivs:1.3"
)

// nnpSource is the nonewprivs image's program, as its nnp.c: it prints
// its effective user ID.
const nnpSource = `package main

import (
	"os"
	"strconv"
)

func main() {
	os.Stdout.WriteString("Effective uid: " + strconv.Itoa(os.Geteuid()) + "\n")
}
`

// nnpProgram builds nnpSource: a static binary (no cgo).
func nnpProgram() ([]byte, error) {
	dir, err := os.MkdirTemp("", "criregistry-nnp")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(nnpSource), 0o644); err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "nnp")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "main.go")
	cmd.Dir, cmd.Env = dir, append(os.Environ(), "CGO_ENABLED=0", "GO111MODULE=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build nonewprivs' program: %v: %s", err, out)
	}
	return os.ReadFile(bin)
}

// path is the PATH of every image, as Docker's default.
const path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// file is one entry of a layer: a regular file, a directory (dir), a
// symbolic link (link), or a hard link (hard, the name of the linked
// file in the layer).
type file struct {
	name string
	mode int64
	body []byte
	link string
	hard string
	dir  bool
}

// layerOf makes an uncompressed OCI layer of files, with no time stamps,
// so that the same files make the same layer every time.
func layerOf(files ...file) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Format: tar.FormatPAX}
		switch {
		case f.dir:
			h.Typeflag, h.Name = tar.TypeDir, f.name+"/"
		case f.link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, f.link, 0o777
		case f.hard != "":
			h.Typeflag, h.Linkname = tar.TypeLink, f.hard
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer))
}

// pgrep stands in for busybox's pgrep, which Debian's busybox-static
// lacks: critest's ExecSync timeout spec runs `pgrep sleep || true` and
// wants an empty stderr.
const pgrep = `#!/bin/sh
# pgrep NAME: the PIDs of the processes named NAME, one a line; exit 1 if none.
pids=$(pidof "$1") || exit 1
for p in $pids; do echo "$p"; done
`

// ipcs stands in for busybox's ipcs, which Debian's busybox-static
// lacks: critest's HostIpc specs run `ipcs -m` and look for the ID of a
// segment made on the host. It lists the System V shared memory segments
// of its IPC namespace, as /proc/sysvipc/shm has them.
const ipcs = `#!/bin/sh
# ipcs [-m]: the shared memory segments (key, shmid, owner, perms, bytes, nattch).
echo "------ Shared Memory Segments --------"
echo "key        shmid      owner      perms      bytes      nattch"
tail -n +2 /proc/sysvipc/shm | while read key shmid perms size cpid lpid nattch uid rest; do
	echo "$key $shmid $uid $perms $size $nattch"
done
`

// pauseCmd is the pause image's: sh, which as PID 1 ignores the signals
// it does not trap, exits on SIGTERM or SIGINT.
var pauseCmd = []string{"sh", "-c", "trap 'exit 0' TERM INT; tail -f /dev/null & wait"}

// baseLayer is busybox (the file at bb) with a hard link for each of its
// applets where `busybox --list-full` puts it (as busybox's image has:
// masking one applet, critest's MaskedPaths spec, leaves the others), pgrep, ipcs, the directories
// a root file system has, and users and groups: root, www-data (33),
// nobody.
func baseLayer(bb string) (v1.Layer, error) {
	body, err := os.ReadFile(bb)
	if err != nil {
		return nil, fmt.Errorf("busybox (Debian's busybox-static, make deps): %w", err)
	}
	out, err := exec.Command(bb, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list-full: %w", bb, err)
	}
	files := []file{}
	for _, d := range []string{"bin", "dev", "etc", "home", "proc", "root", "sbin", "sys", "usr", "usr/bin", "usr/sbin",
		"usr/local", "usr/local/bin", "var", "var/www"} {
		files = append(files, file{name: d, mode: 0o755, dir: true})
	}
	files = append(files, file{name: "tmp", mode: 0o1777, dir: true},
		file{name: "bin/busybox", mode: 0o755, body: body},
		file{name: "usr/bin/pgrep", mode: 0o755, body: []byte(pgrep)},
		file{name: "usr/bin/ipcs", mode: 0o755, body: []byte(ipcs)},
		file{name: "etc/passwd", mode: 0o644, body: []byte("root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/false\nnobody:x:65534:65534:nobody:/home:/bin/false\n")},
		file{name: "etc/group", mode: 0o644, body: []byte("root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n")})
	applets := strings.Fields(string(out))
	sort.Strings(applets)
	for _, a := range applets {
		if a == "bin/busybox" || a == "usr/bin/pgrep" || a == "usr/bin/ipcs" {
			continue
		}
		// The link's header has busybox's mode: some unpackers (containerd's)
		// apply a hard link's mode to the file it links.
		files = append(files, file{name: a, mode: 0o755, hard: "bin/busybox"})
	}
	return layerOf(files...)
}

// imageOf makes a linux image for this machine of the base layer and
// more, with config c.
func imageOf(c v1.Config, layers ...v1.Layer) (v1.Image, error) {
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	if c.Env == nil {
		c.Env = []string{path}
	}
	cf.OS, cf.Architecture, cf.Config = "linux", runtime.GOARCH, c
	return mutate.ConfigFile(img, cf)
}

// images returns every image critest pulls in the groups TestCritest
// runs, by the name critest pulls it by: of busybox at bb and, for the web
// server (the test-images file's webServerTestImage) and hostnet-nginx,
// Debian's nginx at nginx.
func images(bb, nginx string) (map[string]v1.Image, error) {
	base, err := baseLayer(bb)
	if err != nil {
		return nil, err
	}
	ngx, err := nginxLayer(nginx)
	if err != nil {
		return nil, err
	}
	imgs := map[string]v1.Image{}
	// add adds an image of busybox, nginx if web, and extra.
	add := func(c v1.Config, web bool, extra []file, names ...string) error {
		layers := []v1.Layer{base}
		if web {
			layers = append(layers, ngx)
		}
		if len(extra) > 0 {
			l, err := layerOf(extra...)
			if err != nil {
				return err
			}
			layers = append(layers, l)
		}
		img, err := imageOf(c, layers...)
		if err != nil {
			return err
		}
		for _, n := range names {
			imgs[n] = img
		}
		return nil
	}
	html := func(dir string) []file {
		return []file{{name: dir, mode: 0o755, dir: true},
			{name: dir + "/index.html", mode: 0o644, body: []byte("<html><body>podsb critest web server</body></html>\n")}}
	}
	// A web server that logs a line with its name when it starts, as
	// Apache's and nginx's do (the multi-container log spec looks for
	// "httpd" in the log).
	serve := func(name string, port int, dir string) []string {
		return []string{"sh", "-c", fmt.Sprintf("echo '%s: serving %s on port %d' >&2; exec httpd -f -v -p %d -h %s", name, dir, port, port, dir)}
	}
	type spec struct {
		c     v1.Config
		extra []file
		names []string
	}
	specs := []spec{
		{v1.Config{Cmd: []string{"sh"}}, nil, []string{busyboxImage}},
		{v1.Config{Cmd: serve("httpd", 80, "/usr/local/apache2/htdocs")}, html("usr/local/apache2/htdocs"), []string{httpdImage}},
		// The same image from two registries; a container of it runs with
		// its default entrypoint, and containerd runs it as its pods' pause.
		// It waits until SIGTERM as pause does, as PID 1 too, and runs no
		// sleep, which critest's ExecSync timeout spec looks for with pgrep
		// in a pod whose processes share the PID namespace with pause.
		{v1.Config{Entrypoint: pauseCmd}, nil, []string{"registry.k8s.io/pause:3.9", "k8s.gcr.io/pause:3.9"}},
		// images/image-user: busybox with a USER.
		{v1.Config{Cmd: []string{"sh"}, User: "1002"}, nil, []string{criToolsImages + "test-image-user-uid:latest"}},
		{v1.Config{Cmd: []string{"sh"}, User: "www-data"}, nil, []string{criToolsImages + "test-image-user-username:latest"}},
		{v1.Config{Cmd: []string{"sh"}, User: "1003:1004"}, nil, []string{criToolsImages + "test-image-user-uid-group:latest"}},
		{v1.Config{Cmd: []string{"sh"}, User: "www-data:1004"}, nil, []string{criToolsImages + "test-image-user-username-group:latest"}},
		// images/image-predefined-group: user 1000 in group 50000.
		{v1.Config{Cmd: []string{"sh"}, User: "1000"}, []file{{name: "etc", mode: 0o755, dir: true},
			{name: "etc/passwd", mode: 0o644, body: []byte("root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/false\ndefault-user:x:1000:1000::/home/default-user:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n")},
			{name: "etc/group", mode: 0o644, body: []byte("root:x:0:\nwww-data:x:33:\ndefault-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\nnogroup:x:65534:\n")}},
			[]string{criToolsImages + "test-image-predefined-group:latest"}},
		// images/image-test: busybox and an empty file named as the image
		// (or the tag), so that each is an image of its own, but the three
		// tags of test-image-tags one image.
		{v1.Config{Cmd: []string{"sh"}}, []file{{name: "same-image", mode: 0o644}},
			[]string{criToolsImages + "test-image-tags:1", criToolsImages + "test-image-tags:2", criToolsImages + "test-image-tags:3"}},
		{v1.Config{Cmd: []string{"sh"}}, []file{{name: "test", mode: 0o644}}, []string{criToolsImages + "test-image-tag:test"}},
		{v1.Config{Cmd: []string{"sh"}}, []file{{name: "all", mode: 0o644}}, []string{criToolsImages + "test-image-tag:all"}},
	}
	// e2e-test-images/nonewprivs: a set-user-ID root program that prints
	// its effective user.
	nnp, err := nnpProgram()
	if err != nil {
		return nil, err
	}
	specs = append(specs, spec{v1.Config{Entrypoint: []string{"/usr/local/bin/nnp"}},
		[]file{{name: "usr/local/bin/nnp", mode: 0o4755, body: nnp}}, []string{nonewprivsImage}})
	// test-image-digest is named by the digest of cri-tools' build, which
	// no other build has (docs/cri.md#conformance-critest): it is served
	// by its tag only, and the spec that pulls it by digest is skipped.
	for _, n := range []string{"test-image-1", "test-image-2", "test-image-3", "test-image-latest", "test-image-digest"} {
		specs = append(specs, spec{v1.Config{Cmd: []string{"sh"}}, []file{{name: n, mode: 0o644}}, []string{criToolsImages + n + ":latest"}})
	}
	for _, s := range specs {
		if err := add(s.c, false, s.extra, s.names...); err != nil {
			return nil, err
		}
	}
	// nginx: Debian's, on port 80, as critest's web server (its Networking
	// and port-forward specs fetch its page), and images/hostnet-nginx's
	// on port 12003.
	if err := add(v1.Config{Cmd: []string{"nginx"}}, true, nginxSite(80), nginxImage); err != nil {
		return nil, err
	}
	if err := add(v1.Config{Cmd: []string{"nginx"}}, true, nginxSite(12003), criToolsImages+"hostnet-nginx-"+runtime.GOARCH+":latest"); err != nil {
		return nil, err
	}
	return imgs, nil
}
