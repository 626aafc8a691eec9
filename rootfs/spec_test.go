package rootfs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseVolume(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Volume
		err  string
	}{
		{"/a:/b", Volume{Source: "/a", Destination: "/b"}, ""},
		{"/a:/b:ro", Volume{Source: "/a", Destination: "/b", ReadOnly: true}, ""},
		{"/a:/b:rw", Volume{Source: "/a", Destination: "/b"}, ""},
		{"/proc:/hp:ro,kernelfs", Volume{Source: "/proc", Destination: "/hp", ReadOnly: true, KernelFS: true}, ""},
		{"/sys:/hs:kernelfs", Volume{Source: "/sys", Destination: "/hs", KernelFS: true}, ""},
		{"/a:/b:rx", Volume{}, `option "rx" is not ro, rw, kernelfs or idmap`},
		{"/a:/b:ro,idmap", Volume{Source: "/a", Destination: "/b", ReadOnly: true, IDMap: true}, ""},
		{"/a:/b:ro,", Volume{}, `option "" is not`},
		{"/a", Volume{}, "want SRC:DST"},
		{"a:/b", Volume{}, "absolute"},
		{"/a:/", Volume{}, "over the pod's root"},
		// Issue 11: the pod's own /proc, /sys and /dev.
		{"/a:/proc", Volume{}, "at or under the pod's /proc"},
		{"/a:/proc/sys/x", Volume{}, "at or under the pod's /proc"},
		{"/a:/sys", Volume{}, "at or under the pod's /sys"},
		{"/a:/sys/fs/cgroup", Volume{}, "at or under the pod's /sys"},
		{"/a:/dev", Volume{}, "at or under the pod's /dev"},
		{"/a:/dev/shm", Volume{}, "at or under the pod's /dev"},
		{"/a:/dev/../dev/x", Volume{}, "at or under the pod's /dev"},
		{"/a:/devices", Volume{Source: "/a", Destination: "/devices"}, ""},
		{"/a:/process", Volume{Source: "/a", Destination: "/process"}, ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			v, err := ParseVolume(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("error %v, want one with %q", err, tc.err)
				}
				return
			}
			if err != nil || v != tc.want {
				t.Fatalf("%+v, %v; want %+v", v, err, tc.want)
			}
			if back, err := ParseVolume(v.String()); err != nil || back != v {
				t.Errorf("String %q parses to %+v, %v", v.String(), back, err)
			}
		})
	}
}

// TestCheckVolumeSources checks issue 11's refusals of a Spec made without
// ParseVolume (the Go API): a destination in the pod's kernel directories,
// and a source on the host's proc or sysfs without KernelFS, also through
// a symbolic link.
func TestCheckVolumeSources(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "proclink")
	if err := os.Symlink("/proc/sys", link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		v    Volume
		err  string
	}{
		{"plain", Volume{Source: dir, Destination: "/data"}, ""},
		{"dev destination", Volume{Source: dir, Destination: "/dev/x"}, "at or under the pod's /dev"},
		{"unclean proc destination", Volume{Source: dir, Destination: "/x/../proc"}, "at or under the pod's /proc"},
		{"relative destination", Volume{Source: dir, Destination: "data"}, "absolute"},
		{"the root", Volume{Source: dir, Destination: "/x/.."}, "over the pod's root"},
		{"host proc", Volume{Source: "/proc", Destination: "/hp"}, "the host's proc: add the volume option kernelfs"},
		{"host proc file", Volume{Source: "/proc/sys/kernel/core_pattern", Destination: "/cp"}, "the host's proc"},
		{"host sys", Volume{Source: "/sys", Destination: "/hs"}, "the host's sys"},
		{"host proc through a link", Volume{Source: link, Destination: "/hp"}, "the host's proc"},
		{"host proc allowed", Volume{Source: "/proc", Destination: "/hp", KernelFS: true}, ""},
		{"host sys allowed", Volume{Source: "/sys", Destination: "/hs", ReadOnly: true, KernelFS: true}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := (&Spec{Volumes: []Volume{tc.v}}).Check()
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v, want one with %q", err, tc.err)
			}
		})
	}
}
