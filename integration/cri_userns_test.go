package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// podsb cri: a pod sandbox with userns_options of mode POD gets a user
// namespace of its own with the given maps; its container joins it (its
// uid_map is the maps, the image's files show their owner 0, its root
// writes a volume as the mapped host ID). Maps another pod holds, mode
// TARGET, the host's root mapped, and a container asking for another user
// namespace than its pod's are InvalidArgument naming the field, and
// leave no pod, record, range or container.
func TestCRIUserNS(t *testing.T) {
	c := newCRIEnv(t)
	dir := t.TempDir()
	write := fileWriter(t, dir)
	const hostID = 7000000
	usernsPod := func(name, opts string) string {
		return write(name+".json", `{"metadata": {"name": "`+name+`", "namespace": "default", "uid": "`+name+`"},
			"linux": {"security_context": {"namespace_options": {"userns_options": `+opts+`}}}}`)
	}
	podCfg := usernsPod("userns", fmt.Sprintf(`{"mode": 0, "uids": [{"container_id": 0, "host_id": %d, "length": 65536}], "gids": [{"container_id": 0, "host_id": %d, "length": 65536}]}`, hostID, hostID))
	pod := strings.TrimSpace(c.crictlMust("runp", podCfg))
	c.use(pod)
	insp := c.crictlMust("inspectp", pod)
	if !strings.Contains(insp, `"usernsOptions"`) || !strings.Contains(insp, fmt.Sprintf(`"hostId": "%d"`, hostID)) && !strings.Contains(insp, fmt.Sprintf(`"hostId": %d`, hostID)) {
		t.Errorf("inspectp: no user namespace options with host ID %d in\n%s", hostID, insp)
	}

	host := serveImages(t, map[string]v1.Image{"busybox:1": ociImage(t, []string{"/bin/busybox", "sleep", "1000"}, busyboxLayer(t))})
	ref := host + "/busybox:1"
	c.crictlMust("pull", ref)
	vol := t.TempDir()
	os.Chmod(vol, 0o777)
	ctr := write("ctr.json", `{"metadata": {"name": "app"}, "image": {"image": "`+ref+`"},
		"mounts": [{"host_path": "`+vol+`", "container_path": "/vol"}],
		"linux": {"security_context": {"namespace_options": {"userns_options": `+fmt.Sprintf(`{"mode": 0, "uids": [{"container_id": 0, "host_id": %d, "length": 65536}], "gids": [{"container_id": 0, "host_id": %d, "length": 65536}]}`, hostID, hostID)+`}}}}`)
	id := strings.TrimSpace(c.crictlMust("create", pod, ctr, podCfg))
	c.crictlMust("start", id)
	want := fmt.Sprintf("0 %d 65536", hostID)
	if out := c.crictlMust("exec", id, "/bin/busybox", "cat", "/proc/self/uid_map"); strings.Join(strings.Fields(out), " ") != want {
		t.Errorf("uid_map in the container: %q, want %q", out, want)
	}
	if out := c.crictlMust("exec", id, "/bin/busybox", "stat", "-c", "%u:%g", "/bin/busybox", "/"); out != "0:0\n0:0\n" {
		t.Errorf("owners of the image's /bin/busybox and / in the container: %q, want 0:0 twice", out)
	}
	c.crictlMust("exec", id, "/bin/sh", "-c", "echo x > /vol/made")
	if got := owner(t, filepath.Join(vol, "made")); got != fmt.Sprintf("%d:%d", hostID, hostID) {
		t.Errorf("file the container's root wrote to a volume: owner %s on the host, want %d:%d", got, hostID, hostID)
	}

	// Bad input: nothing made.
	before := stateEntries(c.root)
	for _, tc := range []struct{ name, opts, want string }{
		{"overlap", fmt.Sprintf(`{"mode": 0, "uids": [{"container_id": 0, "host_id": %d, "length": 10}], "gids": [{"container_id": 0, "host_id": 8000000, "length": 10}]}`, hostID+100),
			"namespace_options.userns_options: user namespace maps overlap those of pod " + pod},
		{"target", `{"mode": 3}`, "namespace_options.userns_options.mode: TARGET is not one of POD, NODE"},
		{"host root", `{"mode": 0, "uids": [{"container_id": 0, "host_id": 0, "length": 10}], "gids": [{"container_id": 0, "host_id": 8000000, "length": 10}]}`,
			"namespace_options.userns_options.uids 0:0:10: maps the host's root into the pod"},
		{"two lines", `{"mode": 0, "uids": [{"container_id": 0, "host_id": 8000000, "length": 100}, {"container_id": 0, "host_id": 9000000, "length": 100}], "gids": [{"container_id": 0, "host_id": 8000000, "length": 100}]}`,
			"namespace_options.userns_options.uids 0:9000000:100 overlaps 0:8000000:100"},
	} {
		r := c.crictlRun("runp", usernsPod("bad-"+tc.name, tc.opts))
		if r.code == 0 || !strings.Contains(r.stderr, "InvalidArgument") || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("runp with userns_options %s: exit %d: %s\nwant InvalidArgument and %q", tc.opts, r.code, r.stderr, tc.want)
		}
	}
	if after := stateEntries(c.root); strings.Join(after, " ") != strings.Join(before, " ") {
		t.Errorf("refused pods left state: %v, before %v", after, before)
	}
	if out := strings.Fields(c.crictlMust("pods", "-q")); len(out) != 1 {
		t.Errorf("pods after refusals: %v", out)
	}
	if recs := ownRecords(c.root); len(recs) != 1 {
		t.Errorf("user namespace records after refusals: %v", recs)
	}
	// A container cannot ask for the host's user namespace in this pod.
	nodeCtr := write("node.json", `{"metadata": {"name": "node"}, "image": {"image": "`+ref+`"},
		"linux": {"security_context": {"namespace_options": {"userns_options": {"mode": 2}}}}}`)
	r := c.crictlRun("create", pod, nodeCtr, podCfg)
	if r.code == 0 || !strings.Contains(r.stderr, "InvalidArgument") || !strings.Contains(r.stderr, "namespace_options.userns_options: mode NODE") {
		t.Errorf("create with userns_options NODE in a userns pod: exit %d: %s", r.code, r.stderr)
	}
	if out := strings.Fields(c.crictlMust("ps", "-a", "-q")); len(out) != 1 {
		t.Errorf("containers after a refused create: %v", out)
	}
	// PID mode CONTAINER (kubelet's default): a PID namespace of its own,
	// the pod user namespace's, where the command is PID 1.
	ownPID := write("ownpid.json", `{"metadata": {"name": "ownpid"}, "image": {"image": "`+ref+`"},
		"linux": {"security_context": {"namespace_options": {"pid": 1}}}}`)
	own := strings.TrimSpace(c.crictlMust("create", pod, ownPID, podCfg))
	c.crictlMust("start", own)
	if out := c.crictlMust("exec", own, "/bin/sh", "-c", "cat /proc/self/uid_map; set -- /proc/[0-9]*; echo $#; cat /proc/1/comm"); strings.Join(strings.Fields(out), " ") != want+" 2 busybox" {
		t.Errorf("container with PID mode CONTAINER: %q, want its uid_map, 2 processes, PID 1 the command", out)
	}
	c.crictlMust("stopp", pod)
	c.crictlMust("rmp", pod)
	if recs := ownRecords(c.root); len(recs) != 0 {
		t.Errorf("user namespace records after rmp: %v", recs)
	}
}
