package sandbox

import (
	"errors"
	"testing"

	"github.com/podsb/podsb/rootfs"
)

// TestCheckSharedVolumes checks that only a privileged container may have
// an rshared volume: through it its mounts reach the host.
func TestCheckSharedVolumes(t *testing.T) {
	v := Volume{Source: "/srv", Destination: "/srv", Propagation: rootfs.PropagationShared}
	cc := ContainerConfig{Volumes: []Volume{v}}
	if err := checkSharedVolumes(&cc); !errors.Is(err, ErrInvalid) {
		t.Errorf("unprivileged rshared volume: %v, want ErrInvalid", err)
	}
	cc.Security.Privileged = true
	if err := checkSharedVolumes(&cc); err != nil {
		t.Errorf("privileged rshared volume: %v", err)
	}
	cc = ContainerConfig{Volumes: []Volume{{Source: "/srv", Destination: "/srv", Propagation: rootfs.PropagationSlave}}}
	if err := checkSharedVolumes(&cc); err != nil {
		t.Errorf("unprivileged rslave volume: %v", err)
	}
}
