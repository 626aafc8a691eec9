package cri

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
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
	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// testImage is a one-layer image with a file, /hello, and user 1000.
func testImage(t *testing.T) v1.Image {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "hello", Mode: 0o644, Size: 3, Typeflag: tar.TypeReg})
	tw.Write([]byte("hi\n"))
	tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.User = "1000"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// testRegistry serves a registry on loopback; with user set, only to
// requests that log in as user:pass.
func testRegistry(t *testing.T, user, pass string) string {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if user != "" {
		inner := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			inner.ServeHTTP(w, r)
		})
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func pushImage(t *testing.T, ref string, img v1.Image, opts ...remote.Option) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, opts...); err != nil {
		t.Fatal(err)
	}
}

func TestImages(t *testing.T) {
	ts := newTestServer(t)
	ctx := context.Background()
	reg := testRegistry(t, "", "")
	ref := reg + "/test/hello:v1"
	pushImage(t, ref, testImage(t))

	pr, err := ts.im.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(pr.ImageRef, "sha256:") {
		t.Errorf("image ref %q", pr.ImageRef)
	}
	lr, err := ts.im.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil || len(lr.Images) != 1 {
		t.Fatalf("ListImages: %v %v", lr, err)
	}
	im := lr.Images[0]
	if im.Id != pr.ImageRef || len(im.RepoTags) != 1 || im.RepoTags[0] != ref || len(im.RepoDigests) != 1 ||
		!strings.HasPrefix(im.RepoDigests[0], reg+"/test/hello@sha256:") || im.Size == 0 {
		t.Errorf("image %v", im)
	}
	// By every kind of reference, the repo digest it reports among them.
	for _, r := range []string{ref, pr.ImageRef, pr.ImageRef[7:19], im.RepoDigests[0]} {
		sr, err := ts.im.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: r}, Verbose: true})
		if err != nil || sr.Image.GetId() != pr.ImageRef || sr.Image.GetUid().GetValue() != 1000 || sr.Info["info"] == "" {
			t.Errorf("ImageStatus %s: %v %v", r, sr, err)
		}
	}
	// An image not in the store: no error, no image.
	sr, err := ts.im.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: reg + "/nosuch:v1"}})
	if err != nil || sr.Image != nil {
		t.Errorf("ImageStatus of missing: %v %v", sr, err)
	}
	fr, err := ts.im.ImageFsInfo(ctx, &runtimeapi.ImageFsInfoRequest{})
	if err != nil || len(fr.ImageFilesystems) != 1 || fr.ImageFilesystems[0].UsedBytes.GetValue() == 0 || fr.ImageFilesystems[0].FsId.GetMountpoint() != ts.opts.ImageRoot {
		t.Errorf("ImageFsInfo: %v %v", fr, err)
	}
	if _, err := ts.im.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: pr.ImageRef}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.im.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: pr.ImageRef}}); err != nil {
		t.Errorf("second RemoveImage: %v", err)
	}
	if lr, _ := ts.im.ListImages(ctx, &runtimeapi.ListImagesRequest{}); len(lr.GetImages()) != 0 {
		t.Errorf("left: %v", lr.Images)
	}

	// Bad input.
	_, err = ts.im.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{}})
	wantCode(t, "pull of nothing", err, codes.InvalidArgument)
	_, err = ts.im.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "UPPER/case"}})
	wantCode(t, "pull of a bad reference", err, codes.InvalidArgument)
	_, err = ts.im.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}, Auth: &runtimeapi.AuthConfig{Auth: "%%%"}})
	wantCode(t, "pull with bad auth", err, codes.InvalidArgument)
}

// PullImage logs in with the request's credentials.
func TestPullImageAuth(t *testing.T) {
	ts := newTestServer(t)
	ctx := context.Background()
	reg := testRegistry(t, "kube", "s3cret")
	ref := reg + "/private/hello:v1"
	pushImage(t, ref, testImage(t), remote.WithAuth(&basic{"kube", "s3cret"}))

	_, err := ts.im.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err == nil {
		t.Fatal("pulled without credentials")
	}
	_, err = ts.im.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref},
		Auth: &runtimeapi.AuthConfig{Username: "kube", Password: "wrong"}})
	if err == nil {
		t.Fatal("pulled with a wrong password")
	}
	pr, err := ts.im.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref},
		Auth: &runtimeapi.AuthConfig{Username: "kube", Password: "s3cret"}})
	if err != nil {
		t.Fatalf("pull with credentials: %v", err)
	}
	if _, err := ts.im.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: pr.ImageRef}}); err != nil {
		t.Fatal(err)
	}
}

// A pull whose deadline passes, or whose client goes, while the registry
// is answering fails with DeadlineExceeded or Canceled, not as the
// registry's fault (critest's "should timeout if requested").
func TestPullImageDeadline(t *testing.T) {
	ts := newTestServer(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // a registry slower than the caller's deadline
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	ref := strings.TrimPrefix(srv.URL, "http://") + "/test/slow:v1"

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := ts.im.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	wantCode(t, "pull past its deadline", err, codes.DeadlineExceeded)

	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = ts.im.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	wantCode(t, "pull cancelled", err, codes.Canceled)
}
