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
