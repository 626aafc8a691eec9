package fetch

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/image"
)

// checkEmpty fails t unless the store holds no image, no layer, no blob.
func checkEmpty(t *testing.T, s *image.Store) {
	t.Helper()
	if ims, err := s.List(); err != nil || len(ims) != 0 {
		t.Errorf("List after a failed pull: %v %v", ims, err)
	}
	checkConsistent(t, s, true)
	for _, d := range []string{"layers", "blobs/sha256"} {
		if ents, _ := os.ReadDir(filepath.Join(s.Root(), d)); len(ents) != 0 {
			t.Errorf("%s not empty after a failed pull: %d entries", d, len(ents))
		}
	}
}

func oneLine(t *testing.T, err error) {
	t.Helper()
	t.Logf("error: %v", err)
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error of several lines: %q", err)
	}
}

func TestUnsafeEntries(t *testing.T) {
	outside := t.TempDir()
	for _, tc := range []struct {
		name string
		es   []entry
	}{
		{"dotdot", []entry{{name: "../../../../../../" + outside[1:] + "/dotdot", body: "x"}}},
		{"dotdot-inner", []entry{{name: "a/../../b", body: "x"}}},
		{"absolute", []entry{{name: outside + "/abs", body: "x"}}},
		{"symlink-absolute", []entry{{name: "link", typ: 'l', link: outside}, {name: "link/pwned", body: "x"}}},
		{"symlink-relative", []entry{{name: "up", typ: 'l', link: "../../../../../../../../" + outside[1:]}, {name: "up/pwned", body: "x"}}},
		{"hardlink-dotdot", []entry{{name: "hard", typ: 'h', link: "../../../../../../../../etc/hostname"}}},
		{"hardlink-absolute", []entry{{name: "hard", typ: 'h', link: "/etc/hostname"}}},
		{"hardlink-through-symlink", []entry{{name: "l", typ: 'l', link: "/etc"}, {name: "h", typ: 'h', link: "l/hostname"}}},
		{"whiteout-through-symlink", []entry{{name: "l", typ: 'l', link: outside}, {name: "l/.wh.x"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openTestStore(t)
			host := newRegistry(t, nil)
			push(t, host+"/evil:1", buildImage(t, "", layerOf(t, tarBytes(t, tc.es...), compression.GZip)))
			_, err := Pull(context.Background(), s, host+"/evil:1", fast)
			if !errors.Is(err, ErrUnsafe) {
				t.Fatalf("pull: %v, want ErrUnsafe", err)
			}
			oneLine(t, err)
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Errorf("written outside the layer: %v", ents)
			}
			checkEmpty(t, s)
		})
	}
}

// corrupt flips a byte of the blob d's body.
func corrupt(d string) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if blobDigest(r) != d {
				h.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			b := rec.Body.Bytes()
			b[len(b)/2] ^= 0xff
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(b)
		})
	}
}

func TestCorruptBlob(t *testing.T) {
	s := openTestStore(t)
	l := layerOf(t, tarBytes(t, entry{name: "f", body: strings.Repeat("data", 5000)}), compression.GZip)
	d, _ := l.Digest()
	host := newRegistry(t, corrupt(d.String()))
	push(t, host+"/c:1", buildImage(t, "", l))
	_, err := Pull(context.Background(), s, host+"/c:1", fast)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "digest mismatch") {
		t.Fatalf("pull: %v, want ErrCorrupt digest mismatch", err)
	}
	oneLine(t, err)
	checkEmpty(t, s)
}

func TestTruncatedTar(t *testing.T) {
	s := openTestStore(t)
	b := tarBytes(t, entry{name: "f", body: strings.Repeat("data", 5000)}, entry{name: "g", body: "g"})
	host := newRegistry(t, nil)
	push(t, host+"/t:1", buildImage(t, "", layerOf(t, b[:3000], compression.GZip)))
	_, err := Pull(context.Background(), s, host+"/t:1", fast)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("pull: %v, want ErrCorrupt truncated", err)
	}
	oneLine(t, err)
	checkEmpty(t, s)
}

func TestOtherPlatformOnly(t *testing.T) {
	s := openTestStore(t)
	host := newRegistry(t, nil)
	img := buildImage(t, "arm64", layerOf(t, tarBytes(t, entry{name: "f", body: "x"}), compression.GZip))
	if ParsePlatformMust(t, "").Architecture == "arm64" {
		t.Skip("the test's other platform is this one")
	}
	push(t, host+"/p:img", img)
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img,
		Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	r, _ := name.ParseReference(host + "/p:idx")
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"img", "idx"} {
		_, err := Pull(context.Background(), s, host+"/p:"+tag, fast)
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "linux/arm64") {
			t.Errorf("pull %s: %v, want ErrUnsupported", tag, err)
		} else {
			oneLine(t, err)
		}
		checkEmpty(t, s)
	}
	// Asked for, the other platform is pulled.
	if _, err := Pull(context.Background(), s, host+"/p:idx", PullOptions{Platform: "linux/arm64"}); err != nil {
		t.Errorf("pull --platform linux/arm64: %v", err)
	}
	if _, err := Pull(context.Background(), s, host+"/p:idx", PullOptions{Platform: "linux"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("pull --platform linux: %v, want ErrInvalid", err)
	}
}

func ParsePlatformMust(t *testing.T, s string) *v1.Platform {
	p, err := ParsePlatform(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUnknownMediaType(t *testing.T) {
	s := openTestStore(t)
	host := newRegistry(t, nil)
	base := buildImage(t, "")
	img, err := mutate.Append(base, mutate.Addendum{Layer: layerOf(t, tarBytes(t, entry{name: "f", body: "x"}), compression.GZip),
		MediaType: "application/vnd.example.strange.v1"})
	if err != nil {
		t.Fatal(err)
	}
	push(t, host+"/m:1", img)
	_, err = Pull(context.Background(), s, host+"/m:1", fast)
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "application/vnd.example.strange.v1") {
		t.Fatalf("pull: %v, want ErrUnsupported", err)
	}
	oneLine(t, err)
	checkEmpty(t, s)
}

// breakOff cuts the blob d's responses short (after half) while on.
func breakOff(d string, on *atomic.Bool) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !on.Load() || blobDigest(r) != d {
				h.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes()[:rec.Body.Len()/2])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		})
	}
}

func TestRegistryGoesAwayMidPull(t *testing.T) {
	s := openTestStore(t)
	noise := make([]byte, 2<<20)
	rand.Read(noise)
	big := layerOf(t, tarBytes(t, entry{name: "big", body: string(noise)}), compression.GZip)
	small := layerOf(t, tarBytes(t, entry{name: "small", body: "s"}), compression.GZip)
	bd, _ := big.Digest()
	sd, _ := small.Digest()
	var broken atomic.Bool
	var mu sync.Mutex
	gets := map[string]int{}
	host := newRegistry(t, func(h http.Handler) http.Handler { return countBlobs(&mu, gets)(breakOff(bd.String(), &broken)(h)) })
	push(t, host+"/g:1", buildImage(t, "", small, big))
	broken.Store(true)
	clear(gets)
	_, err := Pull(context.Background(), s, host+"/g:1", fast)
	if !errors.Is(err, ErrRegistry) || !strings.Contains(err.Error(), "attempts") {
		t.Fatalf("pull: %v, want ErrRegistry after retries", err)
	}
	oneLine(t, err)
	if gets[bd.String()] < 2 {
		t.Errorf("big layer fetched %d times: no retry", gets[bd.String()])
	}
	if ims, _ := s.List(); len(ims) != 0 {
		t.Errorf("images after a failed pull: %v", ims)
	}
	checkConsistent(t, s, false) // the verified blobs stay, to resume from
	if !exists(s.BlobPath(sd.String())) {
		t.Fatal("the small layer's verified blob is gone: nothing to resume from")
	}
	broken.Store(false)
	clear(gets)
	pull(t, s, host+"/g:1")
	if gets[sd.String()] != 0 || gets[bd.String()] != 1 {
		t.Errorf("resumed pull fetched small %d, big %d times (want 0, 1)", gets[sd.String()], gets[bd.String()])
	}
	checkConsistent(t, s, true)
}

func TestDiskFullDuringPull(t *testing.T) {
	openTestStore(t) // root only
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m,mode=0711"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	s, err := image.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	noise := make([]byte, 3<<20)
	rand.Read(noise)
	host := newRegistry(t, nil)
	push(t, host+"/big:1", buildImage(t, "", layerOf(t, tarBytes(t, entry{name: "big", body: string(noise)}), compression.GZip)))
	_, err = Pull(context.Background(), s, host+"/big:1", fast)
	if !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("pull: %v, want ENOSPC", err)
	}
	oneLine(t, err)
	checkEmpty(t, s)
	// The space is back: a small image pulls.
	push(t, host+"/small:1", buildImage(t, "", layerOf(t, tarBytes(t, entry{name: "f", body: "x"}), compression.GZip)))
	pull(t, s, host+"/small:1")
	checkConsistent(t, s, true)
	_ = bytes.MinRead
}
