package fetch

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/podsb/podsb/image"
)

func writeConf(t *testing.T, text string) *Registries {
	t.Helper()
	p := filepath.Join(t.TempDir(), "registries.conf")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := LoadRegistries(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestEndpoints(t *testing.T) {
	r := writeConf(t, `
unqualified-search-registries = ["docker.io"]
[[registry]]
prefix = "registry.k8s.io"
[[registry.mirror]]
location = "127.0.0.1:5000/k8s"
insecure = true
[[registry]]
prefix = "gcr.io/k8s-staging-cri-tools"
location = "gcr.example.net/cri"
insecure = true
[[registry]]
prefix = "blocked.example.com"
blocked = true
`)
	for _, tc := range []struct {
		repo string
		want []endpoint
	}{
		{"registry.k8s.io/pause", []endpoint{{"127.0.0.1:5000/k8s/pause", true}, {"registry.k8s.io/pause", false}}},
		{"gcr.io/k8s-staging-cri-tools/test-image-latest", []endpoint{{"gcr.example.net/cri/test-image-latest", true}}},
		{"gcr.io/other/x", []endpoint{{"gcr.io/other/x", false}}},
		{"registry.k8s.io.evil.com/x", []endpoint{{"registry.k8s.io.evil.com/x", false}}},
	} {
		got, err := r.endpoints(tc.repo)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("endpoints(%s) = %v %v, want %v", tc.repo, got, err, tc.want)
		}
	}
	if _, err := r.endpoints("blocked.example.com/x"); !errors.Is(err, ErrInvalid) {
		t.Errorf("blocked: %v", err)
	}
	var none *Registries
	if got, _ := none.endpoints("docker.io/library/x"); len(got) != 1 {
		t.Errorf("no config: %v", got)
	}
	p := filepath.Join(t.TempDir(), "bad.conf")
	os.WriteFile(p, []byte("[[registry]\n"), 0o600)
	if _, err := LoadRegistries(p); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad TOML: %v", err)
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                   "docker.io/library/busybox:latest",
		"docker.io/library/a:1":     "docker.io/library/a:1",
		"index.docker.io/x/y":       "docker.io/x/y:latest",
		"127.0.0.1:5000/a/b:c":      "127.0.0.1:5000/a/b:c",
		"registry.k8s.io/pause:3.9": "registry.k8s.io/pause:3.9",
	} {
		if got, _, err := normalize(in); err != nil || got != want {
			t.Errorf("normalize(%q) = %q %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "UPPER/case", "a:b:c:d", "x@sha256:12"} {
		if _, _, err := normalize(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("normalize(%q): %v, want ErrInvalid", bad, err)
		}
	}
}

// TestNormalizeAgrees checks that the store's own reading of references
// (image.Normalize, without go-containerregistry) names what Pull stores.
func TestNormalizeAgrees(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	for _, in := range []string{"busybox", "busybox:1.36", "library/busybox", "docker.io/busybox", "index.docker.io/x/y",
		"docker.io/library/a:1", "127.0.0.1:5000/a/b:c", "localhost/a", "localhost:5000/a:b", "registry.k8s.io/pause:3.9",
		"quay.io/a/b/c:v1.2-x_y", "a.b/c@" + d, "busybox@" + d, "busybox:1@" + d, "x:" + strings.Repeat("t", 128),
		"", "UPPER/case", "a:b:c:d", "x@sha256:12", "x@md5:" + strings.Repeat("a", 32), "a//b", "/a", "a:", ":a", "x:" + strings.Repeat("t", 129),
		"a b", "host:port/x", "[::1]:5000/a", "a@" + d + "@" + d} {
		want, _, werr := normalize(in)
		got, gerr := image.Normalize(in)
		if got != want || (gerr == nil) != (werr == nil) {
			t.Errorf("%q: image.Normalize = %q %v; go-containerregistry: %q %v", in, got, gerr, want, werr)
		}
		if gerr != nil && !errors.Is(gerr, ErrInvalid) {
			t.Errorf("%q: %v, want ErrInvalid", in, gerr)
		}
	}
}

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{"a/b": "a/b", "./a/": "a", "a/../b": "b", ".": "."} {
		if got, err := cleanName(in); err != nil || got != want {
			t.Errorf("cleanName(%q) = %q %v", in, got, err)
		}
	}
	for _, bad := range []string{"/etc/passwd", "..", "../x", "a/../../x"} {
		if _, err := cleanName(bad); !errors.Is(err, ErrUnsafe) {
			t.Errorf("cleanName(%q): %v, want ErrUnsafe", bad, err)
		}
	}
}

type okTransport struct{}

func (okTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
}

func TestPlainHTTPOnlyToLoopbackAndInsecure(t *testing.T) {
	g := &guard{base: okTransport{}, allow: "mirror.example:5000"}
	for url, ok := range map[string]bool{
		"http://10.1.2.3:5000/v2/":       false, // go-containerregistry would allow it
		"http://registry.local/v2/":      false,
		"http://127.0.0.1:5000/v2/":      true,
		"http://localhost:5000/v2/":      true,
		"http://[::1]:5000/v2/":          true,
		"http://mirror.example:5000/v2/": true,
		"https://10.1.2.3:5000/v2/":      true,
	} {
		req, _ := http.NewRequest("GET", url, nil)
		_, err := g.RoundTrip(req)
		if (err == nil) != ok {
			t.Errorf("%s: %v", url, err)
		}
	}
}

func TestPullThroughMirror(t *testing.T) {
	s := openTestStore(t)
	host := newRegistry(t, nil)
	img := buildImage(t, "", layerOf(t, tarBytes(t, entry{name: "pause", body: "p"}), compression.GZip))
	push(t, host+"/k8s/pause:3.9", img)
	// The first mirror is down: the second serves.
	opts := fast
	opts.Registries = writeConf(t, `
[[registry]]
prefix = "registry.k8s.io"
[[registry.mirror]]
location = "127.0.0.1:1/k8s"
[[registry.mirror]]
location = "`+host+`/k8s"
insecure = true
`)
	im, err := Pull(context.Background(), s, "registry.k8s.io/pause:3.9", opts)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(im.Names, []string{"registry.k8s.io/pause:3.9"}) {
		t.Errorf("names %v", im.Names)
	}
	if _, err := s.Inspect("registry.k8s.io/pause:3.9"); err != nil {
		t.Error(err)
	}
	checkConsistent(t, s, true)
}

func TestAuthFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "auth.json")
	os.WriteFile(p, []byte(`{"auths": {"reg.example:5000": {"auth": "dXNlcjpwYXNz"}, "https://index.docker.io/v1/": {"username": "u", "password": "p"}}}`), 0o600)
	for reg, user := range map[string]string{"reg.example:5000": "user", "index.docker.io": "u", "other.example": ""} {
		r, _ := name.NewRegistry(reg)
		a, err := authFile(p).Resolve(r)
		if err != nil {
			t.Fatal(err)
		}
		c, err := a.Authorization()
		if err != nil {
			t.Fatal(err)
		}
		if c.Username != user && !(user == "user" && c.Auth == "dXNlcjpwYXNz") {
			t.Errorf("%s: %+v", reg, c)
		}
	}
}

func TestPullByDigest(t *testing.T) {
	s := openTestStore(t)
	host := newRegistry(t, nil)
	img := buildImage(t, "", layerOf(t, tarBytes(t, entry{name: "f", body: "x"}), compression.GZip))
	push(t, host+"/d:1", img)
	d, _ := img.Digest()
	ref := host + "/d@" + d.String()
	im, err := Pull(context.Background(), s, ref, fast)
	if err != nil {
		t.Fatal(err)
	}
	if im.Digest != d.String() || !slices.Equal(im.Names, []string{ref}) {
		t.Errorf("pulled %+v", im)
	}
	if got, err := s.Inspect(d.String()); err != nil || got.ID != im.ID {
		t.Errorf("Inspect by manifest digest: %v", err)
	}
	if got, err := s.Inspect(im.ID[len("sha256:") : len("sha256:")+6]); err != nil || got.ID != im.ID {
		t.Errorf("Inspect by short ID: %v", err)
	}
}

// A pull whose deadline passes at a mirror stops there, with the
// deadline's error: no other mirror could meet it.
func TestPullMirrorDeadline(t *testing.T) {
	s := openTestStore(t)
	var second atomic.Int32
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(slow.Close)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		second.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(other.Close)
	opts := fast
	opts.Registries = writeConf(t, `
[[registry]]
prefix = "registry.k8s.io"
[[registry.mirror]]
location = "`+strings.TrimPrefix(slow.URL, "http://")+`/k8s"
insecure = true
[[registry.mirror]]
location = "`+strings.TrimPrefix(other.URL, "http://")+`/k8s"
insecure = true
`)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := Pull(ctx, s, "registry.k8s.io/pause:3.9", opts)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("pull: %v, want the deadline's error", err)
	}
	if n := second.Load(); n != 0 {
		t.Errorf("the next mirror was asked %d times after the deadline", n)
	}
	checkConsistent(t, s, true)
}
