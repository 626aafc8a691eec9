package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	"github.com/podsb/podsb/internal/testenv"
	"github.com/podsb/podsb/sandbox"
)

// RemoveOptions.KeepNetwork leaves the bridge network for the next pod
// when the last one stops or goes (podsb cri's pods come and go one at a
// time); without it, and with PruneNetwork, the network goes.
func TestKeepNetwork(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	root := t.TempDir()
	bridge := fmt.Sprintf("pk%06x", rand.IntN(1<<24))
	net0 := &sandbox.NetworkConfig{Bridge: bridge, Subnet: netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.0/24", 200+rand.IntN(50), rand.IntN(256)))}
	t.Cleanup(func() {
		sandbox.PruneNetwork(root)
		if _, err := net.InterfaceByName(bridge); err == nil {
			t.Errorf("leaked bridge %s", bridge)
		}
	})
	bridgeUp := func() bool { _, err := net.InterfaceByName(bridge); return err == nil }

	p, err := sandbox.Create(ctx, sandbox.Config{Root: root, Name: "one", Network: net0})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(ctx, sandbox.RemoveOptions{KeepNetwork: true}); err != nil {
		t.Fatal(err)
	}
	if !bridgeUp() {
		t.Error("the last pod's stop with KeepNetwork removed the bridge")
	}
	if err := p.Remove(ctx, sandbox.RemoveOptions{KeepNetwork: true}); err != nil {
		t.Fatal(err)
	}
	if !bridgeUp() {
		t.Error("the last pod's removal with KeepNetwork removed the bridge")
	}
	// The next pod gets the kept network, and its address.
	p, err = sandbox.Create(ctx, sandbox.Config{Root: root, Name: "two", Network: net0})
	if err != nil {
		t.Fatal(err)
	}
	if st := p.State(); st.Network == nil || st.Network.Bridge != bridge {
		t.Errorf("second pod's network: %+v", st.Network)
	}
	if err := p.Remove(ctx, sandbox.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if bridgeUp() {
		t.Error("the last pod's removal without KeepNetwork left the bridge")
	}
	// Kept, then pruned.
	p, err = sandbox.Create(ctx, sandbox.Config{Root: root, Name: "three", Network: net0})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Remove(ctx, sandbox.RemoveOptions{KeepNetwork: true}); err != nil {
		t.Fatal(err)
	}
	if err := sandbox.PruneNetwork(root); err != nil {
		t.Fatal(err)
	}
	if bridgeUp() {
		t.Error("PruneNetwork left an unused network")
	}
}
