package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// nnpSource prints its effective user: set-user-ID root in the image, it
// tells whether no_new_privs was set.
const nnpSource = `package main

import (
	"os"
	"strconv"
)

func main() { os.Stdout.WriteString("Effective uid: " + strconv.Itoa(os.Geteuid()) + "\n") }
`

// nnpBinary builds nnpSource, static.
func nnpBinary(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(nnpSource), 0o644)
	cmd := exec.Command("go", "build", "-ldflags=-s -w", "-o", "nnp", "main.go")
	cmd.Dir, cmd.Env = dir, append(os.Environ(), "CGO_ENABLED=0", "GO111MODULE=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build nnp: %v: %s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "nnp"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// securityImage is busybox with the applets the test runs, a user 1000
// in group 50000, a file to mask, and /nnp, set-user-ID root.
func securityImage(t *testing.T) v1.Image {
	files := []tarFile{
		{name: "etc/passwd", body: []byte("root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home:/bin/sh\n")},
		{name: "etc/group", body: []byte("root:x:0:\nuser:x:1000:\nimage-group:x:50000:user\n")},
		{name: "secret", body: []byte("the secret\n")},
		{name: "tmp/.keep"},
		{name: "nnp", mode: 0o4755, body: nnpBinary(t)},
	}
	for _, a := range []string{"id", "cat", "touch", "chmod", "grep", "sleep", "hostname"} {
		files = append(files, tarFile{name: "bin/" + a, link: "busybox"})
	}
	return ociImage(t, []string{"sleep", "100000"}, busyboxLayer(t), layer(t, files...))
}

// secCtr is a container of TestCRISecurityContext: its config's
// linux.security_context, as JSON, and its command.
func (c *criEnv) secCtr(pod, podJSON, image, name, sc string, cmd ...string) (string, result) {
	c.t.Helper()
	if cmd == nil {
		cmd = []string{"sleep", "100000"}
	}
	args, _ := json.Marshal(cmd)
	f := filepath.Join(c.t.TempDir(), "ctr.json")
	os.WriteFile(f, []byte(fmt.Sprintf(`{"metadata": {"name": %q}, "image": {"image": %q}, "command": %s, "log_path": %q,
		"linux": {"security_context": %s}}`, name, image, args, name+".log", sc)), 0o644)
	r := c.crictlRun("create", pod, f, podJSON)
	return strings.TrimSpace(r.stdout), r
}

// execOut runs a command in a container and returns its output, stdout
// and stderr together without crictl's own lines, and whether it
// succeeded.
func (c *criEnv) execOut(ctr string, args ...string) (string, bool) {
	c.t.Helper()
	r := c.crictlRun(append([]string{"exec", "-s", ctr}, args...)...)
	var out []string
	for _, l := range strings.Split(r.stdout+"\n"+r.stderr, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "time=") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n"), r.code == 0
}

// TestCRISecurityContext drives a container's security context through
// crictl: user and supplementary groups (Merge and Strict, reported by
// ContainerStatus), capabilities, masked and read-only paths, a Localhost
// seccomp profile, RuntimeDefault and unconfined, no_new_privs either
// way; execs get the container's. Then bad input: each refusal names its
// field and leaves no container.
func TestCRISecurityContext(t *testing.T) {
	c := newCRIEnv(t)
	host := serveImages(t, map[string]v1.Image{"sec:1": securityImage(t)})
	ref := host + "/sec:1"
	c.crictlMust("pull", ref)
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	os.Mkdir(logs, 0o755)
	podJSON := filepath.Join(dir, "pod.json")
	os.WriteFile(podJSON, []byte(`{"metadata": {"name": "sec", "namespace": "default", "uid": "sec1"}, "log_directory": "`+logs+`", "linux": {}}`), 0o644)
	pod := strings.TrimSpace(c.crictlMust("runp", podJSON))
	c.use(pod)
	chmodProfile := filepath.Join(dir, "no-chmod.json")
	os.WriteFile(chmodProfile, []byte(`{"defaultAction": "SCMP_ACT_ALLOW",
		"syscalls": [{"names": ["chmod", "fchmodat", "fchmodat2"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}`), 0o644)

	// Merge: the image's groups of the user, and the config's; new
	// privileges allowed; a Localhost profile; NET_ADMIN added and
	// NET_RAW dropped; one file masked, /tmp read-only.
	a, r := c.secCtr(pod, podJSON, ref, "merge", `{"run_as_user": {"value": 1000}, "supplemental_groups": [1234],
		"capabilities": {"add_capabilities": ["NET_ADMIN"], "drop_capabilities": ["NET_RAW"]},
		"masked_paths": ["/secret"], "readonly_paths": ["/tmp"],
		"seccomp": {"profile_type": 2, "localhost_ref": "`+chmodProfile+`"}}`)
	if r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	c.crictlMust("start", a)
	c.waitState(a, "CONTAINER_RUNNING")
	if out, _ := c.execOut(a, "id", "-G"); out != "1000 1234 50000" {
		t.Errorf("merge: id -G: %q", out)
	}
	var st struct {
		Status struct {
			User struct {
				Linux struct {
					UID    json.Number   `json:"uid"`
					GID    json.Number   `json:"gid"`
					Groups []json.Number `json:"supplementalGroups"`
				} `json:"linux"`
			} `json:"user"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(c.crictlMust("inspect", a)), &st); err != nil {
		t.Fatal(err)
	}
	if u := st.Status.User.Linux; u.UID != "1000" || u.GID != "1000" || fmt.Sprint(u.Groups) != "[1000 1234 50000]" {
		t.Errorf("merge: ContainerStatus.User: %+v", u)
	}
	// Bounding set: CAP_NET_ADMIN (12) in, CAP_NET_RAW (13) out.
	if out, _ := c.execOut(a, "grep", "CapBnd", "/proc/self/status"); !strings.Contains(out, "00000000a80415fb") {
		t.Errorf("merge: capabilities: %q", out)
	}
	if out, ok := c.execOut(a, "cat", "/secret"); !ok || out != "" {
		t.Errorf("merge: masked /secret reads %q (ok %v)", out, ok)
	}
	if out, ok := c.execOut(a, "grep", "-c", " /proc/keys ", "/proc/self/mountinfo"); ok {
		t.Errorf("merge: the config's masked paths replace the default list, but /proc/keys is masked: %q", out)
	}
	// crictl exec -s prints nothing of a command that fails.
	if out, _ := c.execOut(a, "sh", "-c", "touch /tmp/x 2>&1; echo $?"); out != "touch: /tmp/x: Read-only file system\n1" {
		t.Errorf("merge: touch in read-only /tmp: %q", out)
	}
	if out, _ := c.execOut(a, "sh", "-c", "chmod 644 /secret 2>&1; echo $?"); out != "chmod: /secret: Permission denied\n1" {
		t.Errorf("merge: chmod under a profile that denies it with EACCES: %q", out)
	}
	if out, _ := c.execOut(a, "grep", "Seccomp:", "/proc/self/status"); !strings.Contains(out, "2") {
		t.Errorf("merge: seccomp: %q", out)
	}
	if out, _ := c.execOut(a, "/nnp"); out != "Effective uid: 0" {
		t.Errorf("merge: no_new_privs false: exec of a set-user-ID program: %q", out)
	}
	n, r := c.secCtr(pod, podJSON, ref, "nnp-false", `{"run_as_user": {"value": 1000}}`, "/nnp")
	if r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	c.crictlMust("start", n)
	c.waitState(n, "CONTAINER_EXITED")
	if out := c.crictlMust("logs", n); out != "Effective uid: 0\n" {
		t.Errorf("no_new_privs false: %q", out)
	}

	// Strict: the config's groups only; no_new_privs; the default
	// filter, and the default masked paths.
	b, r := c.secCtr(pod, podJSON, ref, "strict", `{"run_as_user": {"value": 1000}, "supplemental_groups": [1234],
		"supplemental_groups_policy": 1, "no_new_privs": true, "seccomp": {"profile_type": 0}}`)
	if r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	c.crictlMust("start", b)
	c.waitState(b, "CONTAINER_RUNNING")
	if out, _ := c.execOut(b, "id", "-G"); out != "1000 1234" {
		t.Errorf("strict: id -G: %q", out)
	}
	if out, _ := c.execOut(b, "/nnp"); out != "Effective uid: 1000" {
		t.Errorf("strict: no_new_privs: exec of a set-user-ID program: %q", out)
	}
	if out, _ := c.execOut(b, "grep", "-E", "^(NoNewPrivs|Seccomp):", "/proc/self/status"); !strings.Contains(out, "NoNewPrivs:\t1") || !strings.Contains(out, "Seccomp:\t2") {
		t.Errorf("strict: %q", out)
	}
	if out, ok := c.execOut(b, "grep", "-c", " /proc/keys ", "/proc/self/mountinfo"); !ok {
		t.Errorf("strict: /proc/keys is not masked: %q", out)
	}

	// Unconfined (and no profile at all): no filter; with SYS_ADMIN,
	// sethostname works.
	u, r := c.secCtr(pod, podJSON, ref, "unconfined", `{"capabilities": {"add_capabilities": ["SYS_ADMIN"]}}`)
	if r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	c.crictlMust("start", u)
	c.waitState(u, "CONTAINER_RUNNING")
	if out, _ := c.execOut(u, "grep", "Seccomp:", "/proc/self/status"); !strings.Contains(out, "Seccomp:\t0") {
		t.Errorf("no profile: %q", out)
	}
	if out, ok := c.execOut(u, "hostname", "renamed"); !ok {
		t.Errorf("unconfined with SYS_ADMIN: hostname: %q", out)
	}

	// Bad input: refused at create, naming the field; nothing left.
	before := c.crictlMust("ps", "-a", "-q")
	garbage := filepath.Join(dir, "garbage.json")
	os.WriteFile(garbage, []byte(`{"defaultAction": `), 0o644)
	notify := filepath.Join(dir, "notify.json")
	os.WriteFile(notify, []byte(`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["chmod"], "action": "SCMP_ACT_NOTIFY"}]}`), 0o644)
	for _, tc := range []struct{ name, sc, want string }{
		{"no-such-cap", `{"capabilities": {"add_capabilities": ["CAP_NOPE"]}}`, "capabilities.add_capabilities"},
		{"no-such-drop", `{"capabilities": {"drop_capabilities": ["NOPE"]}}`, "capabilities.drop_capabilities"},
		{"malformed-profile", `{"seccomp": {"profile_type": 2, "localhost_ref": "` + garbage + `"}}`, "linux.security_context.seccomp"},
		{"missing-profile", `{"seccomp": {"profile_type": 2, "localhost_ref": "` + dir + `/missing.json"}}`, "linux.security_context.seccomp"},
		{"notify-profile", `{"seccomp": {"profile_type": 2, "localhost_ref": "` + notify + `"}}`, "linux.security_context.seccomp"},
		{"bad-profile-path", `{"seccomp_profile_path": "bogus"}`, "seccomp_profile_path"},
		{"apparmor", `{"apparmor": {"profile_type": 2, "localhost_ref": "my-profile"}}`, "apparmor"},
		{"apparmor-default", `{"apparmor": {"profile_type": 0}}`, "apparmor"},
		{"selinux", `{"selinux_options": {"type": "container_t"}}`, "selinux_options"},
		{"relative-mask", `{"masked_paths": ["secret"]}`, "masked_paths"},
		{"group-no-user", `{"run_as_group": {"value": 5}}`, "run_as_group"},
	} {
		_, r := c.secCtr(pod, podJSON, ref, tc.name, tc.sc)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "InvalidArgument") {
			t.Errorf("%s: exit %d: %s", tc.name, r.code, r.stderr)
		}
	}
	if after := c.crictlMust("ps", "-a", "-q"); after != before {
		t.Errorf("refused creates left containers: %q, before %q", after, before)
	}
}
