package fetch

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/podsb/podsb/image"
	"github.com/podsb/podsb/internal/testenv"
)

// entry is one tar entry of a test layer. typ: 'f' file, 'd' dir, 'l'
// symlink, 'h' hard link, 'c' char device.
type entry struct {
	name string
	typ  byte
	body string
	link string
	mode int64
}

func tarBytes(t testing.TB, es ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Mode: e.mode, Linkname: e.link, ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		switch e.typ {
		case 'd':
			h.Typeflag = tar.TypeDir
			if e.mode == 0 {
				h.Mode = 0o755
			}
		case 'l':
			h.Typeflag = tar.TypeSymlink
		case 'h':
			h.Typeflag = tar.TypeLink
		case 'c':
			h.Typeflag = tar.TypeChar
		default:
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// layerOf makes a layer of the tar b, compressed with comp (gzip or zstd).
func layerOf(t testing.TB, b []byte, comp compression.Compression) v1.Layer {
	t.Helper()
	mt := types.OCILayer
	if comp == compression.ZStd {
		mt = types.OCILayerZStd
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithCompression(comp), tarball.WithMediaType(mt))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// buildImage makes an OCI image of layers for linux/arch (runtime's if "").
func buildImage(t testing.TB, arch string, layers ...v1.Layer) v1.Image {
	t.Helper()
	if arch == "" {
		arch = runtime.GOARCH
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Config.Cmd = []string{"/bin/sh"}
	cf.Config.Env = []string{"PATH=/bin"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// newRegistry serves an in-process registry on 127.0.0.1, through wrap if
// not nil, and returns its host:port.
func newRegistry(t testing.TB, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func push(t testing.TB, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}

// openTestStore opens a store in a fresh temporary directory (root only).
func openTestStore(t testing.TB) *image.Store {
	t.Helper()
	testenv.RequireRoot(t)
	s, err := image.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var fast = PullOptions{Retries: 2, Backoff: time.Millisecond}

func pull(t testing.TB, s *image.Store, ref string) image.Image {
	t.Helper()
	im, err := Pull(context.Background(), s, ref, fast)
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// checkConsistent fails t unless the index and the disk agree: every
// layer and blob the index names exists, no layer directory is
// unreferenced, and nothing is left in tmp/. blobs: no blob is
// unreferenced either.
func checkConsistent(t testing.TB, s *image.Store, blobs bool) {
	t.Helper()
	var ix struct{ Images []image.Image }
	if b, err := os.ReadFile(filepath.Join(s.Root(), "images.json")); err == nil {
		if err := json.Unmarshal(b, &ix); err != nil {
			t.Fatal(err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	refL, refB := map[string]bool{}, map[string]bool{}
	for _, im := range ix.Images {
		refB[strings.TrimPrefix(im.ID, "sha256:")] = true
		refB[strings.TrimPrefix(im.Digest, "sha256:")] = true
		for _, l := range im.Layers {
			refL[strings.TrimPrefix(l.ChainID, "sha256:")] = true
			refB[strings.TrimPrefix(l.Digest, "sha256:")] = true
		}
	}
	for h := range refL {
		if _, err := os.Stat(filepath.Join(s.Root(), "layers", h)); err != nil {
			t.Errorf("layer %s in the index: %v", h, err)
		}
	}
	for h := range refB {
		if _, err := os.Stat(filepath.Join(s.Root(), "blobs", "sha256", h)); err != nil {
			t.Errorf("blob %s in the index: %v", h, err)
		}
	}
	ls := func(d string) []string {
		ents, err := os.ReadDir(filepath.Join(s.Root(), d))
		if err != nil {
			t.Fatal(err)
		}
		var n []string
		for _, e := range ents {
			n = append(n, e.Name())
		}
		return n
	}
	for _, h := range ls("layers") {
		if !refL[h] {
			t.Errorf("layer %s is in no image", h)
		}
	}
	if blobs {
		for _, h := range ls("blobs/sha256") {
			if !refB[h] {
				t.Errorf("blob %s is in no image", h)
			}
		}
	}
	if n := ls("tmp"); len(n) > 0 {
		t.Errorf("left in tmp/: %v", n)
	}
}

// blobDigest returns the digest of a blob GET's path, or "".
func blobDigest(r *http.Request) string {
	if r.Method != http.MethodGet {
		return ""
	}
	i := strings.LastIndex(r.URL.Path, "/blobs/")
	if i < 0 {
		return ""
	}
	return r.URL.Path[i+len("/blobs/"):]
}

// countBlobs counts blob GETs by digest.
func countBlobs(mu *sync.Mutex, gets map[string]int) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if d := blobDigest(r); d != "" {
				mu.Lock()
				gets[d]++
				mu.Unlock()
			}
			h.ServeHTTP(w, r)
		})
	}
}
