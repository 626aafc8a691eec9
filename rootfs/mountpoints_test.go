package rootfs

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/testenv"
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

// MakeMountPointsOwned gives what it makes, the directories above a mount
// point included, to the owner, leaves what was there alone, and leaves a
// symbolic link of /etc (which the plan does not mount over) unfollowed.
func TestMakeMountPointsOwned(t *testing.T) {
	testenv.RequireRoot(t)
	root := t.TempDir()
	for _, d := range []string{"etc", "old"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../run/resolv.conf", filepath.Join(root, "etc/resolv.conf")); err != nil {
		t.Fatal(err)
	}
	src, file := t.TempDir(), filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	o := Owner{UID: 100000, GID: 200000}
	s := &Spec{Dir: root, Volumes: []Volume{{Source: src, Destination: "/old/new/deep"}, {Source: file, Destination: "/old/f"}}}
	if err := MakeMountPointsOwned(s, o); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"proc": "100000:200000", "tmp": "100000:200000", "etc/hosts": "100000:200000",
		"old/new": "100000:200000", "old/new/deep": "100000:200000", "old/f": "100000:200000", "old": "0:0", "etc": "0:0"} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, p), &st); err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if got := fmt.Sprintf("%d:%d", st.Uid, st.Gid); got != want {
			t.Errorf("%s: owner %s, want %s", p, got, want)
		}
	}
	if _, err := os.Lstat(filepath.Join(root, "run")); !os.IsNotExist(err) {
		t.Errorf("the target of /etc/resolv.conf, a symbolic link, was made: %v", err)
	}
}
