package image

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Garbage collection. Pulls and imports hold ROOT/gc.lock shared while they
// add blobs and layers that no image references yet; collect runs only
// under it exclusive, so it never takes what a pull is making.

func (s *Store) lockGCShared() (func(), error) { return s.lockFile("gc.lock", unix.LOCK_SH) }

func (s *Store) tryLockGC() (func(), error) {
	return s.lockFile("gc.lock", unix.LOCK_EX|unix.LOCK_NB)
}

// PruneReport says what Prune removed.
type PruneReport struct {
	Blobs  int   `json:"blobs"`
	Layers int   `json:"layers"`
	Bytes  int64 `json:"bytes"`
}

// Prune removes the blobs and unpacked layers that no image references,
// and what interrupted pulls left in ROOT/tmp. It waits for pulls and
// imports in progress to end.
func (s *Store) Prune() (PruneReport, error) {
	unlock, err := s.lockFile("gc.lock", unix.LOCK_EX)
	if err != nil {
		return PruneReport{}, err
	}
	defer unlock()
	// Holders that are gone (HolderAlive) no longer keep their images.
	if err := s.update(func(*index) error { return nil }); err != nil {
		return PruneReport{}, err
	}
	return s.collect(true)
}

// collect removes unreferenced layers, temporary files and, if blobs,
// unreferenced blobs. Preconditions: gc.lock held exclusive.
func (s *Store) collect(blobs bool) (PruneReport, error) {
	var r PruneReport
	refBlobs := map[string]bool{}
	refLayers := map[string]bool{}
	err := s.view(func(ix *index) error {
		for _, im := range ix.Images {
			refBlobs[strings.TrimPrefix(im.ID, "sha256:")] = true
			refBlobs[strings.TrimPrefix(im.Digest, "sha256:")] = true
			for _, l := range im.Layers {
				refBlobs[strings.TrimPrefix(l.Digest, "sha256:")] = true
				refLayers[strings.TrimPrefix(l.ChainID, "sha256:")] = true
			}
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	var errs []error
	ents, err := os.ReadDir(filepath.Join(s.root, "layers"))
	if err != nil {
		return r, err
	}
	for _, e := range ents {
		if refLayers[e.Name()] {
			continue
		}
		// Rename first: a layer directory is whole or absent, even if
		// the removal is cut short.
		tmp := filepath.Join(s.root, "tmp", "rm-"+e.Name())
		if err := os.Rename(filepath.Join(s.root, "layers", e.Name()), tmp); err != nil {
			errs = append(errs, err)
			continue
		}
		r.Layers++
	}
	if blobs {
		ents, err := os.ReadDir(filepath.Join(s.root, "blobs", "sha256"))
		if err != nil {
			return r, err
		}
		for _, e := range ents {
			if refBlobs[e.Name()] {
				continue
			}
			if fi, err := e.Info(); err == nil {
				r.Bytes += fi.Size()
			}
			if err := os.Remove(filepath.Join(s.root, "blobs", "sha256", e.Name())); err != nil {
				errs = append(errs, err)
				continue
			}
			r.Blobs++
		}
	}
	for _, d := range []string{"tmp", "locks"} {
		ents, err := os.ReadDir(filepath.Join(s.root, d))
		if err != nil {
			return r, err
		}
		for _, e := range ents {
			if err := removeAll(filepath.Join(s.root, d, e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return r, errors.Join(errs...)
}

// removeAll removes path and everything below it.
func removeAll(path string) error { return os.RemoveAll(path) }
