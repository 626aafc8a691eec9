package image

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Adding images. Package image/fetch reads images from registries and
// archives and writes them into the store through these methods: blobs
// and layers are made in TempDir and renamed to BlobPath and LayerPath
// (each layer under LockLayer) between BeginAdd and its end, and Commit
// names the image in the index when all of it is on disk.

// BeginAdd starts adding an image: until end, Prune and the collection
// after Remove leave alone the blobs and layers no image names yet. end
// collects what the add left (the blobs too if collectBlobs), unless
// another add is running.
func (s *Store) BeginAdd() (end func(collectBlobs bool), err error) {
	unlock, err := s.lockGCShared()
	if err != nil {
		return nil, err
	}
	return func(collectBlobs bool) {
		unlock()
		if u, lerr := s.tryLockGC(); lerr == nil {
			s.collect(collectBlobs)
			u()
		}
	}, nil
}

// BlobPath is where the blob of digest d ("sha256:…") lives.
func (s *Store) BlobPath(d string) string { return s.blobPath(d) }

// LayerPath is where the layer of chain ID chainID is unpacked.
func (s *Store) LayerPath(chainID string) string { return s.layerPath(chainID) }

// TempDir is the directory for blobs and layers in the making, on the
// store's file system.
func (s *Store) TempDir() string { return filepath.Join(s.root, "tmp") }

// LockLayer takes the lock of the layer chainID: one process at a time
// makes a layer.
func (s *Store) LockLayer(chainID string) (func(), error) {
	return s.lockFile(filepath.Join("locks", strings.TrimPrefix(chainID, "sha256:")), unix.LOCK_EX)
}

// PutBlob stores b, whose digest d the caller has verified.
func (s *Store) PutBlob(d string, b []byte) error {
	p := s.blobPath(d)
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	f, err := os.CreateTemp(s.TempDir(), "blob-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store blob %s: %w", d, err)
	}
	return os.Rename(f.Name(), p)
}

// Commit puts im, whose blobs and layers are in the store, into the index
// with names (normalized) and returns it as stored: an image the store has
// already keeps its Added time and gains the names.
func (s *Store) Commit(im Image, names []string) (Image, error) {
	// Everything the index will name is on disk before the index is.
	if err := s.syncfs(); err != nil {
		return Image{}, err
	}
	err := s.update(func(ix *index) error {
		var cur *Image
		for _, x := range ix.Images {
			if x.ID == im.ID {
				cur = x
			}
		}
		if cur != nil && cur.Removed { // removed by force, still held: back
			cur.Removed = false
		}
		if cur == nil {
			im.Added = time.Now().UTC()
			im.Holders, im.Removed = nil, false
			cur = &im
			ix.Images = append(ix.Images, cur)
		}
		for _, n := range names {
			ix.name(cur, n)
		}
		im = *cur
		im.Names = slices.Clone(cur.Names)
		return nil
	})
	return im, err
}

func (s *Store) syncfs() error {
	fd, err := unix.Open(s.root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return os.NewSyscallError("syncfs", unix.Syncfs(fd))
}
