package rootfs

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/setup"
)

// TestPlanVolumeModes checks the operations of each propagation and
// read-only mode of a volume.
func TestPlanVolumeModes(t *testing.T) {
	const dst = "/t/data"
	for _, tc := range []struct {
		name      string
		v         Volume
		shared    bool   // the volume comes as a detached tree
		prop      uint64 // the propagation mount's flags, 0 for none
		ro        int    // RemountRO ops
		recursive bool
	}{
		{name: "default", v: Volume{}},
		{name: "rprivate", v: Volume{Propagation: PropagationPrivate}, prop: unix.MS_REC | unix.MS_PRIVATE},
		{name: "rslave", v: Volume{Propagation: PropagationSlave}, prop: unix.MS_REC | unix.MS_SLAVE},
		{name: "rshared", v: Volume{Propagation: PropagationShared}, shared: true},
		{name: "recursive ro", v: Volume{ReadOnly: true, Propagation: PropagationPrivate}, prop: unix.MS_REC | unix.MS_PRIVATE, ro: 1, recursive: true},
		{name: "non-recursive ro", v: Volume{ReadOnly: true, NonRecursive: true, Propagation: PropagationPrivate}, prop: unix.MS_REC | unix.MS_PRIVATE, ro: 1},
		{name: "non-recursive ro rshared", v: Volume{ReadOnly: true, NonRecursive: true, Propagation: PropagationShared}, shared: true, ro: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.v
			v.Source, v.Destination = "/srv/data", "/data"
			s := &Spec{Target: "/t", Volumes: []Volume{v}}
			if tc.shared {
				s.Shared = map[string]int{VolumeKey(v): 9}
			}
			ops, err := plan(merged(), s)
			if err != nil {
				t.Fatal(err)
			}
			m := mountsAt(ops, dst)
			if tc.shared {
				mv := find(ops, setup.MoveMount, dst)
				if len(mv) != 1 || mv[0].Num != 9 {
					t.Errorf("move mount ops %+v", mv)
				}
			} else if len(m) == 0 || m[0].Str[0] != v.Source || m[0].Num != unix.MS_BIND|unix.MS_REC {
				t.Errorf("mounts %+v: want a recursive bind first", m)
			} else {
				m = m[1:]
			}
			switch {
			case tc.prop == 0 && len(m) != 0:
				t.Errorf("propagation mounts %+v, want none", m)
			case tc.prop != 0 && (len(m) != 1 || m[0].Num != tc.prop || m[0].Str[0] != ""):
				t.Errorf("propagation mounts %+v, want flags %#x", m, tc.prop)
			}
			ro := find(ops, setup.RemountRO, dst)
			if len(ro) != tc.ro || tc.ro == 1 && (ro[0].Num == setup.Recursive) != tc.recursive {
				t.Errorf("read-only ops %+v, want %d recursive %v", ro, tc.ro, tc.recursive)
			}
		})
	}
	// rshared without a detached tree cannot be planned.
	v := Volume{Source: "/srv/data", Destination: "/data", Propagation: PropagationShared}
	if _, err := plan(merged(), &Spec{Target: "/t", Volumes: []Volume{v}}); err == nil {
		t.Error("rshared volume planned without its tree")
	}
}

// TestCheckVolumeModes checks the volume modes that are refused.
func TestCheckVolumeModes(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    Volume
		ok   bool
	}{
		{"rw", Volume{}, true},
		{"rro rprivate", Volume{ReadOnly: true, Propagation: PropagationPrivate}, true},
		{"ro rslave", Volume{ReadOnly: true, NonRecursive: true, Propagation: PropagationSlave}, true},
		{"ro rshared", Volume{ReadOnly: true, NonRecursive: true, Propagation: PropagationShared}, true},
		{"rro rslave", Volume{ReadOnly: true, Propagation: PropagationSlave}, false},
		{"rro rshared", Volume{ReadOnly: true, Propagation: PropagationShared}, false},
		{"non-recursive rw", Volume{NonRecursive: true}, false},
		{"unknown propagation", Volume{Propagation: "shared"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkVolumeModes(tc.v)
			if (err == nil) != tc.ok {
				t.Errorf("checkVolumeModes(%+v) = %v, want ok %v", tc.v, err, tc.ok)
			}
		})
	}
}

// TestPlanImageVolume checks an image volume's plan: its detached tree
// (Spec.Shared) moved to the destination, a file's mount point touched,
// read-only all the way down; without its tree it cannot be planned.
func TestPlanImageVolume(t *testing.T) {
	const dst = "/t/img"
	for _, file := range []bool{false, true} {
		v := Volume{Destination: "/img", ReadOnly: true, Propagation: PropagationPrivate, Image: &ImageRoot{ID: "sha256:1", Layers: []string{"/l"}}}
		s := &Spec{Target: "/t", Volumes: []Volume{v}, Shared: map[string]int{VolumeKey(v): 7}}
		if file {
			s.SharedFiles = map[string]bool{VolumeKey(v): true}
		}
		ops, err := plan(merged(), s)
		if err != nil {
			t.Fatal(err)
		}
		if mv := find(ops, setup.MoveMount, dst); len(mv) != 1 || mv[0].Num != 7 {
			t.Errorf("file %v: move mount ops %+v", file, mv)
		}
		if touch := find(ops, setup.Touch, dst); (len(touch) == 1) != file {
			t.Errorf("file %v: touch ops %+v", file, touch)
		}
		if ro := find(ops, setup.RemountRO, dst); len(ro) != 1 || ro[0].Num != setup.Recursive {
			t.Errorf("file %v: read-only ops %+v", file, ro)
		}
		if _, err := plan(merged(), &Spec{Target: "/t", Volumes: []Volume{v}}); err == nil {
			t.Errorf("file %v: image volume planned without its tree", file)
		}
	}
}

// TestCheckImageVolume checks the image volumes that are refused.
func TestCheckImageVolume(t *testing.T) {
	layer := t.TempDir()
	img := &ImageRoot{ID: "sha256:1", Layers: []string{layer}}
	good := Volume{Destination: "/img", ReadOnly: true, Image: img}
	for _, tc := range []struct {
		name string
		f    func(*Volume)
		err  string
	}{
		{"whole image", func(*Volume) {}, ""},
		{"sub path", func(v *Volume) { v.SubPath = "etc/x" }, ""},
		{"private", func(v *Volume) { v.Propagation = PropagationPrivate }, ""},
		{"writable", func(v *Volume) { v.ReadOnly = false }, "read-only"},
		{"rslave", func(v *Volume) { v.Propagation = PropagationSlave }, "propagation"},
		{"relative destination", func(v *Volume) { v.Destination = "img" }, "absolute"},
		{"under /proc", func(v *Volume) { v.Destination = "/proc/x" }, "/proc"},
		{"absolute sub path", func(v *Volume) { v.SubPath = "/etc" }, "sub path"},
		{"sub path out", func(v *Volume) { v.SubPath = "../etc" }, "sub path"},
		{"no layers", func(v *Volume) { v.Image = &ImageRoot{ID: "sha256:1"} }, "no layers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := good
			tc.f(&v)
			err := (&Spec{Volumes: []Volume{v}}).Check()
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrInvalid)) {
				t.Errorf("Check(%+v) = %v, want %q", v, err, tc.err)
			}
		})
	}
}
