package cri

import (
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podsb/podsb/rootfs"
	"github.com/podsb/podsb/sandbox"
)

// propagations maps the CRI's mount propagations to podsb's.
var propagations = map[runtimeapi.MountPropagation]string{
	runtimeapi.MountPropagation_PROPAGATION_PRIVATE:           rootfs.PropagationPrivate,
	runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER: rootfs.PropagationSlave,
	runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:     rootfs.PropagationShared,
}

// mountModes sets v's propagation and read-only modes from m: readonly
// alone makes the volume's own mount read-only (the mounts below the
// source stay as they are), with recursive_read_only every mount below it
// too. A recursively read-only volume must be read-only and may not
// receive mounts from the host (they would be writable), as the CRI says.
func mountModes(m *runtimeapi.Mount, v *sandbox.Volume) error {
	prop, ok := propagations[m.GetPropagation()]
	if !ok {
		return fmt.Errorf("mount %s: propagation %s: unknown", v.Destination, m.GetPropagation())
	}
	v.Propagation = prop
	v.NonRecursive = v.ReadOnly && !m.GetRecursiveReadOnly()
	if m.GetRecursiveReadOnly() {
		if !m.GetReadonly() {
			return fmt.Errorf("mount %s: recursive_read_only needs readonly", v.Destination)
		}
		if prop != rootfs.PropagationPrivate {
			return fmt.Errorf("mount %s: recursive_read_only needs propagation PROPAGATION_PRIVATE, not %s", v.Destination, m.GetPropagation())
		}
	}
	return nil
}

// mountOf is the CRI mount of a volume, for ContainerStatus.
func mountOf(v sandbox.Volume) *runtimeapi.Mount {
	m := &runtimeapi.Mount{
		ContainerPath: v.Destination, HostPath: v.Source, Readonly: v.ReadOnly,
		RecursiveReadOnly: v.ReadOnly && !v.NonRecursive,
	}
	for p, name := range propagations {
		if name == v.Propagation {
			m.Propagation = p
		}
	}
	return m
}

// checkBidirectional refuses a mount of propagation BIDIRECTIONAL in a
// container that is not privileged: the container's mounts would reach
// the host (kubelet and containerd refuse it too).
func checkBidirectional(run *runConfig) error {
	if run.Privileged {
		return nil
	}
	for _, v := range run.Volumes {
		if v.Propagation == rootfs.PropagationShared {
			return fmt.Errorf("mount %s: propagation PROPAGATION_BIDIRECTIONAL needs linux.security_context.privileged", v.Destination)
		}
	}
	return nil
}
