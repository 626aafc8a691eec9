package integration

import (
	"strings"
	"testing"
	"time"
)

// rawSocket opens a raw ICMP socket in the pod: it needs CAP_NET_RAW.
var rawSocket = []string{"python3", "-c", "import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); print('raw ok')"}

// TestCapDropBindsExecAndRun is issue 11's: a capability dropped at create
// binds every later exec and run in the pod, through exec's fast path and
// through Go, unless the command adds it back.
func TestCapDropBindsExecAndRun(t *testing.T) {
	e := newEnv(t)
	pod, _ := e.create("--cap-drop", "net_raw")
	modes := []bool{false}
	if buildFast {
		modes = append(modes, true)
	}
	for _, fast := range modes {
		for _, tc := range []struct {
			args []string
			ok   bool
		}{
			{append([]string{"exec", pod, "--"}, rawSocket...), false},
			{append([]string{"exec", "-i", pod, "--"}, rawSocket...), false},
			{append([]string{"exec", "--cap-add", "net_raw", pod, "--"}, rawSocket...), true},
			{append([]string{"exec", "--cap-add", "all", pod, "--"}, rawSocket...), true},
			{append([]string{"run", pod, "--"}, rawSocket...), false},
			{append([]string{"run", "--cap-add", "NET_RAW", pod, "--"}, rawSocket...), true},
		} {
			r := e.runFast(fast, "", tc.args...)
			if got := r.code == 0 && strings.Contains(r.stdout, "raw ok"); got != tc.ok {
				t.Errorf("fast path %v: %s: raw socket opened %v, want %v (exit %d, %s)", fast, strings.Join(tc.args[:len(tc.args)-len(rawSocket)], " "), got, tc.ok, r.code, r.stderr)
			}
		}
		// The bounding set is cut too: no process of the pod can regain it.
		st := e.runFast(fast, "", "exec", pod, "--", "cat", "/proc/self/status")
		if got := procStatusField(st.stdout, "CapBnd"); got != "00000000a80405fb" {
			t.Errorf("fast path %v: exec's CapBnd %s, want the default without NET_RAW", fast, got)
		}
	}
	// A detached exec too.
	e.must("exec", "-d", pod, "--", "sh", "-c", "cat /proc/self/status > /tmp/st")
	for i := 0; ; i++ {
		out := e.run("exec", pod, "--", "cat", "/tmp/st").stdout
		if strings.Contains(out, "CapBnd") {
			if got := procStatusField(out, "CapBnd"); got != "00000000a80405fb" {
				t.Errorf("exec -d: CapBnd %s", got)
			}
			break
		}
		if i == 50 {
			t.Fatal("exec -d wrote no status")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A pod of the defaults still has NET_RAW.
	def, _ := e.create()
	if out := e.must(append([]string{"exec", def, "--"}, rawSocket...)...); !strings.Contains(out, "raw ok") {
		t.Errorf("default pod: %s", out)
	}
}
