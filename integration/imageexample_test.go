package integration

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"log"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestImagesProxyExample is the pod this project is modelled on, from
// images: a web front end (nginx, from Debian's nginx-light files) and a
// backend (busybox-static's httpd, on the blog engine's port 2368), each
// built here as an image of its own, served by an in-process registry,
// pulled by name and run in one pod published with -p HOSTPORT:80. The front
// end proxies to the backend over the pod's 127.0.0.1, and a client on the
// host gets the backend's answer.
func TestImagesProxyExample(t *testing.T) {
	e, nargs := netEnv(t)
	images := t.TempDir()
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	host := strings.TrimPrefix(reg.URL, "http://")

	backend := exMutateConfig(t, exAppendLayers(t,
		exBusyboxLayer(t),
		exFilesLayer(t, map[string]exFile{
			"etc/passwd":     {body: "root:x:0:0:root:/root:/bin/sh\nblog:x:1000:1000:blog:/srv:/bin/sh\n"},
			"etc/group":      {body: "root:x:0:\nblog:x:1000:\n"},
			"srv/index.html": {body: "served by the backend's own image\n"},
		})),
		v1.Config{
			Entrypoint: []string{"/bin/busybox", "httpd", "-f", "-v"},
			Cmd:        []string{"-p", "127.0.0.1:2368", "-h", "/srv"},
			User:       "blog",
			WorkingDir: "/srv",
		})
	frontend := exMutateConfig(t, exAppendLayers(t,
		exBinaryLayer(t, "/usr/sbin/nginx"),
		exFilesLayer(t, map[string]exFile{
			"etc/nginx/nginx.conf": {body: exampleNginxConf},
			"etc/passwd":           {body: "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"},
			"etc/group":            {body: "root:x:0:\nnogroup:x:65534:\n"},
		})),
		v1.Config{
			Entrypoint: []string{"/usr/sbin/nginx", "-e", "stderr"},
			Cmd:        []string{"-c", "/etc/nginx/nginx.conf"},
		})
	backendRef := exPushImage(t, host+"/example/blog:1", backend)
	frontendRef := exPushImage(t, host+"/example/web:1", frontend)

	for _, ref := range []string{backendRef, frontendRef} {
		e.must("--image-root", images, "image", "pull", ref)
	}
	hostPort := 20000 + rand.IntN(20000)
	pod, _ := e.create(append(nargs, "-p", fmt.Sprintf("%d:80", hostPort))...)
	e.must("--image-root", images, "run", "-d", "--name", "blog", "--image", backendRef, pod)
	e.must("--image-root", images, "run", "-d", "--name", "web", "--image", frontendRef, pod)

	url := fmt.Sprintf("http://127.0.0.1:%d/index.html", hostPort)
	var body string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if body = string(b); resp.StatusCode == 200 {
				break
			}
		}
	}
	if body != "served by the backend's own image\n" {
		t.Errorf("GET %s: %q\nweb log: %s\nblog log: %s", url, body, e.run("logs", pod, "web").stdout, e.run("logs", pod, "blog").stdout)
	}
	// The backend runs as the image's user, looked up in its own passwd.
	if out := e.must("exec", "--container", "blog", pod, "--", "/bin/busybox", "sh", "-c", "cat /proc/1/status >/dev/null; ps -o user,args"); !strings.Contains(out, "blog") {
		t.Errorf("blog's processes:\n%s", out)
	}
	// The image is in use: rm without -f is refused.
	if r := e.run("--image-root", images, "image", "rm", backendRef); r.code != 125 {
		t.Errorf("image rm of an image in use: %+v", r)
	}
	if ents, _ := os.ReadDir(filepath.Join(images, "upper")); len(ents) != 2 {
		t.Errorf("upper directories while both containers run: %d, want 2", len(ents))
	}
	e.must("rm", "-f", pod)
	if ents, _ := os.ReadDir(filepath.Join(images, "upper")); len(ents) != 0 {
		t.Errorf("upper directories left after rm: %d", len(ents))
	}
	e.must("--image-root", images, "image", "rm", backendRef, frontendRef)
	if out := e.must("--image-root", images, "image", "ls", "-q"); out != "" {
		t.Errorf("image ls after rm: %q", out)
	}
	if m := mountsUnder(t, images); len(m) > 0 {
		t.Errorf("mounts left under the image root: %v", m)
	}
}

const exampleNginxConf = `daemon off;
master_process off;
worker_processes 1;
pid /tmp/nginx.pid;
error_log stderr;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path /tmp/client;
	proxy_temp_path /tmp/proxy;
	fastcgi_temp_path /tmp/fastcgi;
	uwsgi_temp_path /tmp/uwsgi;
	scgi_temp_path /tmp/scgi;
	server {
		listen 80;
		location / { proxy_pass http://127.0.0.1:2368; }
	}
}
`

type exFile struct {
	body string
	mode int64
	link string // a symlink's target
	src  string // a host file to copy
}

// exFilesLayer is an uncompressed layer of the given files, their parent
// directories made as needed.
func exFilesLayer(t testing.TB, files map[string]exFile) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for p := range files {
		for d := filepath.Dir(p); d != "." && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755})
	}
	for _, p := range slices.Sorted(maps.Keys(files)) {
		f := files[p]
		switch {
		case f.link != "":
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: p, Linkname: f.link, Mode: 0o777})
		case f.src != "":
			b, err := os.ReadFile(f.src)
			if err != nil {
				t.Fatal(err)
			}
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: 0o755, Size: int64(len(b))})
			tw.Write(b)
		default:
			mode := f.mode
			if mode == 0 {
				mode = 0o644
			}
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: mode, Size: int64(len(f.body))})
			tw.Write([]byte(f.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// exBusyboxLayer holds busybox-static as /bin/busybox and /bin/sh.
func exBusyboxLayer(t testing.TB) v1.Layer {
	t.Helper()
	return exFilesLayer(t, map[string]exFile{
		"bin/busybox": {src: "/bin/busybox"},
		"bin/sh":      {link: "busybox"},
		"bin/true":    {link: "busybox"},
	})
}

// exBinaryLayer holds a host binary with the shared libraries ldd names, at
// their host paths.
func exBinaryLayer(t testing.TB, bin string) v1.Layer {
	t.Helper()
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", bin, err)
	}
	files := map[string]exFile{strings.TrimPrefix(bin, "/"): {src: bin}}
	for _, line := range strings.Split(string(out), "\n") {
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "/") {
				real, err := filepath.EvalSymlinks(f)
				if err != nil {
					t.Fatal(err)
				}
				files[strings.TrimPrefix(f, "/")] = exFile{src: real}
			}
		}
	}
	return exFilesLayer(t, files)
}

func exAppendLayers(t testing.TB, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func exMutateConfig(t testing.TB, img v1.Image, c v1.Config) v1.Image {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config = "linux", runtime.GOARCH, c
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

func exPushImage(t testing.TB, ref string, img v1.Image) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return ref
}
