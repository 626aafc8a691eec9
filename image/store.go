package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/rootfs"
)

// DefaultRoot is where the store lives unless Open is given another root.
// It persists across reboots, unlike podsb's /run state root.
const DefaultRoot = "/var/lib/podsb"

// Store is an image store under one root directory. Several processes may
// use one root at the same time: the index is read and written under
// flock(2), and each blob and layer is made by one of them only.
type Store struct {
	root string
	// HolderAlive, if set, tells whether a holder (Acquire) still uses
	// its image. Holders it calls gone are dropped whenever the index
	// changes, so a container removed without Release (its pod removed
	// by another program, a podsb killed mid-start) does not hold its
	// image forever. Nil: holders live until Release.
	HolderAlive func(holder string) bool
}

// Image is an image in the store, as List and Inspect return it.
type Image struct {
	// ID is the digest of the image's config ("sha256:…"), as docker's.
	ID string `json:"id"`
	// Digest is the digest of the image's manifest.
	Digest string `json:"digest"`
	// Names are the references that name the image ("docker.io/library/busybox:latest").
	Names []string `json:"names"`
	// Platform is the image's "os/arch[/variant]".
	Platform string `json:"platform"`
	// Created is when the image was built (from its config), Added when it
	// came into the store.
	Created time.Time `json:"created"`
	Added   time.Time `json:"added"`
	// Size is the sum of the sizes of the manifest, config and layer blobs.
	Size int64 `json:"size"`
	// Layers lowest first.
	Layers []Layer `json:"layers"`
	// Holders are the users of the image (Acquire); Remove refuses an
	// image with holders unless forced.
	Holders []string `json:"holders,omitempty"`
	// Removed marks an image removed by force while it had holders: it is
	// listed no more, and goes with its last holder.
	Removed bool `json:"removed,omitempty"`
}

// Layer is one layer of an image.
type Layer struct {
	// Digest is the digest of the blob, as the manifest names it.
	Digest string `json:"digest"`
	// DiffID is the digest of the uncompressed tar, as the config names it.
	DiffID string `json:"diffID"`
	// ChainID identifies the layer with all those below it: the name of
	// its unpacked directory, shared by every image that has the same stack.
	ChainID   string `json:"chainID"`
	MediaType string `json:"mediaType"`
	Size      int64  `json:"size"`
}

// Mounted is what a container needs to run from an image: the unpacked
// layer directories, lowest first (overlayfs lowerdirs are given in the
// opposite order), and the image's config.
type Mounted struct {
	ID     string
	Layers []string
	Config rootfs.ImageConfig
}

// index is the store's metadata, ROOT/images.json.
type index struct {
	Images []*Image `json:"images"`
}

// Open opens the store under root (DefaultRoot if empty), making it if it
// does not exist.
func Open(root string) (*Store, error) {
	if root == "" {
		root = DefaultRoot
	}
	if !filepath.IsAbs(root) {
		abs, err := filepath.Abs(root)
		if err != nil {
			return nil, newErr(ErrInvalid, "image root %q: %w", root, err)
		}
		root = abs
	}
	if err := os.MkdirAll(root, 0o711); err != nil {
		return nil, fmt.Errorf("image root: %w", err)
	}
	if err := checkTrusted(root); err != nil {
		return nil, err
	}
	for _, d := range []string{"blobs/sha256", "layers", "tmp", "locks", "upper"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o711); err != nil {
			return nil, fmt.Errorf("image root: %w", err)
		}
	}
	layout := filepath.Join(root, "oci-layout")
	if _, err := os.Stat(layout); errors.Is(err, fs.ErrNotExist) {
		if err := writeFileAtomic(layout, []byte(`{"imageLayoutVersion":"1.0.0"}`+"\n")); err != nil {
			return nil, fmt.Errorf("image root: %w", err)
		}
	}
	return &Store{root: root}, nil
}

// Root returns the store's root directory.
func (s *Store) Root() string { return s.root }

func (s *Store) blobPath(d string) string {
	return filepath.Join(s.root, "blobs", "sha256", strings.TrimPrefix(d, "sha256:"))
}

func (s *Store) layerPath(chainID string) string {
	return filepath.Join(s.root, "layers", strings.TrimPrefix(chainID, "sha256:"))
}

// lockFile takes flock(2) how on ROOT/name and returns its release.
func (s *Store) lockFile(name string, how int) (func(), error) {
	f, err := os.OpenFile(filepath.Join(s.root, name), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, &os.PathError{Op: "flock", Path: f.Name(), Err: err}
	}
	return func() { f.Close() }, nil
}

func (s *Store) readIndex() (*index, error) {
	b, err := os.ReadFile(filepath.Join(s.root, "images.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return &index{}, nil
	}
	if err != nil {
		return nil, err
	}
	ix := &index{}
	if err := json.Unmarshal(b, ix); err != nil {
		return nil, newErr(ErrCorrupt, "image index %s: %w", filepath.Join(s.root, "images.json"), err)
	}
	return ix, nil
}

// dropGoneHolders removes the holders HolderAlive calls gone, and the
// images removed by force whose last holder that was.
func (s *Store) dropGoneHolders(ix *index) {
	if s.HolderAlive == nil {
		return
	}
	for _, im := range ix.Images {
		im.Holders = slices.DeleteFunc(im.Holders, func(h string) bool { return !s.HolderAlive(h) })
	}
	ix.Images = slices.DeleteFunc(ix.Images, func(im *Image) bool { return im.Removed && len(im.Holders) == 0 })
}

// view calls fn with the index, under a shared lock.
func (s *Store) view(fn func(*index) error) error {
	unlock, err := s.lockFile("lock", unix.LOCK_SH)
	if err != nil {
		return err
	}
	defer unlock()
	ix, err := s.readIndex()
	if err != nil {
		return err
	}
	return fn(ix)
}

// update calls fn with the index under an exclusive lock, and writes the
// index back (atomically) if fn succeeds.
func (s *Store) update(fn func(*index) error) error {
	unlock, err := s.lockFile("lock", unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock()
	ix, err := s.readIndex()
	if err != nil {
		return err
	}
	s.dropGoneHolders(ix)
	if err := fn(ix); err != nil {
		return err
	}
	b, err := json.MarshalIndent(ix, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(s.root, "images.json"), b)
}

// writeFileAtomic writes b to a temporary file beside path, syncs it and
// renames it over path.
func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// find returns the image ref names: a name, a name as the store
// normalizes it, a full or abbreviated (at least 4 hex digits) ID, or a
// manifest digest. Images removed by force are not found.
func (ix *index) find(ref string) (*Image, error) {
	if ref == "" {
		return nil, newErr(ErrInvalid, "empty image reference")
	}
	norm, nerr := Normalize(ref)
	for _, im := range ix.Images {
		if !im.Removed && (slices.Contains(im.Names, ref) || nerr == nil && slices.Contains(im.Names, norm)) {
			return im, nil
		}
	}
	// REPO@DIGEST of a name the image has under a tag, as the CRI
	// reports it (repoDigests) and critest looks it up.
	full := ref
	if nerr == nil {
		full = norm
	}
	if repo, dg, ok := strings.Cut(full, "@"); ok {
		for _, im := range ix.Images {
			if im.Removed || im.Digest != dg {
				continue
			}
			for _, n := range im.Names {
				if !strings.Contains(n, "@") && untagged(n) == repo {
					return im, nil
				}
			}
		}
	}
	hex := strings.TrimPrefix(ref, "sha256:")
	if len(hex) >= 4 && strings.Trim(hex, "0123456789abcdef") == "" {
		var found *Image
		for _, im := range ix.Images {
			if im.Removed {
				continue
			}
			if strings.HasPrefix(strings.TrimPrefix(im.ID, "sha256:"), hex) || im.Digest == ref {
				if found != nil && found != im {
					return nil, newErr(ErrInvalid, "image ID %q is ambiguous", ref)
				}
				found = im
			}
		}
		if found != nil {
			return found, nil
		}
	}
	return nil, newErr(ErrNotFound, "no such image: %s", ref)
}

// List returns the images in the store, newest first.
func (s *Store) List() ([]Image, error) {
	var out []Image
	err := s.view(func(ix *index) error {
		for _, im := range ix.Images {
			if !im.Removed {
				out = append(out, *im)
			}
		}
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Added.After(out[j].Added) })
	return out, err
}

// Inspect returns the image ref names (see List for the forms of ref).
func (s *Store) Inspect(ref string) (Image, error) {
	var out Image
	err := s.view(func(ix *index) error {
		im, err := ix.find(ref)
		if err == nil {
			out = *im
		}
		return err
	})
	return out, err
}

// RawConfig returns the config blob of the image ref, as the image has it.
func (s *Store) RawConfig(ref string) (json.RawMessage, error) {
	im, err := s.Inspect(ref)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(s.blobPath(im.ID))
	if err != nil {
		return nil, fmt.Errorf("config of image %s: %w", im.ID, err)
	}
	if !json.Valid(b) {
		return nil, newErr(ErrCorrupt, "config of image %s: not JSON", im.ID)
	}
	return b, nil
}

// Config returns the config of the image ref.
func (s *Store) Config(ref string) (*ConfigFile, error) {
	im, err := s.Inspect(ref)
	if err != nil {
		return nil, err
	}
	return s.readConfig(im.ID)
}

func (s *Store) readConfig(id string) (*ConfigFile, error) {
	b, err := os.ReadFile(s.blobPath(id))
	if err != nil {
		return nil, fmt.Errorf("config of image %s: %w", id, err)
	}
	cf, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("config of image %s: %w", id, err)
	}
	return cf, nil
}

// Tag adds the name newName to the image ref. A name names one image: it
// leaves the image it named before.
func (s *Store) Tag(ref, newName string) error {
	norm, isDigest, err := normalize(newName)
	if err != nil {
		return err
	}
	if isDigest {
		return newErr(ErrInvalid, "tag %q: a tag, not a digest, names an image", newName)
	}
	return s.update(func(ix *index) error {
		im, err := ix.find(ref)
		if err != nil {
			return err
		}
		ix.name(im, norm)
		return nil
	})
}

// name gives im the name n, taking it from any other image.
func (ix *index) name(im *Image, n string) {
	for _, o := range ix.Images {
		if o != im {
			o.Names = slices.DeleteFunc(o.Names, func(x string) bool { return x == n })
		}
	}
	if !slices.Contains(im.Names, n) {
		im.Names = append(im.Names, n)
	}
}

// Remove removes ref. If ref is one of several names of an image, only the
// name goes. Otherwise the image goes, with its blobs and layers that no
// other image uses. An image with holders (Acquire) is refused
// (ErrInUse) unless force: then it is listed no more, and its layers stay
// until its last holder releases it.
func (s *Store) Remove(ref string, force bool) (Image, error) {
	var out Image
	err := s.update(func(ix *index) error {
		im, err := ix.find(ref)
		if err != nil {
			return err
		}
		out = *im
		norm, _ := Normalize(ref)
		if len(im.Names) > 1 && (slices.Contains(im.Names, ref) || slices.Contains(im.Names, norm)) {
			im.Names = slices.DeleteFunc(im.Names, func(x string) bool { return x == ref || x == norm })
			return nil
		}
		if len(im.Holders) > 0 {
			if !force {
				return newErr(ErrInUse, "image %s is in use by %s (use -f to remove it anyway)", shortID(im.ID), strings.Join(im.Holders, ", "))
			}
			im.Removed = true
			im.Names = nil
			return nil
		}
		ix.Images = slices.DeleteFunc(ix.Images, func(x *Image) bool { return x == im })
		return nil
	})
	if err != nil {
		return Image{}, err
	}
	// Collect what no image uses, unless a pull is adding some now (it
	// collects when it ends, or prune does).
	if unlock, err := s.tryLockGC(); err == nil {
		defer unlock()
		_, err = s.collect(true)
		return out, err
	}
	return out, nil
}

// Acquire records holder as a user of the image ref, so that Remove
// refuses it, and returns what a container needs to run from it.
func (s *Store) Acquire(ref, holder string) (Mounted, error) {
	if holder == "" {
		return Mounted{}, newErr(ErrInvalid, "empty image holder")
	}
	var m Mounted
	err := s.update(func(ix *index) error {
		im, err := ix.find(ref)
		if err != nil {
			return err
		}
		cf, err := s.readConfig(im.ID)
		if err != nil {
			return err
		}
		c := cf.Config
		m = Mounted{ID: im.ID, Config: rootfs.ImageConfig{
			User: c.User, Env: c.Env, Entrypoint: c.Entrypoint, Cmd: c.Cmd,
			WorkingDir: c.WorkingDir, StopSignal: c.StopSignal,
		}}
		for _, l := range im.Layers {
			m.Layers = append(m.Layers, s.layerPath(l.ChainID))
		}
		if !slices.Contains(im.Holders, holder) {
			im.Holders = append(im.Holders, holder)
		}
		return nil
	})
	return m, err
}

// RootOf acquires ref for holder (Acquire) and returns it as a container
// root: the layers, the image's run configuration, and ROOT/upper as the
// parent of the container's upper directory, on the layers' file system.
// The holder releases it with Release(root.ID, holder).
func (s *Store) RootOf(ref, holder string) (*rootfs.ImageRoot, error) {
	m, err := s.Acquire(ref, holder)
	if err != nil {
		return nil, err
	}
	return &rootfs.ImageRoot{
		ID:          m.ID,
		Layers:      m.Layers,
		UpperParent: filepath.Join(s.root, "upper"),
		Config:      m.Config,
	}, nil
}

// Release removes holder from the users of image id (an ID, as Mounted
// has it, or any ref Inspect takes). Releasing what is not held is no
// error. An image removed by force goes with its last holder.
func (s *Store) Release(id, holder string) error {
	gone := false
	err := s.update(func(ix *index) error {
		for _, im := range ix.Images {
			if im.ID != id && !(id != "" && strings.TrimPrefix(im.ID, "sha256:") == id) {
				continue
			}
			im.Holders = slices.DeleteFunc(im.Holders, func(x string) bool { return x == holder })
			if im.Removed && len(im.Holders) == 0 {
				ix.Images = slices.DeleteFunc(ix.Images, func(x *Image) bool { return x == im })
				gone = true
			}
			return nil
		}
		im, err := ix.find(id)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		im.Holders = slices.DeleteFunc(im.Holders, func(x string) bool { return x == holder })
		return nil
	})
	if err == nil && gone {
		if unlock, lerr := s.tryLockGC(); lerr == nil {
			defer unlock()
			_, err = s.collect(true)
		}
	}
	return err
}

func shortID(id string) string {
	h := strings.TrimPrefix(id, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}

// PodHolderAlive is a HolderAlive for holders that are a container's
// directory in a podsb state root, ROOT/POD/containers/NAME, as the CLI
// records them: such a holder uses its image while its pod's directory
// exists (a container's directory and upper directory live as long as its
// pod). Holders that are not such paths are kept.
func PodHolderAlive(h string) bool {
	if !filepath.IsAbs(h) || filepath.Base(filepath.Dir(h)) != "containers" {
		return true
	}
	_, err := os.Lstat(filepath.Dir(filepath.Dir(h)))
	return !errors.Is(err, fs.ErrNotExist)
}

// untagged returns a name without its tag: a colon after the last slash.
func untagged(name string) string {
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		return name[:i]
	}
	return name
}
