package rootfs

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/setup"
)

func TestImageConfigArgs(t *testing.T) {
	for _, tc := range []struct {
		name            string
		entrypoint, cmd []string
		given, want     []string
	}{
		{"cmd alone", nil, []string{"nginx", "-g", "daemon off;"}, nil, []string{"nginx", "-g", "daemon off;"}},
		{"entrypoint and cmd", []string{"/entry"}, []string{"serve"}, nil, []string{"/entry", "serve"}},
		{"given replaces cmd", []string{"/entry"}, []string{"serve"}, []string{"check", "x"}, []string{"/entry", "check", "x"}},
		{"given without entrypoint", nil, []string{"serve"}, []string{"sh"}, []string{"sh"}},
		{"nothing", nil, nil, nil, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ImageConfig{Entrypoint: tc.entrypoint, Cmd: tc.cmd}
			if got := c.Args(tc.given); !slices.Equal(got, tc.want) {
				t.Errorf("Args(%q) = %q, want %q", tc.given, got, tc.want)
			}
		})
	}
}

func TestImageConfigSignal(t *testing.T) {
	for s, want := range map[string]unix.Signal{"": unix.SIGTERM, "SIGQUIT": unix.SIGQUIT, "quit": unix.SIGQUIT, "10": unix.SIGUSR1, "SIGRTMIN+3": 0} {
		got, err := ImageConfig{StopSignal: s}.Signal()
		if want == 0 {
			if err == nil {
				// Not every libc name is known to x/sys: an error is fine.
				t.Logf("%q: %v", s, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("StopSignal %q: %v, %v; want %v", s, got, err, want)
		}
	}
	if _, err := (ImageConfig{StopSignal: "SIGNOPE"}).Signal(); !errors.Is(err, ErrInvalid) {
		t.Errorf("SIGNOPE: %v, want ErrInvalid", err)
	}
}

func TestImageRootCheck(t *testing.T) {
	dir := t.TempDir()
	layer := filepath.Join(dir, "l0")
	if err := os.Mkdir(layer, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	many := make([]string, MaxLayers+1)
	for i := range many {
		many[i] = layer
	}
	for _, tc := range []struct {
		name string
		r    ImageRoot
		want string // in the error; "" for none
	}{
		{"good", ImageRoot{Layers: []string{layer}, UpperParent: dir, Config: ImageConfig{WorkingDir: "/w", StopSignal: "QUIT"}}, ""},
		{"no layers", ImageRoot{ID: "x"}, "image x: no layers"},
		{"relative layer", ImageRoot{Layers: []string{"l0"}}, "not an absolute path"},
		{"missing layer", ImageRoot{Layers: []string{filepath.Join(dir, "nope")}}, "not a directory"},
		{"file layer", ImageRoot{Layers: []string{file}}, "not a directory"},
		{"too many", ImageRoot{Layers: many}, "at most 500"},
		{"bad upper parent", ImageRoot{Layers: []string{layer}, UpperParent: "rel"}, "upper parent"},
		{"relative workdir", ImageRoot{Layers: []string{layer}, Config: ImageConfig{WorkingDir: "w"}}, "working directory"},
		{"bad signal", ImageRoot{Layers: []string{layer}, Config: ImageConfig{StopSignal: "NOPE"}}, "signal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.r.Check()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Check: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalid)):
				t.Errorf("Check: %v, want ErrInvalid with %q", err, tc.want)
			}
		})
	}
}

// An image root is a detached mount: the plan attaches it at the target
// instead of binding Dir, and reads the root through Dir.
func TestPlanImageRoot(t *testing.T) {
	h := merged()
	s := &Spec{Dir: "/srv/root", Target: "/t", EtcDir: "/state/etc", NoDev: true, Shared: map[string]int{".": 9}}
	ops, err := plan(h, s)
	if err != nil {
		t.Fatal(err)
	}
	if m := mountsAt(ops, "/t"); len(m) != 0 {
		t.Errorf("root mounts %+v: want none", m)
	}
	if mv := find(ops, setup.MoveMount, "/t"); len(mv) != 1 || mv[0].Num != 9 {
		t.Errorf("root move_mount ops %+v", mv)
	}
	if nd := find(ops, setup.NoDev, "/t"); len(nd) != 1 {
		t.Errorf("root nodev ops %+v", nd)
	}
	if m := mountsAt(ops, "/t/etc/hosts"); len(m) != 1 || m[0].Str[0] != "/state/etc/hosts" {
		t.Errorf("/etc/hosts mounts %+v", m)
	}
}
