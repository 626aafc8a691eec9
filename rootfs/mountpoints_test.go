package rootfs

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// MakeMountPoints makes, inside the root only, the mount points the plan
// needs that are missing, and leaves what is there alone.
func TestMakeMountPoints(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	for _, d := range []string{"etc", "proc"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// A symbolic link of the root resolves inside it: /evil/v is made
	// at ROOT/OUTSIDE/v.
	if err := os.Symlink(outside, filepath.Join(root, "evil")); err != nil {
		t.Fatal(err)
	}
	src, file := t.TempDir(), filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Spec{Dir: root, Volumes: []Volume{{Source: src, Destination: "/a/b"}, {Source: file, Destination: "/c/f"}, {Source: src, Destination: "/evil/v"}}}
	if err := MakeMountPoints(s); err != nil {
		t.Fatal(err)
	}
	for p, dir := range map[string]bool{"proc": true, "sys": true, "dev": true, "tmp": true, "etc/hosts": false, "etc/hostname": false,
		"etc/resolv.conf": false, "a/b": true, "c/f": false, outside + "/v": true} {
		fi, err := os.Stat(filepath.Join(root, p))
		if err != nil || fi.IsDir() != dir {
			t.Errorf("%s: %v, want a directory %v", p, err, dir)
		}
	}
	if fi, _ := os.Stat(filepath.Join(root, "proc")); fi.Mode().Perm() != 0o700 {
		t.Errorf("an existing mount point was changed: %v", fi.Mode())
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("made outside the root: %v", ents)
	}
}

// A pod that owns the directory swaps a symbolic link to the host in for
// one of its directories while the host's root makes mount points there:
// nothing is ever made outside the root.
func TestMakeMountPointsSwapRace(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	done := make(chan struct{})
	swapped := make(chan struct{})
	go func() {
		defer close(swapped)
		for {
			select {
			case <-done:
				return
			default:
			}
			unix.Renameat2(unix.AT_FDCWD, filepath.Join(root, "x"), unix.AT_FDCWD, filepath.Join(root, "link"), unix.RENAME_EXCHANGE)
		}
	}()
	for i := range 1500 {
		s := &Spec{Dir: root, Volumes: []Volume{{Source: src, Destination: fmt.Sprintf("/x/v%d/d", i)}}}
		MakeMountPoints(s) // errors are fine; escapes are not
	}
	close(done)
	<-swapped
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("made outside the root: %d entries, %s first", len(ents), ents[0].Name())
	}
}
