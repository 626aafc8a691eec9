package integration

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hostLinks returns the host's loopback and physical links (those with a
// device), with whether each is up: links that concurrent tests' pods and
// bridges do not make or remove.
func hostLinks(t *testing.T) map[string]bool {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, i := range ifs {
		if _, err := os.Stat("/sys/class/net/" + i.Name + "/device"); err == nil || i.Name == "lo" {
			out[i.Name] = i.Flags&net.FlagUp != 0
		}
	}
	if len(out) == 0 {
		t.Fatal("no host links")
	}
	return out
}

// A pod on the host's network is in the host's network and UTS namespaces
// (and its IPC one with --ipc host), its execs too; it has no address and
// no veth. Removing it, with rm and with gc after a kill, leaves the host's
// network as it was: links, their state, the namespace.
func TestHostNetworkPod(t *testing.T) {
	e := newEnv(t)
	hostNet, hostUTS, hostIPC := nsIno(t, "/proc/self/ns/net"), nsIno(t, "/proc/self/ns/uts"), nsIno(t, "/proc/self/ns/ipc")
	links := hostLinks(t)
	hostname, _ := os.Hostname()

	name, doc := e.create("--network", "host", "--ipc", "host")
	if !doc.HostNetwork || !doc.HostIPC || doc.Network != nil {
		t.Errorf("inspect: hostNetwork %v hostIPC %v network %+v", doc.HostNetwork, doc.HostIPC, doc.Network)
	}
	pause := fmt.Sprintf("/proc/%d/ns/", doc.Pid)
	if nsIno(t, pause+"net") != hostNet || nsIno(t, pause+"uts") != hostUTS || nsIno(t, pause+"ipc") != hostIPC {
		t.Errorf("pause is not in the host's network, UTS and IPC namespaces")
	}
	if nsIno(t, pause+"pid") == nsIno(t, "/proc/self/ns/pid") || nsIno(t, pause+"mnt") == nsIno(t, "/proc/self/ns/mnt") {
		t.Errorf("pause shares the host's PID or mount namespace")
	}
	if got := strings.TrimSpace(e.must("exec", name, "--", "cat", "/proc/sys/kernel/hostname")); got != hostname {
		t.Errorf("hostname in the pod: %q, want the host's %q", got, hostname)
	}
	if got := strings.TrimSpace(e.must("exec", name, "--", "readlink", "/proc/self/ns/net")); got != fmt.Sprintf("net:[%d]", hostNet) {
		t.Errorf("exec's network namespace: %s, want the host's %d", got, hostNet)
	}
	// Both ways of removing a pod: rm, and gc of one whose pause was killed.
	e.must("rm", "-f", name)
	name2, doc2 := e.create("--network", "host")
	if doc2.HostIPC || nsIno(t, fmt.Sprintf("/proc/%d/ns/ipc", doc2.Pid)) == hostIPC {
		t.Errorf("a pod without --ipc host is in the host's IPC namespace")
	}
	syscall.Kill(doc2.Pid, syscall.SIGKILL)
	waitDead(doc2.Pid, doc2.StartTime, 5*time.Second)
	e.must("gc")
	e.must("rm", "-f", name2)

	if nsIno(t, "/proc/self/ns/net") != hostNet {
		t.Fatal("the host's network namespace changed")
	}
	after := hostLinks(t)
	for l, up := range links {
		if a, ok := after[l]; !ok || a != up {
			t.Errorf("host link %s: was there (up %v), now there %v (up %v)", l, up, ok, a)
		}
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		t.Fatal(err)
	}
}

// A pod's sysctls are set in its own namespaces, not the host's; a sysctl
// that is not the pod's to set is refused with one line naming it, exit
// 125, and leaves nothing.
func TestPodSysctls(t *testing.T) {
	e := newEnv(t)
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	hostShm, hostMq := read("/proc/sys/kernel/shm_rmid_forced"), read("/proc/sys/fs/mqueue/msg_max")
	hostPort := read("/proc/sys/net/ipv4/ip_unprivileged_port_start")
	name, _ := e.create("--sysctl", "kernel.shm_rmid_forced=1", "--sysctl", "fs/mqueue/msg_max=77",
		"--sysctl", "net.ipv4.ip_unprivileged_port_start=99", "--sysctl", "kernel.domainname=podsb.test")
	for p, want := range map[string]string{"kernel/shm_rmid_forced": "1", "fs/mqueue/msg_max": "77",
		"net/ipv4/ip_unprivileged_port_start": "99", "kernel/domainname": "podsb.test"} {
		if got := strings.TrimSpace(e.must("exec", name, "--", "cat", "/proc/sys/"+p)); got != want {
			t.Errorf("%s in the pod: %q, want %q", p, got, want)
		}
	}
	if read("/proc/sys/kernel/shm_rmid_forced") != hostShm || read("/proc/sys/fs/mqueue/msg_max") != hostMq ||
		read("/proc/sys/net/ipv4/ip_unprivileged_port_start") != hostPort {
		t.Error("a pod's sysctl changed the host's")
	}

	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--sysctl", "kernel.panic=1"}, "sysctl kernel.panic: not namespaced"},
		{[]string{"--sysctl", "vm.swappiness=1"}, "sysctl vm.swappiness: not namespaced"},
		{[]string{"--sysctl", "net/ipv4/../../kernel/panic=1"}, "not a sysctl name"},
		{[]string{"--sysctl", "net.ipv4.ip_forward=1\nx"}, "has a newline"},
		{[]string{"--sysctl", "net.ipv4.ip_forward"}, "want KEY=VALUE"},
		{[]string{"--network", "host", "--sysctl", "net.ipv4.ip_forward=1"}, "sysctl net.ipv4.ip_forward: the pod uses the host's network namespace"},
		{[]string{"--ipc", "host", "--sysctl", "kernel.shm_rmid_forced=1"}, "sysctl kernel.shm_rmid_forced: the pod uses the host's IPC namespace"},
		{[]string{"--network", "host", "--hostname", "x"}, "--hostname"},
		{[]string{"--ipc", "none"}, `--ipc "none"`},
		{[]string{"--sysctl", "net.ipv4.no_such_sysctl=1"}, "no_such_sysctl"},
	} {
		n := e.name()
		r := e.run(append(append([]string{"create"}, tc.args...), n)...)
		if r.code != 125 || !strings.Contains(r.stderr, tc.msg) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("create %q: exit %d, stderr %q; want 125 and %q", tc.args, r.code, r.stderr, tc.msg)
		}
		if _, err := os.Lstat(filepath.Join(e.root, n)); err == nil {
			t.Errorf("create %q left %s", tc.args, n)
		}
	}
}
