package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// defaultCaps is Docker's (and the OCI runtimes' default configuration's)
// set of 14: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP
// NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
const defaultCaps = "00000000a80425fb"

// procStatusField returns a field of /proc/PID/status text.
func procStatusField(status, field string) string {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func TestDefaultPrivileges(t *testing.T) {
	e := newEnv(t)
	pod, d := e.create()
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.Pid))
	for _, where := range []struct {
		name   string
		status string
	}{
		{"pause", string(b)},
		{"exec", e.must("exec", pod, "--", "cat", "/proc/self/status")},
		{"run", e.must("run", pod, "--", "cat", "/proc/self/status")},
	} {
		for field, want := range map[string]string{"CapEff": defaultCaps, "CapPrm": defaultCaps, "CapBnd": defaultCaps, "CapInh": "0000000000000000", "CapAmb": "0000000000000000", "NoNewPrivs": "1"} {
			if got := procStatusField(where.status, field); got != want {
				t.Errorf("%s: %s %s, want %s", where.name, field, got, want)
			}
		}
	}
	// A non-root user keeps the bounding set and nothing effective.
	st := e.must("exec", "-u", "nobody", pod, "--", "cat", "/proc/self/status")
	if procStatusField(st, "CapEff") != "0000000000000000" || procStatusField(st, "CapBnd") != defaultCaps {
		t.Errorf("nobody: CapEff %s CapBnd %s", procStatusField(st, "CapEff"), procStatusField(st, "CapBnd"))
	}
	// A blocked privilege: no CAP_SYS_ADMIN, so no mount.
	if r := e.run("exec", pod, "--", "mount", "-t", "tmpfs", "none", "/mnt"); r.code == 0 {
		t.Errorf("mount succeeded without CAP_SYS_ADMIN")
	}
}

func TestCapAddDropPrivileged(t *testing.T) {
	e := newEnv(t)
	pod, _ := e.create()
	st := e.must("exec", "--cap-drop", "all", "--cap-add", "net_admin", pod, "--", "cat", "/proc/self/status")
	if got := procStatusField(st, "CapEff"); got != "0000000000001000" {
		t.Errorf("--cap-drop all --cap-add net_admin: CapEff %s", got)
	}
	st = e.must("exec", "--cap-drop", "CAP_NET_RAW,chown", pod, "--", "cat", "/proc/self/status")
	if got := procStatusField(st, "CapEff"); got != "00000000a80405fa" {
		t.Errorf("--cap-drop NET_RAW,CHOWN: CapEff %s", got)
	}
	mine, _ := os.ReadFile("/proc/self/status")
	st = e.must("exec", "--privileged", pod, "--", "cat", "/proc/self/status")
	if got := procStatusField(st, "CapEff"); got != procStatusField(string(mine), "CapEff") || procStatusField(st, "NoNewPrivs") != "0" {
		t.Errorf("--privileged: CapEff %s NoNewPrivs %s", got, procStatusField(st, "NoNewPrivs"))
	}
	wantFailure(t, e.run("exec", "--cap-add", "nosuch", pod, "--", "true"), "no such capability")
	wantFailure(t, e.run("create", "--cap-drop", "nosuch", e.name()), "no such capability")
	// A privileged pod: pause keeps everything and /proc is not masked.
	priv, d := e.create("--privileged")
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.Pid))
	if got := procStatusField(string(b), "CapEff"); got != procStatusField(string(mine), "CapEff") {
		t.Errorf("privileged pause: CapEff %s", got)
	}
	if r := e.run("exec", "--privileged", priv, "--", "sh", "-c", "echo 1 > /proc/sys/kernel/printk_ratelimit 2>&1 && echo writable"); !strings.Contains(r.stdout, "writable") {
		t.Errorf("privileged pod's /proc/sys: %+v", r)
	}
}

func TestMaskedProc(t *testing.T) {
	e := newEnv(t)
	pod, _ := e.create()
	script := `for f in /proc/timer_list /proc/sched_debug /proc/keys /proc/latency_stats /proc/interrupts; do [ -e $f ] && echo "$f $(wc -c < $f)"; done
ls /sys/firmware | wc -l
echo x > /proc/sys/kernel/hostname 2>/dev/null || echo sys-ro
echo x > /proc/sysrq-trigger 2>/dev/null || echo sysrq-ro
true`
	for _, run := range [][]string{{"exec", pod}, {"run", pod}} {
		out := e.must(append(run, "--", "sh", "-c", script)...)
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if strings.HasPrefix(line, "/proc/") && !strings.HasSuffix(line, " 0") {
				t.Errorf("%s: %s is not masked", run[0], line)
			}
		}
		if !strings.Contains(out, "\n0\n") || !strings.Contains(out, "sys-ro") || !strings.Contains(out, "sysrq-ro") {
			t.Errorf("%s: masking:\n%s", run[0], out)
		}
	}
}

// Known escape classes, one regression test each.
func TestEscapeClasses(t *testing.T) {
	e := newEnv(t)

	// CVE-2019-5736: no process of a pod runs the podsb binary, so none can
	// open it for writing through /proc/PID/exe; pause's own image is a
	// sealed memfd.
	pod, d := e.create()
	e.must("exec", "-d", pod, "--", "sleep", "100")
	var bin unix.Stat_t
	unix.Stat(e.bin, &bin)
	for _, p := range podHostPIDs(t, d) {
		var exe unix.Stat_t
		if unix.Stat(fmt.Sprintf("/proc/%d/exe", p.pid), &exe) == nil && exe.Dev == bin.Dev && exe.Ino == bin.Ino {
			t.Errorf("pod process %d runs the podsb binary", p.pid)
		}
	}
	if r := e.run("exec", pod, "--", "sh", "-c", "echo x >> /proc/1/exe"); r.code == 0 {
		t.Errorf("pause's image is writable through /proc/1/exe")
	}

	// CVE-2024-21626: nothing of the host is inherited: an fd podsb got
	// without close-on-exec, or its working directory.
	leak, _ := os.Open(e.root)
	defer leak.Close()
	cmd := cmdOf(e.bin, "--root", e.root, "exec", pod, "--", "sh", "-c", "ls /proc/self/fd | wc -l; readlink /proc/self/cwd")
	cmd.ExtraFiles = []*os.File{leak}
	cmd.Dir = e.root
	r := e.runCmd(cmd)
	if r.stdout != "4\n/\n" { // 0, 1, 2 and ls's own directory fd
		t.Errorf("inherited by exec: %q", r.stdout)
	}

	// A symlink in a directory root cannot send a volume outside the root.
	outside := t.TempDir()
	dir := dirRoot(t)
	os.Symlink(outside, filepath.Join(dir, "evil"))
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "v"), []byte("vol"), 0o644)
	name, _ := e.create("--rootfs", dir, "-v", "/usr:/usr:ro", "-v", src+":/evil/mnt")
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("a volume followed the root's symlink to the host: %v", ents)
	}
	if out := e.must("exec", name, "--", "cat", "/evil/mnt/v"); out != "vol" {
		t.Errorf("volume in the pod: %q", out)
	}

	// The state directory is root's alone and not in the pod.
	fi, err := os.Stat(filepath.Join(e.root, pod))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory mode %v %v", fi.Mode(), err)
	}
	if r := e.run("exec", pod, "--", "sh", "-c", "test -e "+e.root+" && echo visible; grep -c "+e.root+" /proc/self/mountinfo"); r.stdout != "0\n" {
		t.Errorf("state visible in the pod: %q", r.stdout)
	}
}

// The default seccomp filter: a blocked syscall fails with EPERM in a pod
// (keyctl; unshare of a user namespace), and everything else works.
func TestSeccompDefault(t *testing.T) {
	e := newEnv(t)
	pod, d := e.create()
	keyctl := `import ctypes; l = ctypes.CDLL(None, use_errno=True); r = l.syscall(250, 0, 0, 0, 0, 0); print(r, ctypes.get_errno())`
	for _, run := range [][]string{{"exec", pod}, {"run", pod}} {
		if out := e.must(append(run, "--", "python3", "-c", keyctl)...); out != "-1 1\n" {
			t.Errorf("%s: keyctl: %q, want -1 EPERM", run[0], out)
		}
		r := e.run(append(run, "--", "unshare", "-U", "true")...)
		if r.code == 0 || !strings.Contains(r.stderr, "Operation not permitted") {
			t.Errorf("%s: unshare -U: %+v", run[0], r)
		}
		if st := e.must(append(run, "--", "cat", "/proc/self/status")...); procStatusField(st, "Seccomp") != "2" {
			t.Errorf("%s: Seccomp %s", run[0], procStatusField(st, "Seccomp"))
		}
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.Pid))
	if got := procStatusField(string(b), "Seccomp"); got != "2" {
		t.Errorf("pause: Seccomp %s", got)
	}
	// seccomp=unconfined and --privileged turn it off.
	for _, flag := range [][]string{{"--security-opt", "seccomp=unconfined"}, {"--privileged"}} {
		st := e.must(append(append([]string{"exec"}, flag...), pod, "--", "cat", "/proc/self/status")...)
		if got := procStatusField(st, "Seccomp"); got != "0" {
			t.Errorf("%v: Seccomp %s", flag, got)
		}
	}
	wantFailure(t, e.run("exec", "--security-opt", "apparmor=x", pod, "--", "true"), "want seccomp=unconfined, seccomp=FILE")
}

// A profile of the caller's replaces the default filter, with its own
// errno; a bad one is refused before anything runs. no-new-privileges=false
// leaves no_new_privs off.
func TestSeccompProfileCLI(t *testing.T) {
	e := newEnv(t)
	pod, _ := e.create()
	dir := t.TempDir()
	prof := filepath.Join(dir, "p.json")
	os.WriteFile(prof, []byte(`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}`), 0o644)
	getppid := `import ctypes; l = ctypes.CDLL(None, use_errno=True); r = l.syscall(110); print(r, ctypes.get_errno())`
	for _, run := range [][]string{{"exec"}, {"run"}} {
		args := append(append(run, "--security-opt", "seccomp="+prof, pod, "--"), "python3", "-c", getppid)
		if out := e.must(args...); out != "-1 13\n" {
			t.Errorf("%s: getppid under the profile: %q, want -1 EACCES", run[0], out)
		}
		// With no_new_privs off too: the filter still goes in.
		st := e.must(append(append(run, "--security-opt", "seccomp="+prof, "--security-opt", "no-new-privileges=false", pod, "--"), "cat", "/proc/self/status")...)
		if procStatusField(st, "Seccomp") != "2" || procStatusField(st, "NoNewPrivs") != "0" {
			t.Errorf("%s: Seccomp %s NoNewPrivs %s", run[0], procStatusField(st, "Seccomp"), procStatusField(st, "NoNewPrivs"))
		}
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"defaultAction": "SCMP_ACT_NOTIFY"}`), 0o644)
	wantFailure(t, e.run("exec", "--security-opt", "seccomp="+bad, pod, "--", "true"), "SCMP_ACT_NOTIFY")
	wantFailure(t, e.run("exec", "--security-opt", "seccomp="+filepath.Join(dir, "missing.json"), pod, "--", "true"), "no such file")
}

// A device node made in a pod cannot be opened: CAP_MKNOD is in the default
// set (as Docker's), so the root, /dev, /tmp and the volumes are nodev and
// /dev's own nodes are bind mounts of the host's. Without that, a pod's
// root could make and open the host's disks or consoles. Privileged pods
// keep devices.
func TestDeviceNodes(t *testing.T) {
	e := newEnv(t)
	vol := t.TempDir()
	dir := dirRoot(t)
	usable := "echo x > /dev/null && head -c1 /dev/zero | wc -c && head -c1 /dev/urandom | wc -c && head -c1 /dev/random | wc -c && " +
		"if echo x > /dev/full; then echo full-took-it; fi; test -c /dev/tty && echo tty"
	// mknod succeeds (CAP_MKNOD); opening the node must not. c 1 3 is a
	// null device: harmless if it opened.
	made := func(paths ...string) string {
		s := ""
		for _, p := range paths {
			s += fmt.Sprintf("mknod %s c 1 3 && if echo x > %s 2>/dev/null; then echo %s opened; else echo %s denied; fi; rm -f %s; ", p, p, p, p, p)
		}
		return s
	}
	for _, tc := range []struct {
		what   string
		create []string
		paths  []string
	}{
		{"default root", []string{"-v", vol + ":/vol"}, []string{"/dev/n", "/tmp/n", "/n", "/vol/n", "/dev/shm/n"}},
		{"directory root", []string{"--rootfs", dir, "-v", "/usr:/usr:ro", "-v", vol + ":/vol"}, []string{"/dev/n", "/tmp/n", "/data/n", "/vol/n"}},
	} {
		t.Run(tc.what, func(t *testing.T) {
			pod, _ := e.create(tc.create...)
			want := "1\n1\n1\ntty\n"
			if r := e.run("exec", pod, "--", "sh", "-c", usable); r.code != 0 || r.stdout != want {
				t.Errorf("the pod's devices: %+v, want %q", r, want)
			}
			r := e.run("exec", pod, "--", "sh", "-c", made(tc.paths...))
			for _, p := range tc.paths {
				if !strings.Contains(r.stdout, p+" denied") {
					t.Errorf("a node made at %s: %+v", p, r)
				}
			}
		})
	}
	t.Run("container", func(t *testing.T) {
		pod, _ := e.create()
		r := e.run("run", pod, "--", "sh", "-c", usable+"; "+made("/dev/n", "/tmp/n"))
		if r.code != 0 || !strings.Contains(r.stdout, "1\n1\n1\ntty\n") || !strings.Contains(r.stdout, "/dev/n denied") || !strings.Contains(r.stdout, "/tmp/n denied") {
			t.Errorf("in a container: %+v", r)
		}
	})
	t.Run("privileged", func(t *testing.T) {
		pod, _ := e.create("--privileged")
		if r := e.run("exec", "--privileged", pod, "--", "sh", "-c", made("/dev/n")); !strings.Contains(r.stdout, "/dev/n opened") {
			t.Errorf("privileged: %+v", r)
		}
	})
}
