package integration

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// attachSteps are the steps of network.Attach (through Config.Trace) for
// the first pod of a network, which makes the bridge: each one netlink or
// nftables change of the host or the pod.
var attachSteps = []string{
	"bridge: create", "bridge: alias", "bridge: address", "bridge: localnet guard",
	"bridge: route_localnet", "bridge: rename", "bridge: up",
	"veth: create", "veth: up", "pod: address", "pod: eth0 up", "pod: route", "publish",
}

// A bridged create killed with SIGKILL after any step of wiring its network
// (it publishes a port, so that the NAT rules are a step too): network
// prune then rm -f, or gc, leave no bridge (under its name or its temporary
// one), veth, nftables table or network state, and a later bridged create
// works; so does one made while the killed pod remains.
func TestBridgedCreateKilledBetweenNetlinkSteps(t *testing.T) {
	for _, step := range attachSteps {
		for _, cleanup := range []string{"rm", "gc", "next create"} {
			t.Run(fmt.Sprintf("%s/%s", step, cleanup), func(t *testing.T) {
				e, nargs := netEnv(t)
				args := append(slices.Clip(nargs), "-p", fmt.Sprintf("%d:80", 20000+rand.IntN(20000)))
				name := e.name()
				e.killCreateAt(t, step, name, args...)
				// The state names pause from before the network's
				// steps: the leak checks look for it.
				e.inspect(name)
				switch cleanup {
				case "rm":
					// prune leaves alone what the half-made pod holds
					// (its state exists); rm -f then frees it.
					e.must("network", "prune")
					e.must("rm", "-f", name)
				case "gc":
					e.must("gc")
				case "next create":
					// Another pod, with the killed one still there,
					// finds the bridge usable (completing or remaking
					// it) and reaches the gateway through it.
					next, d := e.create(nargs...)
					if r := e.run("exec", next, "--", "ping", "-c1", "-W2", d.Network.Gateway.String()); r.code != 0 {
						t.Errorf("ping the gateway from %s: %s%s", next, r.stdout, r.stderr)
					}
					e.must("rm", "-f", "--all")
				}
				checkNoLeaks(t, e.root, e.names, e.pids)
				checkNoNetworkLeaks(t, e.root, e.bridge, e.names)
				e.must(append(append([]string{"create"}, args...), name)...)
				e.must("rm", name)
			})
		}
	}
}

// network prune keeps only what pods hold: a lease whose name is a
// directory of the state root without the pod marker (made by anyone but
// create) is a dead pod's, and is released, as for a name with no
// directory at all.
func TestPruneNeedsThePodMarker(t *testing.T) {
	e, nargs := netEnv(t)
	live, d := e.create(nargs...)
	gw := d.Network.Gateway
	leases := filepath.Join(e.root, ".network", "leases")
	for i, name := range []string{"unmarked", "gone"} {
		addr := gw.Next().Next().Next()
		for range 10 * (i + 1) {
			addr = addr.Next()
		}
		if err := os.WriteFile(filepath.Join(leases, addr.String()), []byte(name), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(e.root, "unmarked"), 0o700); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(filepath.Join(e.root, "unmarked"))
	e.must("network", "prune")
	ents, err := os.ReadDir(leases)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		var held []string
		for _, ent := range ents {
			b, _ := os.ReadFile(filepath.Join(leases, ent.Name()))
			held = append(held, ent.Name()+"="+string(b))
		}
		t.Errorf("leases after prune: %v, want only %s's", held, live)
	}
	e.must("rm", live)
}
