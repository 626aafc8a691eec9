package cri

import (
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podsb/podsb/rootfs"
	"github.com/podsb/podsb/sandbox"
)

// TestMountModes checks the CRI's propagation and read-only modes as
// podsb volumes, the refused combinations (each naming the field), and
// their round trip to ContainerStatus.
func TestMountModes(t *testing.T) {
	const (
		slave  = runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
		shared = runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL
	)
	for _, tc := range []struct {
		name string
		m    *runtimeapi.Mount
		want sandbox.Volume // ignored when err is set
		err  string
	}{
		{"rw", &runtimeapi.Mount{}, sandbox.Volume{Propagation: rootfs.PropagationPrivate}, ""},
		{"ro", &runtimeapi.Mount{Readonly: true, Propagation: slave}, sandbox.Volume{ReadOnly: true, NonRecursive: true, Propagation: rootfs.PropagationSlave}, ""},
		{"rro", &runtimeapi.Mount{Readonly: true, RecursiveReadOnly: true}, sandbox.Volume{ReadOnly: true, Propagation: rootfs.PropagationPrivate}, ""},
		{"rshared", &runtimeapi.Mount{Propagation: shared}, sandbox.Volume{Propagation: rootfs.PropagationShared}, ""},
		{"rro rw", &runtimeapi.Mount{RecursiveReadOnly: true}, sandbox.Volume{}, "recursive_read_only needs readonly"},
		{"rro rslave", &runtimeapi.Mount{Readonly: true, RecursiveReadOnly: true, Propagation: slave}, sandbox.Volume{}, "recursive_read_only needs propagation"},
		{"rro rshared", &runtimeapi.Mount{Readonly: true, RecursiveReadOnly: true, Propagation: shared}, sandbox.Volume{}, "recursive_read_only needs propagation"},
		{"unknown", &runtimeapi.Mount{Propagation: 7}, sandbox.Volume{}, "propagation 7: unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.m.ContainerPath, tc.want.Destination = "/x", "/x"
			v := sandbox.Volume{Destination: "/x", ReadOnly: tc.m.GetReadonly()}
			err := mountModes(tc.m, &v)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || v != tc.want {
				t.Fatalf("volume %+v, %v; want %+v", v, err, tc.want)
			}
			back := mountOf(v)
			if back.GetPropagation() != tc.m.GetPropagation() || back.GetReadonly() != tc.m.GetReadonly() || back.GetRecursiveReadOnly() != tc.m.GetRecursiveReadOnly() {
				t.Errorf("status mount %v, want the modes of %v", back, tc.m)
			}
		})
	}
}

// TestImageVolumeOf checks the CRI's image volumes as podsb volumes (the
// image named by its reference until CreateContainer resolves it), the
// refused ones (each naming the mount and field), and ContainerStatus's
// mount, which names the image by its ID.
func TestImageVolumeOf(t *testing.T) {
	img := &runtimeapi.ImageSpec{Image: "busybox:1"}
	v, err := volumeOf(&runtimeapi.Mount{ContainerPath: "/mnt/i", Readonly: true, Image: img, ImageSubPath: "etc"})
	if err != nil || v.Image == nil || v.Image.ID != "busybox:1" || v.SubPath != "etc" || !v.ReadOnly || v.Source != "" ||
		v.Propagation != rootfs.PropagationPrivate {
		t.Fatalf("image volume: %+v %v", v, err)
	}
	v.Image = &rootfs.ImageRoot{ID: "sha256:ab", Layers: []string{"/l"}}
	if m := mountOf(v); m.GetHostPath() != "" || m.GetImage().GetImageRef() != "sha256:ab" || m.GetImageSubPath() != "etc" || !m.GetReadonly() {
		t.Errorf("ContainerStatus mount of an image volume: %v", m)
	}
	for _, tc := range []struct {
		name string
		m    *runtimeapi.Mount
		err  string
	}{
		{"writable", &runtimeapi.Mount{ContainerPath: "/mnt/i", Image: img}, "mount /mnt/i: an image volume needs readonly"},
		{"relative", &runtimeapi.Mount{ContainerPath: "mnt", Readonly: true, Image: img}, "container path \"mnt\" is not absolute"},
		{"host path too", &runtimeapi.Mount{ContainerPath: "/mnt/i", Readonly: true, Image: img, HostPath: "/srv"}, "host_path and image both set"},
		{"propagation", &runtimeapi.Mount{ContainerPath: "/mnt/i", Readonly: true, Image: img,
			Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}, "needs propagation PROPAGATION_PRIVATE"},
		{"ID-mapped", &runtimeapi.Mount{ContainerPath: "/mnt/i", Readonly: true, Image: img,
			UidMappings: []*runtimeapi.IDMapping{{HostId: 1000, Length: 1}}}, "ID-mapped"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := volumeOf(tc.m); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("volumeOf: %v, want %q", err, tc.err)
			}
		})
	}
}
