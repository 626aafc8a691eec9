package integration

import (
	"fmt"
	"math/rand/v2"
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

// A bridged create killed with SIGKILL between any two steps of wiring its
// network: rm -f, gc or network prune leave no bridge (under its name or
// its temporary one), veth, nftables table or network state, and a later
// bridged create works. The port is published so that the NAT rules are
// a step too.
func TestBridgedCreateKilledBetweenNetlinkSteps(t *testing.T) {
	for _, step := range attachSteps {
		for _, cleanup := range []string{"rm", "gc", "prune"} {
			t.Run(fmt.Sprintf("%s/%s", step, cleanup), func(t *testing.T) {
				e, args := netEnv(t)
				args = append(args, "-p", fmt.Sprintf("%d:80", 20000+rand.IntN(20000)))
				name := e.name()
				e.killCreateAt(t, step, name, args...)
				// The state names pause from before the network's
				// steps: the leak checks look for it.
				e.inspect(name)
				switch cleanup {
				case "rm":
					e.must("rm", "-f", name)
				case "gc":
					e.must("gc")
				case "prune":
					// prune leaves alone what the half-made pod holds
					// (its state exists); rm then frees it.
					e.must("network", "prune")
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
