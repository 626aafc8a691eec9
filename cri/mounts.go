package cri

import (
	"fmt"
	"path/filepath"

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
	if v.Image != nil {
		m.HostPath = ""
		m.Image = &runtimeapi.ImageSpec{Image: v.Image.ID, ImageRef: v.Image.ID}
		m.ImageSubPath = v.SubPath
		m.RecursiveReadOnly = false
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

// imageVolumeOf is the volume of a mount of an image: read-only, private,
// the image named by its reference until CreateContainer resolves it in
// the store (resolveImageVolumes).
func imageVolumeOf(m *runtimeapi.Mount, v sandbox.Volume) (sandbox.Volume, error) {
	switch {
	case v.Destination == "" || !filepath.IsAbs(v.Destination):
		return v, fmt.Errorf("mount of image %s: container path %q is not absolute", m.GetImage().GetImage(), v.Destination)
	case !m.GetReadonly():
		return v, fmt.Errorf("mount %s: an image volume needs readonly", v.Destination)
	case m.GetPropagation() != runtimeapi.MountPropagation_PROPAGATION_PRIVATE:
		return v, fmt.Errorf("mount %s: an image volume needs propagation PROPAGATION_PRIVATE", v.Destination)
	case m.GetHostPath() != "":
		return v, fmt.Errorf("mount %s: host_path and image both set", v.Destination)
	case len(m.GetUidMappings()) > 0 || len(m.GetGidMappings()) > 0:
		return v, fmt.Errorf("mount %s: ID-mapped mounts are not supported by podsb yet", v.Destination)
	}
	v.Source = ""
	v.Propagation = rootfs.PropagationPrivate
	v.Image = &rootfs.ImageRoot{ID: m.GetImage().GetImage()}
	v.SubPath = m.GetImageSubPath()
	return v, nil
}

// resolveImageVolumes finds the images of rec's image volumes in the
// store, held by the container as its own image is, and checks that each
// opens (its sub path is in the image).
func (s *Server) resolveImageVolumes(rec *containerRecord) error {
	for i := range rec.Run.Volumes {
		v := &rec.Run.Volumes[i]
		if v.Image == nil {
			continue
		}
		ref := v.Image.ID
		root, err := s.images.RootOf(ref, s.holder(rec))
		if err != nil {
			return grpcError("container "+rec.Name+": mount "+v.Destination+": image "+ref, err)
		}
		v.Image = &rootfs.ImageRoot{ID: root.ID, Layers: root.Layers}
		if err := (&rootfs.Spec{Volumes: []rootfs.Volume{*v}}).Check(); err != nil {
			return invalidf("container %s: mount %s: %v", rec.Name, v.Destination, err)
		}
		f, _, err := rootfs.OpenImageVolume(*v)
		if err != nil {
			return invalidf("container %s: mount %s: image_sub_path: %v", rec.Name, v.Destination, err)
		}
		f.Close()
	}
	return nil
}

// releaseImageVolumes drops rec's holds on the images of its image
// volumes.
func (s *Server) releaseImageVolumes(rec *containerRecord) {
	for _, v := range rec.Run.Volumes {
		// Unresolved (a failed create): its ID is still the config's
		// reference, which may name the container's own image. The
		// container's own image: dropContainer releases it.
		if v.Image == nil || len(v.Image.Layers) == 0 || v.Image.ID == rec.ImageRef {
			continue
		}
		if err := s.images.Release(v.Image.ID, s.holder(rec)); err != nil {
			s.log.Warn("release image of a volume", "container", rec.ID, "image", v.Image.ID, "err", err)
		}
	}
}
