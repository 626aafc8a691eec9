package fetch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/compression"
	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/image"
)

func TestPullUnpackShare(t *testing.T) {
	s := openTestStore(t)
	host := newRegistry(t, nil)
	base := layerOf(t, tarBytes(t,
		entry{name: "./", typ: 'd', mode: 0o750},
		entry{name: "bin/", typ: 'd'},
		entry{name: "bin/app", body: "v1", mode: 0o4755},
		entry{name: "etc/", typ: 'd'},
		entry{name: "etc/gone", body: "x"},
		entry{name: "etc/conf.d/", typ: 'd'},
		entry{name: "etc/conf.d/a", body: "a"},
		entry{name: "bin/link", typ: 'l', link: "/bin/app"},
		entry{name: "bin/hard", typ: 'h', link: "bin/app"},
	), compression.GZip)
	top := layerOf(t, tarBytes(t,
		entry{name: "etc/.wh.gone", body: ""},
		entry{name: "etc/conf.d/.wh..wh..opq", body: ""},
		entry{name: "etc/conf.d/b", body: "b"},
	), compression.ZStd)
	push(t, host+"/a:1", buildImage(t, "", base))
	push(t, host+"/b:1", buildImage(t, "", base, top))

	a := pull(t, s, host+"/a:1")
	b := pull(t, s, host+"/b:1")
	if a.Layers[0].ChainID != b.Layers[0].ChainID || len(b.Layers) != 2 {
		t.Fatalf("layers: %+v %+v", a.Layers, b.Layers)
	}
	ents, _ := os.ReadDir(filepath.Join(s.Root(), "layers"))
	if len(ents) != 2 {
		t.Errorf("%d layer directories, want 2 (one shared)", len(ents))
	}
	l0, l1 := s.LayerPath(b.Layers[0].ChainID), s.LayerPath(b.Layers[1].ChainID)
	if fi, err := os.Stat(l1); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("a layer's root: %v %v, want mode 0755", fi.Mode(), err)
	}
	if fi, err := os.Stat(l0); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("a layer's root with a ./ entry: %v %v, want mode 0750", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(l0, "bin/app")); err != nil || fi.Mode()&os.ModeSetuid == 0 {
		t.Errorf("bin/app: %v %v", fi, err)
	}
	if tgt, err := os.Readlink(filepath.Join(l0, "bin/link")); err != nil || tgt != "/bin/app" {
		t.Errorf("bin/link: %q %v", tgt, err)
	}
	var st1, st2 unix.Stat_t
	unix.Stat(filepath.Join(l0, "bin/app"), &st1)
	unix.Stat(filepath.Join(l0, "bin/hard"), &st2)
	if st1.Ino != st2.Ino {
		t.Error("bin/hard is not a hard link of bin/app")
	}
	var wh unix.Stat_t
	if err := unix.Lstat(filepath.Join(l1, "etc/gone"), &wh); err != nil || wh.Mode&unix.S_IFMT != unix.S_IFCHR || wh.Rdev != 0 {
		t.Errorf("whiteout etc/gone: mode %o rdev %d: %v", wh.Mode, wh.Rdev, err)
	}
	if _, err := os.Lstat(filepath.Join(l1, "etc/.wh.gone")); err == nil {
		t.Error(".wh.gone itself was written")
	}
	buf := make([]byte, 8)
	if n, err := unix.Getxattr(filepath.Join(l1, "etc/conf.d"), "trusted.overlay.opaque", buf); err != nil || string(buf[:n]) != "y" {
		t.Errorf("opaque xattr: %q %v", buf[:n], err)
	}
	ims, err := s.List()
	if err != nil || len(ims) != 2 {
		t.Fatalf("List: %v %v", ims, err)
	}
	checkConsistent(t, s, true)

	// In use: rm refused without force; force keeps the layers until release.
	m, err := s.Acquire(host+"/b:1", "pod1/c1")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.Layers, []string{l0, l1}) || m.Config.Cmd[0] != "/bin/sh" {
		t.Errorf("Acquire: %+v", m)
	}
	if _, err := s.Remove(host+"/b:1", false); !errors.Is(err, image.ErrInUse) {
		t.Fatalf("rm in use: %v", err)
	}
	if _, err := s.Remove(host+"/b:1", true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(l1); err != nil {
		t.Errorf("layer of a held image went: %v", err)
	}
	if _, err := s.Inspect(host + "/b:1"); !errors.Is(err, image.ErrNotFound) {
		t.Errorf("removed image still found: %v", err)
	}
	if err := s.Release(m.ID, "pod1/c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(l1); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("layer of a removed, released image stayed: %v", err)
	}
	checkConsistent(t, s, true)
	// Tag, then rm of one name keeps the image.
	if err := s.Tag(host+"/a:1", "example.com/x:2"); err != nil {
		t.Fatal(err)
	}
	s.Remove(host+"/a:1", false)
	if im, err := s.Inspect("example.com/x:2"); err != nil || im.ID != a.ID {
		t.Errorf("after rm of one name: %v", err)
	}
	if _, err := s.Remove("example.com/x:2", false); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Root(), "layers")); len(ents) != 0 {
		t.Errorf("layers left after all images went: %d", len(ents))
	}
	checkConsistent(t, s, true)
}

func TestConcurrentPulls(t *testing.T) {
	s := openTestStore(t)
	var mu sync.Mutex
	gets := map[string]int{}
	host := newRegistry(t, countBlobs(&mu, gets))
	img := buildImage(t, "", layerOf(t, tarBytes(t, entry{name: "a", body: string(make([]byte, 1<<20))}), compression.GZip),
		layerOf(t, tarBytes(t, entry{name: "b", body: "b"}), compression.GZip))
	push(t, host+"/c:1", img)
	mu.Lock()
	clear(gets)
	mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s2, err := image.Open(s.Root()) // as another podsb process would
			if err == nil {
				_, err = Pull(context.Background(), s2, host+"/c:1", fast)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	ls, _ := img.Layers()
	for _, l := range ls {
		d, _ := l.Digest()
		if gets[d.String()] != 1 {
			t.Errorf("layer %s downloaded %d times", d, gets[d.String()])
		}
	}
	if ims, _ := s.List(); len(ims) != 1 {
		t.Errorf("%d images", len(ims))
	}
	checkConsistent(t, s, true)
}

func TestUntrustedImageRoot(t *testing.T) {
	openTestStore(t) // root only
	dir := t.TempDir()
	os.Chmod(dir, 0o777)
	if _, err := image.Open(filepath.Join(dir, "store")); !errors.Is(err, image.ErrUntrustedRoot) {
		t.Errorf("root below a world-writable directory: %v", err)
	}
	os.Chmod(dir, 0o755)
	os.Chown(dir, 65534, 65534)
	if _, err := image.Open(dir); !errors.Is(err, image.ErrUntrustedRoot) {
		t.Errorf("root owned by nobody: %v", err)
	}
	os.Chown(dir, 0, 0)
	if _, err := image.Open(dir); err != nil {
		t.Errorf("root's own root: %v", err)
	}
}

// TestOverlayOfLayers mounts an image's layers as overlayfs lowerdirs, as a
// container does, and checks that the whiteouts hide what they should.
func TestOverlayOfLayers(t *testing.T) {
	s := openTestStore(t)
	host := newRegistry(t, nil)
	push(t, host+"/o:1", buildImage(t, "",
		layerOf(t, tarBytes(t, entry{name: "etc/", typ: 'd'}, entry{name: "etc/gone", body: "x"},
			entry{name: "etc/d/", typ: 'd'}, entry{name: "etc/d/old", body: "old"}), compression.GZip),
		layerOf(t, tarBytes(t, entry{name: "etc/.wh.gone"}, entry{name: "etc/d/.wh..wh..opq"}, entry{name: "etc/d/new", body: "new"}), compression.ZStd)))
	pull(t, s, host+"/o:1")
	m, err := s.Acquire(host+"/o:1", "t")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release(m.ID, "t")
	mnt := t.TempDir()
	if err := unix.Mount("overlay", mnt, "overlay", unix.MS_RDONLY, "lowerdir="+m.Layers[1]+":"+m.Layers[0]); err != nil {
		t.Fatalf("mount overlay: %v", err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	if _, err := os.Lstat(filepath.Join(mnt, "etc/gone")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("etc/gone through the overlay: %v, want gone", err)
	}
	ents, _ := os.ReadDir(filepath.Join(mnt, "etc/d"))
	if len(ents) != 1 || ents[0].Name() != "new" {
		t.Errorf("etc/d through the overlay: %v, want only new", ents)
	}
}

// A holder that HolderAlive calls gone no longer keeps its image: rm
// without -f succeeds, and an image removed by force goes with it.
func TestGoneHoldersDropped(t *testing.T) {
	s := openTestStore(t)
	host := newRegistry(t, nil)
	push(t, host+"/a:1", buildImage(t, "", layerOf(t, tarBytes(t, entry{name: "f", body: "a"}), compression.GZip)))
	push(t, host+"/b:1", buildImage(t, "", layerOf(t, tarBytes(t, entry{name: "f", body: "b"}), compression.GZip)))
	pull(t, s, host+"/a:1")
	pull(t, s, host+"/b:1")
	alive := map[string]bool{"c1": true, "c2": true}
	s.HolderAlive = func(h string) bool { return alive[h] }
	if _, err := s.Acquire(host+"/a:1", "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire(host+"/b:1", "c2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Remove(host+"/a:1", false); !errors.Is(err, image.ErrInUse) {
		t.Fatalf("rm of a held image: %v", err)
	}
	if _, err := s.Remove(host+"/b:1", true); err != nil {
		t.Fatal(err)
	}
	alive["c1"], alive["c2"] = false, false
	if _, err := s.Remove(host+"/a:1", false); err != nil {
		t.Errorf("rm of an image whose holder is gone: %v", err)
	}
	if _, err := s.Prune(); err != nil {
		t.Fatal(err)
	}
	if ims, err := s.List(); err != nil || len(ims) != 0 {
		t.Errorf("images left: %+v %v", ims, err)
	}
	checkConsistent(t, s, true)
	if ents, _ := os.ReadDir(filepath.Join(s.Root(), "layers")); len(ents) != 0 {
		t.Errorf("%d layers left after both holders went", len(ents))
	}
}
