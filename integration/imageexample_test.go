package integration

import (
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
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
	backend := imageOf(t, v1.Config{
		Entrypoint: []string{"/bin/busybox", "httpd", "-f", "-v"},
		Cmd:        []string{"-p", "127.0.0.1:2368", "-h", "/srv"},
		User:       "blog",
		WorkingDir: "/srv",
	},
		busyboxLayer(t),
		layer(t,
			tarFile{name: "etc/passwd", body: []byte("root:x:0:0:root:/root:/bin/sh\nblog:x:1000:1000:blog:/srv:/bin/sh\n")},
			tarFile{name: "etc/group", body: []byte("root:x:0:\nblog:x:1000:\n")},
			tarFile{name: "srv/index.html", body: []byte("served by the backend's own image\n")}))
	frontend := imageOf(t, v1.Config{
		Entrypoint: []string{"/usr/sbin/nginx", "-e", "stderr"},
		Cmd:        []string{"-c", "/etc/nginx/nginx.conf"},
	},
		binaryLayer(t, "/usr/sbin/nginx"),
		layer(t,
			tarFile{name: "etc/nginx/nginx.conf", body: []byte(proxyNginxConf(2368))},
			tarFile{name: "etc/passwd", body: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")},
			tarFile{name: "etc/group", body: []byte("root:x:0:\nnogroup:x:65534:\n")}))
	host := serveImages(t, map[string]v1.Image{"example/blog:1": backend, "example/web:1": frontend})
	backendRef, frontendRef := host+"/example/blog:1", host+"/example/web:1"

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

// binaryLayer holds a host binary with the shared libraries ldd names, at
// their host paths.
func binaryLayer(t testing.TB, bin string) v1.Layer {
	t.Helper()
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", bin, err)
	}
	files := map[string]bool{bin: true}
	for _, line := range strings.Split(string(out), "\n") {
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "/") {
				files[f] = true
			}
		}
	}
	var tfs []tarFile
	for _, f := range slices.Sorted(maps.Keys(files)) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		tfs = append(tfs, tarFile{name: strings.TrimPrefix(f, "/"), mode: 0o755, body: b})
	}
	return layer(t, tfs...)
}
