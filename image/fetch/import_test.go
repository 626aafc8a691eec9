package fetch

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// tarDir writes the files below dir into a tar at out.
func tarDir(t *testing.T, dir, out string) {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	err = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h, _ := tar.FileInfoHeader(fi, "")
		h.Name = rel
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			src, err := os.Open(p)
			if err != nil {
				return err
			}
			defer src.Close()
			_, err = io.Copy(tw, src)
			return err
		}
		return nil
	})
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
}

func TestImport(t *testing.T) {
	img := buildImage(t, "", layerOf(t, tarBytes(t, entry{name: "etc/", typ: 'd'}, entry{name: "etc/hello", body: "hi"}), compression.GZip),
		layerOf(t, tarBytes(t, entry{name: "etc/.wh.hello"}), compression.ZStd))
	id, _ := img.ConfigName()
	dir := t.TempDir()

	docker := filepath.Join(dir, "docker.tar")
	tag, _ := name.NewTag("example.com/imp/docker:1")
	if err := tarball.WriteToFile(docker, tag, img); err != nil {
		t.Fatal(err)
	}
	lay := filepath.Join(dir, "layout")
	lp, err := layout.Write(lay, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "example.com/imp/oci:2"})); err != nil {
		t.Fatal(err)
	}
	ociTar := filepath.Join(dir, "oci.tar")
	tarDir(t, lay, ociTar)

	for _, tc := range []struct{ kind, path, name string }{
		{"docker-archive", docker, "example.com/imp/docker:1"},
		{"oci-layout", lay, "example.com/imp/oci:2"},
		{"oci-archive", ociTar, "example.com/imp/oci:2"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			s := openTestStore(t)
			ims, err := Import(context.Background(), s, tc.path)
			if err != nil {
				t.Fatal(err)
			}
			if len(ims) != 1 || ims[0].ID != id.String() || len(ims[0].Layers) != 2 {
				t.Fatalf("imported %+v", ims)
			}
			m, err := s.Acquire(tc.name, "t")
			if err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(filepath.Join(m.Layers[0], "etc/hello")); err != nil || string(b) != "hi" {
				t.Errorf("etc/hello: %q %v", b, err)
			}
			s.Release(m.ID, "t")
			checkConsistent(t, s, true)
		})
	}

	t.Run("truncated", func(t *testing.T) {
		s := openTestStore(t)
		b, err := os.ReadFile(docker)
		if err != nil {
			t.Fatal(err)
		}
		cut := filepath.Join(t.TempDir(), "cut.tar")
		os.WriteFile(cut, b[:len(b)*2/3], 0o600)
		_, err = Import(context.Background(), s, cut)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("import of a truncated archive: %v, want ErrCorrupt", err)
		}
		oneLine(t, err)
		checkEmpty(t, s)
	})
	t.Run("not-an-archive", func(t *testing.T) {
		s := openTestStore(t)
		p := filepath.Join(t.TempDir(), "x.tar")
		os.WriteFile(p, tarBytes(t, entry{name: "x", body: "x"}), 0o600)
		_, err := Import(context.Background(), s, p)
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "not a docker-archive") {
			t.Fatalf("import: %v", err)
		}
		if _, err := Import(context.Background(), s, filepath.Join(t.TempDir(), "missing")); !errors.Is(err, ErrInvalid) {
			t.Fatalf("import of a missing file: %v", err)
		}
		checkEmpty(t, s)
	})
}
