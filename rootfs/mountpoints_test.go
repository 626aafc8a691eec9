package rootfs

import (
	"os"
	"path/filepath"
	"testing"
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
