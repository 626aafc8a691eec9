package fetch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/podsb/podsb/image"
)

// store is the image store an add writes into.
type store struct{ *image.Store }

// source is where add reads an image's blobs: a registry or an archive.
type source struct {
	name   string
	blob   func(d v1.Hash) (io.ReadCloser, error)
	config func() ([]byte, error)
	remote bool // read errors are worth retrying
}

// fetchOptions are the knobs of add that PullOptions sets.
type fetchOptions struct {
	platform *v1.Platform // nil: any
	retries  int
	backoff  time.Duration
	jobs     int
	progress func(done, total int64)
}

var (
	manifestTypes = []types.MediaType{types.OCIManifestSchema1, types.DockerManifestSchema2}
	indexTypes    = []types.MediaType{types.OCIImageIndex, types.DockerManifestList}
	configTypes   = []types.MediaType{types.OCIConfigJSON, types.DockerConfigJSON}
	layerTypes    = []types.MediaType{types.OCILayer, types.OCILayerZStd, types.OCIUncompressedLayer,
		types.OCIRestrictedLayer, types.OCIUncompressedRestrictedLayer, types.DockerLayer, types.DockerUncompressedLayer}
)

// transientError is a read from a registry that broke off: worth a retry.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

func isTransient(err error) bool {
	var t *transientError
	return errors.As(err, &t)
}

// add stores the image whose manifest is raw (of digest mdigest) from src,
// named names, and returns it.
func (s store) add(ctx context.Context, src source, raw []byte, mdigest v1.Hash, names []string, o fetchOptions) (im image.Image, err error) {
	end, err := s.BeginAdd()
	if err != nil {
		return image.Image{}, err
	}
	// Collect what a failed add left, unless another pull is running (it
	// collects when it ends). Verified blobs stay after a network
	// failure, for the next pull to resume from.
	defer func() { end(err != nil && !isTransient(err)) }()
	if got := sha256Hex(raw); mdigest.Hex != got {
		return image.Image{}, newErr(ErrCorrupt, "manifest: digest mismatch: got sha256:%s, want %s", got, mdigest)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return image.Image{}, newErr(ErrCorrupt, "manifest: %w", err)
	}
	if m.MediaType != "" && !slices.Contains(manifestTypes, m.MediaType) {
		return image.Image{}, newErr(ErrUnsupported, "unknown manifest media type %q", m.MediaType)
	}
	if !slices.Contains(configTypes, m.Config.MediaType) {
		return image.Image{}, newErr(ErrUnsupported, "unknown config media type %q", m.Config.MediaType)
	}
	for _, l := range m.Layers {
		if !slices.Contains(layerTypes, l.MediaType) {
			return image.Image{}, newErr(ErrUnsupported, "layer %s: unknown media type %q", l.Digest, l.MediaType)
		}
	}
	rawConfig, err := src.config()
	if err != nil {
		return image.Image{}, s.readErr(src, "config", err)
	}
	if got := sha256Hex(rawConfig); got != m.Config.Digest.Hex || int64(len(rawConfig)) != m.Config.Size {
		return image.Image{}, newErr(ErrCorrupt, "config: digest mismatch: got sha256:%s, want %s", got, m.Config.Digest)
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(rawConfig))
	if err != nil {
		return image.Image{}, newErr(ErrCorrupt, "config: %w", err)
	}
	plat := v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
	if o.platform != nil && !plat.Satisfies(*o.platform) {
		return image.Image{}, newErr(ErrUnsupported, "image is for %s, not %s", platformString(plat), platformString(*o.platform))
	}
	if len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return image.Image{}, newErr(ErrCorrupt, "%d layers but %d diff IDs in the config", len(m.Layers), len(cf.RootFS.DiffIDs))
	}
	im = image.Image{
		ID: m.Config.Digest.String(), Digest: mdigest.String(), Platform: platformString(plat),
		Created: cf.Created.Time, Size: int64(len(raw)) + m.Config.Size,
	}
	var chain string
	var total int64
	for i, l := range m.Layers {
		d := cf.RootFS.DiffIDs[i].String()
		if chain == "" {
			chain = d
		} else {
			chain = "sha256:" + sha256Hex([]byte(chain+" "+d))
		}
		im.Layers = append(im.Layers, image.Layer{Digest: l.Digest.String(), DiffID: d, ChainID: chain, MediaType: string(l.MediaType), Size: l.Size})
		im.Size += l.Size
		total += l.Size
	}
	var done atomic.Int64
	progress := func(n int64) {
		if o.progress != nil {
			o.progress(done.Add(n), total)
		}
	}
	if err := s.PutBlob(m.Config.Digest.String(), rawConfig); err != nil {
		return image.Image{}, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(o.jobs, 1))
	for _, l := range im.Layers {
		g.Go(func() error { return s.fetchLayer(gctx, src, l, o, progress) })
	}
	if err := g.Wait(); err != nil {
		return image.Image{}, err
	}
	if err := s.PutBlob(mdigest.String(), raw); err != nil {
		return image.Image{}, err
	}
	return s.Commit(im, names)
}

func (s store) readErr(src source, what string, err error) error {
	if src.remote && !errors.Is(err, ErrInvalid) {
		return newErr(ErrRegistry, "%s: %w", what, err)
	}
	return newErr(ErrCorrupt, "%s: %w", what, err)
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// fetchLayer makes sure layer l's blob and unpacked directory are in the
// store. One process at a time works on one chain ID: a second pull of
// the same image waits, then finds the layer there.
func (s store) fetchLayer(ctx context.Context, src source, l image.Layer, o fetchOptions, progress func(int64)) error {
	unlock, err := s.LockLayer(l.ChainID)
	if err != nil {
		return err
	}
	defer unlock()
	blobP, layerP := s.BlobPath(l.Digest), s.LayerPath(l.ChainID)
	haveBlob, haveLayer := exists(blobP), exists(layerP)
	switch {
	case haveBlob && haveLayer:
		progress(l.Size)
		return nil
	case haveBlob:
		f, err := os.Open(blobP)
		if err != nil {
			return err
		}
		defer f.Close()
		progress(l.Size)
		return s.unpackLayer(f, l)
	}
	for attempt := 0; ; attempt++ {
		err := s.download(src, l, !haveLayer, progress)
		if err == nil || !isTransient(err) {
			return err
		}
		if attempt >= o.retries {
			return newErr(ErrRegistry, "layer %s: %w (after %d attempts)", l.Digest, err, attempt+1)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(o.backoff << attempt):
		}
	}
}

// countReader counts what it reads and keeps the first error of r.
type countReader struct {
	r        io.Reader
	n        int64
	err      error
	progress func(int64)
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.progress(int64(n))
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}

// download reads blob l once into a temporary file, unpacking it into a
// temporary directory on the way if unpack, verifies its digest and size,
// and renames both into place. A read that broke off before the blob's
// end is a transientError.
func (s store) download(src source, l image.Layer, unpack bool, progress func(int64)) (err error) {
	rc, err := src.blob(mustHash(l.Digest))
	if err != nil {
		if src.remote {
			return &transientError{fmt.Errorf("open blob: %w", err)}
		}
		return s.readErr(src, "layer "+l.Digest, err)
	}
	defer rc.Close()
	f, err := os.CreateTemp(s.TempDir(), "blob-*")
	if err != nil {
		return err
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	h := sha256.New()
	cr := &countReader{r: rc, progress: progress}
	tee := io.TeeReader(cr, io.MultiWriter(h, f))
	check := func(cause error) error {
		if cr.err != nil && cr.n < l.Size {
			if src.remote {
				return &transientError{cr.err}
			}
			return newErr(ErrCorrupt, "layer %s: %w", l.Digest, truncated(cr.err))
		}
		if _, err := io.Copy(io.Discard, tee); err != nil && !(cr.err != nil && cr.n >= l.Size) {
			if cr.err != nil && src.remote {
				return &transientError{cr.err}
			}
			return fmt.Errorf("layer %s: %w", l.Digest, err)
		}
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != l.Digest || cr.n != l.Size {
			return newErr(ErrCorrupt, "layer %s: digest mismatch: got %s, %d bytes (want %d)", l.Digest, got, cr.n, l.Size)
		}
		return cause
	}
	var dir string
	if unpack {
		dir, err = os.MkdirTemp(s.TempDir(), "layer-*")
		if err != nil {
			return err
		}
		defer func() {
			if dir != "" {
				os.RemoveAll(dir)
			}
		}()
		if uerr := unpackVerify(tee, dir, l); uerr != nil {
			return check(uerr)
		}
	}
	if err := check(nil); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("store blob %s: %w", l.Digest, err)
	}
	if err := os.Rename(f.Name(), s.BlobPath(l.Digest)); err != nil {
		return err
	}
	if unpack {
		if err := os.Rename(dir, s.LayerPath(l.ChainID)); err != nil {
			return err
		}
		dir = ""
	}
	return nil
}

// unpackLayer unpacks the stored blob r of l.
func (s store) unpackLayer(r io.Reader, l image.Layer) error {
	dir, err := os.MkdirTemp(s.TempDir(), "layer-*")
	if err != nil {
		return err
	}
	if err := unpackVerify(r, dir, l); err != nil {
		os.RemoveAll(dir)
		return err
	}
	if err := os.Rename(dir, s.LayerPath(l.ChainID)); err != nil {
		os.RemoveAll(dir)
		return err
	}
	return nil
}

// unpackVerify unpacks the (compressed) layer r into dir and checks the
// uncompressed stream's digest against l's diff ID.
func unpackVerify(r io.Reader, dir string, l image.Layer) error {
	z, closeZ, err := decompress(r)
	if err != nil {
		return fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	defer closeZ()
	h := sha256.New()
	t := io.TeeReader(z, h)
	if err := unpackTar(t, dir); err != nil {
		return fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	if _, err := io.Copy(io.Discard, t); err != nil {
		return newErr(ErrCorrupt, "layer %s: %w", l.Digest, truncated(err))
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != l.DiffID {
		return newErr(ErrCorrupt, "layer %s: diff ID mismatch: got %s, want %s", l.Digest, got, l.DiffID)
	}
	return nil
}

func mustHash(d string) v1.Hash {
	h, _ := v1.NewHash(d)
	return h
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func platformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}
