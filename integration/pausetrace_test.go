package integration

import (
	"strings"
	"testing"
)

// traceScript tries to trace PID 1 (pause) and a child of its own, with
// ptrace(2) through ctypes, and prints each outcome.
const traceScript = `
import ctypes, os, subprocess
libc = ctypes.CDLL(None, use_errno=True)
PTRACE_ATTACH, PTRACE_DETACH, PTRACE_SEIZE = 16, 17, 0x4206
def trace(pid, req):
    r = libc.ptrace(req, pid, 0, 0)
    err = ctypes.get_errno()
    if r == 0:
        libc.ptrace(PTRACE_DETACH, pid, 0, 0)
        return "ok"
    return os.strerror(err)
print("pause seize:", trace(1, PTRACE_SEIZE))
print("pause attach:", trace(1, PTRACE_ATTACH))
child = subprocess.Popen(["sleep", "10"])
print("own child seize:", trace(child.pid, PTRACE_SEIZE))
child.kill()
print("pause comm:", open("/proc/1/comm").read().strip())
`

// TestPauseNotTraceable checks that root in a pod cannot ptrace pause, its
// PID 1 (which has the same capabilities), while the pod's own commands
// stay traceable by each other, and pause still works: exec, top, rm.
func TestPauseNotTraceable(t *testing.T) {
	e := newEnv(t)
	name, _ := e.create()
	r := e.run("exec", name, "--", "python3", "-c", traceScript)
	want := "pause seize: Operation not permitted\npause attach: Operation not permitted\n" +
		"own child seize: ok\npause comm: pause\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("in the pod: %+v\nwant stdout %q", r, want)
	}
	if out := e.must("top", name); !strings.Contains(out, "pause") {
		t.Errorf("podsb top:\n%s", out)
	}
	if r := e.run("exec", "-d", name, "--", "sleep", "100"); r.code != 0 {
		t.Errorf("exec -d: %+v", r)
	}
	if out := e.must("rm", name); out != name+"\n" {
		t.Errorf("rm: %q", out)
	}
}
