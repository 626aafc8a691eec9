package integration

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// tarFile is a file of a test image's layer: a symbolic link if link is set.
type tarFile struct {
	name, link string
	mode       int64
	body       []byte
}

// layer makes a gzip layer of files (directories are implied).
func layer(tb testing.TB, files ...tarFile) v1.Layer {
	tb.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, f := range files {
		for d := filepath.Dir(f.name); d != "." && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
			tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(1700000000, 0)})
		}
		h := &tar.Header{Name: f.name, Mode: f.mode, ModTime: time.Unix(1700000000, 0), Typeflag: tar.TypeReg, Size: int64(len(f.body))}
		if f.link != "" {
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, f.link, 0
			dirs[f.name] = true // no directory in its place: entries go through it
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			tb.Fatal(err)
		}
		tw.Write(f.body)
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// busyboxLayer is Debian's busybox-static as /bin/busybox, with /bin/sh
// and /bin/true.
func busyboxLayer(tb testing.TB) v1.Layer {
	tb.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		tb.Skipf("no /bin/busybox (Debian's busybox-static, make deps): %v", err)
	}
	return layer(tb, tarFile{name: "bin/busybox", mode: 0o755, body: bb}, tarFile{name: "bin/sh", link: "busybox"},
		tarFile{name: "bin/true", link: "busybox"})
}

// ociImage makes a linux image of layers for this machine, with cmd.
func ociImage(tb testing.TB, cmd []string, layers ...v1.Layer) v1.Image {
	tb.Helper()
	return imageOf(tb, v1.Config{Cmd: cmd, Env: []string{"PATH=/bin"}}, layers...)
}

// imageOf makes a linux image of layers for this machine, with config c.
func imageOf(tb testing.TB, c v1.Config, layers ...v1.Layer) v1.Image {
	tb.Helper()
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		tb.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		tb.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config = "linux", runtime.GOARCH, c
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		tb.Fatal(err)
	}
	return img
}

// serveImages serves imgs (by reference below the registry) from an
// in-process registry on 127.0.0.1 and returns its host:port.
func serveImages(tb testing.TB, imgs map[string]v1.Image) string {
	tb.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	tb.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	for ref, img := range imgs {
		r, err := name.ParseReference(host + "/" + ref)
		if err != nil {
			tb.Fatal(err)
		}
		if err := remote.Write(r, img); err != nil {
			tb.Fatal(err)
		}
	}
	return host
}

// image runs podsb image ... with the test's own image root.
func (e *env) image(root string, args ...string) result {
	e.t.Helper()
	return e.run(append([]string{"--image-root", root, "image"}, args...)...)
}

func TestImageCLI(t *testing.T) {
	e := newEnv(t)
	iroot := t.TempDir()
	bb := busyboxLayer(t)
	evil := layer(t, tarFile{name: "x", link: "/etc"}, tarFile{name: "x/pwned", body: []byte("x")})
	host := serveImages(t, map[string]v1.Image{
		"bb:1":   ociImage(t, []string{"/bin/sh"}, bb),
		"evil:1": ociImage(t, []string{"/bin/sh"}, bb, evil),
	})
	id := strings.TrimSpace(e.image(iroot, "pull", host+"/bb:1").stdout)
	if !strings.HasPrefix(id, "sha256:") {
		t.Fatalf("pull printed %q", id)
	}
	var ims []struct {
		ID     string   `json:"id"`
		Names  []string `json:"names"`
		Layers []struct{ ChainID string }
	}
	if err := json.Unmarshal([]byte(e.image(iroot, "ls", "--format", "json").stdout), &ims); err != nil || len(ims) != 1 || ims[0].ID != id {
		t.Fatalf("ls --format json: %+v %v", ims, err)
	}
	if q := strings.TrimSpace(e.image(iroot, "ls", "-q").stdout); !strings.HasPrefix(id, "sha256:"+q) || len(q) != 12 {
		t.Errorf("ls -q: %q", q)
	}
	if r := e.image(iroot, "tag", host+"/bb:1", "example.com/bb:2"); r.code != 0 {
		t.Fatalf("tag: %s", r.stderr)
	}
	if out := e.image(iroot, "inspect", "example.com/bb:2").stdout; !strings.Contains(out, `"/bin/sh"`) {
		t.Errorf("inspect: %s", out)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"pull", host + "/bb:nosuchtag"}, "MANIFEST_UNKNOWN"},
		{[]string{"pull", host + "/evil:1"}, `entry "x/pwned": path goes through a symbolic link`},
		{[]string{"pull", "--platform", "linux/s390x", host + "/bb:1"}, "image is for linux/"},
		{[]string{"pull", "UPPER/case"}, "image reference"},
		{[]string{"rm", "nosuch"}, "no such image: nosuch"},
		{[]string{"import", "/nonexistent"}, "no such file"},
		{[]string{"ls", "--format", "yaml"}, "want json or table"},
	} {
		r := e.image(iroot, tc.args...)
		if r.code != 125 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("image %v: exit %d, stderr %q; want 125 and one line with %q", tc.args, r.code, r.stderr, tc.msg)
		}
	}
	// The failed pulls left nothing: one image, its one layer.
	if ents, _ := os.ReadDir(filepath.Join(iroot, "layers")); len(ents) != 1 {
		t.Errorf("%d layer directories, want 1", len(ents))
	}
	e.image(iroot, "rm", "example.com/bb:2")
	e.image(iroot, "rm", host+"/bb:1")
	if out := e.image(iroot, "ls", "-q").stdout; out != "" {
		t.Errorf("ls after rm: %q", out)
	}
	if out := e.image(iroot, "prune").stdout; !strings.HasPrefix(out, "removed ") {
		t.Errorf("prune: %q", out)
	}
	for _, d := range []string{"layers", "blobs/sha256", "tmp"} {
		if ents, _ := os.ReadDir(filepath.Join(iroot, d)); len(ents) != 0 {
			t.Errorf("%s not empty after rm and prune: %d", d, len(ents))
		}
	}
}

// benchImage is about 100 MB in 6 layers: busybox, then five layers of
// 20 MB in 40 files, half random bytes, half text.
func benchImage(tb testing.TB) v1.Image {
	tb.Helper()
	rng := rand.New(rand.NewSource(1))
	layers := []v1.Layer{busyboxLayer(tb)}
	for i := range 5 {
		var files []tarFile
		for j := range 40 {
			b := make([]byte, 512<<10)
			if j%2 == 0 {
				rng.Read(b)
			} else {
				line := []byte(fmt.Sprintf("layer %d file %d: the quick brown fox jumps over the lazy dog %d\n", i, j, rng.Int()))
				for k := 0; k < len(b); k += len(line) {
					copy(b[k:], line)
				}
			}
			files = append(files, tarFile{name: fmt.Sprintf("usr/share/l%d/f%02d", i, j), body: b})
		}
		layers = append(layers, layer(tb, files...))
	}
	return ociImage(tb, []string{"/bin/sh"}, layers...)
}

// slowBlobs serves blobs in 64 KiB pieces, 20 ms apart.
func slowBlobs(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/") {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		b := rec.Body.Bytes()
		for len(b) > 0 {
			n := min(len(b), 64<<10)
			if _, err := w.Write(b[:n]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			b = b[n:]
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// TestImagePullKilled kills podsb image pull mid-way: the store lists
// nothing, the next pull completes from what was verified, and afterwards
// every layer on disk belongs to the image.
func TestImagePullKilled(t *testing.T) {
	e := newEnv(t)
	iroot := t.TempDir()
	rng := rand.New(rand.NewSource(2))
	var layers []v1.Layer
	for i := range 4 {
		b := make([]byte, 1<<20)
		rng.Read(b)
		layers = append(layers, layer(t, tarFile{name: fmt.Sprintf("f%d", i), body: b}))
	}
	srv := httptest.NewServer(slowBlobs(registry.New(registry.Logger(log.New(io.Discard, "", 0)))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	r, _ := name.ParseReference(host + "/k:1")
	if err := remote.Write(r, ociImage(t, nil, layers...)); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(e.bin, "--image-root", iroot, "image", "pull", host+"/k:1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once a layer is being written.
	deadline := time.Now().Add(20 * time.Second)
	for {
		ents, _ := os.ReadDir(filepath.Join(iroot, "tmp"))
		if len(ents) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	cmd.Process.Kill()
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the pull was not killed mid-way: %v", err)
	}
	if out := e.image(iroot, "ls", "-q").stdout; out != "" {
		t.Fatalf("ls after a killed pull: %q", out)
	}
	id := strings.TrimSpace(e.image(iroot, "pull", "-q", host+"/k:1").stdout)
	var ims []struct {
		ID     string `json:"id"`
		Layers []struct {
			ChainID string `json:"chainID"`
		} `json:"layers"`
	}
	if err := json.Unmarshal([]byte(e.image(iroot, "ls", "--format", "json").stdout), &ims); err != nil || len(ims) != 1 || ims[0].ID != id {
		t.Fatalf("ls after the second pull: %+v %v", ims, err)
	}
	want := map[string]bool{}
	for _, l := range ims[0].Layers {
		want[strings.TrimPrefix(l.ChainID, "sha256:")] = true
	}
	ents, _ := os.ReadDir(filepath.Join(iroot, "layers"))
	if len(ents) != len(want) {
		t.Errorf("%d layer directories, want %d", len(ents), len(want))
	}
	for _, en := range ents {
		if !want[en.Name()] {
			t.Errorf("layer %s belongs to no image", en.Name())
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(iroot, "tmp")); len(ents) != 0 {
		t.Errorf("left in tmp/: %d", len(ents))
	}
}

// podsb image pull and import without podsb-image next to podsb or in
// PATH say how to build it, in one line, and exit 125; the commands that
// run in podsb itself (ls) work without it.
func TestImageWithoutHelperBinary(t *testing.T) {
	bin := podsbBinary(t)
	dir := t.TempDir()
	lone := filepath.Join(dir, "podsb")
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lone, b, 0o755); err != nil {
		t.Fatal(err)
	}
	iroot := filepath.Join(dir, "images")
	for _, args := range [][]string{{"pull", "127.0.0.1:1/x:1"}, {"import", dir}} {
		cmd := exec.Command(lone, append([]string{"--image-root", iroot, "image"}, args...)...)
		cmd.Env = append(os.Environ(), "PATH="+dir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 125 {
			t.Fatalf("podsb image %s without podsb-image: %v", args[0], err)
		}
		if msg := stderr.String(); strings.Count(msg, "\n") != 1 || !strings.Contains(msg, "needs the podsb-image binary") || !strings.Contains(msg, "make build") {
			t.Errorf("message: %q", msg)
		}
	}
	cmd := exec.Command(lone, "--image-root", iroot, "image", "ls", "-q")
	cmd.Env = append(os.Environ(), "PATH="+dir)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
		t.Errorf("podsb image ls without podsb-image: %q %v", out, err)
	}
}
