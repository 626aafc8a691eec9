package fetch

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/podsb/podsb/image"
)

// Import stores in s the images of p: a docker-archive tar (as `docker save`
// writes it), an oci-archive tar, or an OCI layout directory. Images are
// named by the archive's tags (docker-archive: RepoTags; OCI: the
// annotation io.containerd.image.name, or org.opencontainers.image.ref.name
// when it is a full reference). From an index, the image for the running
// platform is taken.
func Import(ctx context.Context, s *image.Store, p string) ([]image.Image, error) {
	return store{s}.importPath(ctx, p)
}

func (s store) importPath(ctx context.Context, p string) ([]image.Image, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, newErr(ErrInvalid, "import %s: %w", p, err)
	}
	if fi.IsDir() {
		return s.importLayout(ctx, p)
	}
	kind, err := archiveKind(p)
	if err != nil {
		return nil, err
	}
	switch kind {
	case "docker":
		return s.importDocker(ctx, p)
	case "oci":
		tmp, err := os.MkdirTemp(s.TempDir(), "import-*")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		err = unpackTar(f, tmp)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("import %s: %w", p, err)
		}
		return s.importLayout(ctx, tmp)
	}
	return nil, newErr(ErrUnsupported, "import %s: not a docker-archive, an oci-archive or an OCI layout", p)
}

// archiveKind says what tar p holds: "docker" (manifest.json), "oci"
// (oci-layout) or "".
func archiveKind(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", newErr(ErrInvalid, "import %s: %w", p, err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	kind := ""
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return kind, nil
		}
		if err != nil {
			return "", newErr(ErrCorrupt, "import %s: read tar: %w", p, truncated(err))
		}
		switch path.Clean(hdr.Name) {
		case "manifest.json":
			kind = "docker"
		case "oci-layout":
			if kind == "" {
				kind = "oci"
			}
		}
	}
}

func (s store) importDocker(ctx context.Context, p string) ([]image.Image, error) {
	opener := func() (io.ReadCloser, error) { return os.Open(p) }
	m, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, newErr(ErrCorrupt, "import %s: %w", p, err)
	}
	var out []image.Image
	for i, d := range m {
		var names []string
		var tag *name.Tag
		for _, t := range d.RepoTags {
			norm, r, err := normalize(t)
			if err != nil {
				return out, fmt.Errorf("import %s: %w", p, err)
			}
			names = append(names, norm)
			if tt, ok := r.(name.Tag); ok && tag == nil {
				tag = &tt
			}
		}
		if tag == nil && len(m) > 1 {
			return out, newErr(ErrUnsupported, "import %s: image %d of %d has no tag to select it by", p, i+1, len(m))
		}
		img, err := tarball.Image(opener, tag)
		if err != nil {
			return out, newErr(ErrCorrupt, "import %s: %w", p, err)
		}
		im, err := s.addImage(ctx, p, img, names)
		if err != nil {
			return out, err
		}
		out = append(out, im)
	}
	return out, nil
}

// addImage stores img, read from an archive.
func (s store) addImage(ctx context.Context, where string, img v1.Image, names []string) (image.Image, error) {
	raw, err := img.RawManifest()
	if err != nil {
		return image.Image{}, newErr(ErrCorrupt, "import %s: manifest: %w", where, err)
	}
	d, err := img.Digest()
	if err != nil {
		return image.Image{}, newErr(ErrCorrupt, "import %s: %w", where, err)
	}
	src := source{
		name:   where,
		config: img.RawConfigFile,
		blob: func(h v1.Hash) (io.ReadCloser, error) {
			l, err := img.LayerByDigest(h)
			if err != nil {
				return nil, err
			}
			return l.Compressed()
		},
	}
	o := (&PullOptions{}).fetch(nil)
	im, err := s.add(ctx, src, raw, d, names, o)
	if err != nil {
		return image.Image{}, fmt.Errorf("import %s: %w", where, err)
	}
	return im, nil
}

func (s store) importLayout(ctx context.Context, dir string) ([]image.Image, error) {
	lp, err := layout.FromPath(dir)
	if err != nil {
		return nil, newErr(ErrUnsupported, "import %s: not an OCI layout: %w", dir, err)
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		return nil, newErr(ErrCorrupt, "import %s: %w", dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, newErr(ErrCorrupt, "import %s: index.json: %w", dir, err)
	}
	plat, _ := ParsePlatform("")
	var out []image.Image
	for _, d := range im.Manifests {
		var names []string
		n := d.Annotations["io.containerd.image.name"]
		if n == "" && strings.ContainsAny(d.Annotations["org.opencontainers.image.ref.name"], "/:") {
			n = d.Annotations["org.opencontainers.image.ref.name"]
		}
		if n != "" {
			norm, _, err := normalize(n)
			if err != nil {
				return out, fmt.Errorf("import %s: %w", dir, err)
			}
			names = append(names, norm)
		}
		var img v1.Image
		switch {
		case d.MediaType.IsImage():
			img, err = idx.Image(d.Digest)
		case d.MediaType.IsIndex():
			var sub v1.ImageIndex
			var sm *v1.IndexManifest
			if sub, err = idx.ImageIndex(d.Digest); err == nil {
				sm, err = sub.IndexManifest()
			}
			if err != nil {
				return out, newErr(ErrCorrupt, "import %s: %w", dir, err)
			}
			var pick *v1.Hash
			for _, c := range sm.Manifests {
				if c.Platform != nil && c.Platform.Satisfies(*plat) && c.MediaType.IsImage() {
					pick = &c.Digest
					break
				}
			}
			if pick == nil {
				return out, newErr(ErrUnsupported, "import %s: no image for %s", dir, platformString(*plat))
			}
			img, err = sub.Image(*pick)
		default:
			return out, newErr(ErrUnsupported, "import %s: unknown media type %q", dir, d.MediaType)
		}
		if err != nil {
			return out, newErr(ErrCorrupt, "import %s: %w", dir, err)
		}
		one, err := s.addImage(ctx, dir, img, names)
		if err != nil {
			return out, err
		}
		out = append(out, one)
	}
	return out, nil
}
