package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/vishvananda/netlink"

	"github.com/podsb/podsb/internal/testenv"
	"github.com/podsb/podsb/sandbox"
)

// Pod.Stop ends the pod's processes and frees its address and ports but
// keeps the pod; Start runs it again on the same address, with the same
// resolv.conf. A 64-character name (a CRI pod ID) is a pod name.
func TestLibraryStopStart(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	root := t.TempDir()
	bridge := fmt.Sprintf("ps%06x", rand.IntN(1<<24))
	subnet, err := sandbox.ParseSubnet(fmt.Sprintf("10.%d.%d.0/24", 200+rand.IntN(50), rand.IntN(256)))
	if err != nil {
		t.Fatal(err)
	}
	name := strings.Repeat(fmt.Sprintf("%08x", rand.Uint32()), 8)
	port := sandbox.Port{HostPort: uint16(20000 + rand.IntN(20000)), PodPort: 80, Proto: "tcp"}
	resolv := "nameserver 10.96.0.10\nsearch svc.cluster.local\n"
	pod, err := sandbox.Create(ctx, sandbox.Config{Root: root, Name: name, Hostname: "web",
		Network: &sandbox.NetworkConfig{Bridge: bridge, Subnet: subnet, Publish: []sandbox.Port{port}}, ResolvConf: resolv})
	if err != nil {
		t.Fatal(err)
	}
	pids := map[int]uint64{}
	t.Cleanup(func() {
		if p, err := sandbox.Load(root, name); err == nil {
			p.Remove(ctx, sandbox.RemoveOptions{Force: true})
		}
		checkNoLeaks(t, root, map[string]bool{name: true}, pids)
		checkNoNetworkLeaks(t, root, bridge, map[string]bool{name: true})
	})
	st := pod.State()
	pids[st.Pid] = st.StartTime
	ip := st.Network.Addr
	veth := st.Network.Veth
	readResolv := func(p *sandbox.Pod) string {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/root/etc/resolv.conf", p.PID()))
		return string(b)
	}
	if got := readResolv(pod); got != resolv {
		t.Errorf("resolv.conf %q", got)
	}

	for range 2 { // a second Stop does nothing
		if err := pod.Stop(ctx, sandbox.RemoveOptions{}); err != nil {
			t.Fatalf("stop: %v", err)
		}
	}
	p, err := sandbox.Load(root, name)
	if err != nil {
		t.Fatalf("load after stop: %v", err)
	}
	if p.Status() != specs.StateStopped || p.PID() != 0 {
		t.Errorf("after stop: %v, pid %d", p.Status(), p.PID())
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", st.Pid)); err == nil {
		t.Errorf("pause %d still there (or a zombie)", st.Pid)
	}
	if _, err := netlink.LinkByName(veth); err == nil {
		t.Errorf("veth %s kept by a stopped pod", veth)
	}

	if err := p.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	p, _ = sandbox.Load(root, name)
	st2 := p.State()
	pids[st2.Pid] = st2.StartTime
	if st2.Status != specs.StateRunning || st2.Network == nil || st2.Network.Addr != ip || st2.Hostname != "web" {
		t.Errorf("after start: %+v", st2)
	}
	if got := readResolv(p); got != resolv {
		t.Errorf("resolv.conf after start %q", got)
	}
	if err := p.Remove(ctx, sandbox.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
}
