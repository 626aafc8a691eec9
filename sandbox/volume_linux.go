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
// Plan cannot bind itself (rootfs.OpenVolume), keyed as in Spec.Shared.
func (r *containerStart) openVolumes(context.Context) error {
	for _, v := range r.spec.Volumes {
		if v.Propagation != rootfs.PropagationShared {
			continue
		}
		f, err := rootfs.OpenVolume(v)
		if err != nil {
			return invalid(err)
		}
		r.closeLater(f)
		if r.volumes == nil {
			r.volumes = map[string]*os.File{}
		}
		r.volumes[rootfs.VolumeKey(v)] = f
	}
	return nil
}
