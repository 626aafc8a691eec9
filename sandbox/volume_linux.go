package sandbox

import (
	"context"
	"os"

	"github.com/podsb/podsb/rootfs"
)

// checkSharedVolumes refuses a volume of propagation rshared in a
// container that is not privileged: through it the container's mounts
// reach the host's tree (kubelet and containerd allow it to privileged
// containers alone).
func checkSharedVolumes(cc *ContainerConfig) error {
	for _, v := range cc.Volumes {
		if v.Propagation == rootfs.PropagationShared && !cc.Security.Privileged {
			return invalidf("volume %s: propagation %s needs a privileged container: its mounts would reach the host", v, v.Propagation)
		}
	}
	return nil
}

// openVolumes opens, on the host, the detached trees of the volumes that
// Plan cannot bind itself, keyed as in Spec.Shared: rshared volumes
// (rootfs.OpenVolume) and image volumes (rootfs.OpenImageVolume).
func (r *containerStart) openVolumes(context.Context) error {
	for _, v := range r.spec.Volumes {
		var f *os.File
		var err error
		isDir := true
		switch {
		case r.userns != nil && (v.Image != nil || v.IDMap):
			f, isDir, err = r.openVolumeIn(v)
		case v.Image != nil:
			f, isDir, err = rootfs.OpenImageVolume(v)
		case v.Propagation == rootfs.PropagationShared:
			f, err = rootfs.OpenVolume(v)
		default:
			continue
		}
		if err != nil {
			return invalid(err)
		}
		r.closeLater(f)
		if r.volumes == nil {
			r.volumes = map[string]*os.File{}
		}
		r.volumes[rootfs.VolumeKey(v)] = f
		if !isDir {
			if r.spec.SharedFiles == nil {
				r.spec.SharedFiles = map[string]bool{}
			}
			r.spec.SharedFiles[rootfs.VolumeKey(v)] = true
		}
	}
	return nil
}
