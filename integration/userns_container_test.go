package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podsb/podsb/rootfs"
	"github.com/podsb/podsb/sandbox"
)

// owner is the host owner of path, as uid:gid.
func owner(t *testing.T, path string) string {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d:%d", st.Uid, st.Gid)
}

// TestUserNSContainer is issue 17's for containers: podsb run in a
// --userns auto pod joins the pod's user namespace (its uid_map is the
// pod's), its root writes to a volume as the pod's mapped ID on the host,
// it is not the host's root (its capabilities are the namespace's), an
// orphan of it is adopted and reaped by pause, PID 1 of the pod, and exec
// --container reaches it in the namespace.
func TestUserNSContainer(t *testing.T) {
	e := newEnv(t)
	pod, d := e.create("--userns", "auto")
	uid, gid := usernsRange(t, d)
	want := fmt.Sprintf("0 %d %d", uid, sandbox.UserNSSize)

	vol := t.TempDir()
	os.Chmod(vol, 0o777)
	out := e.must("run", "-v", vol+":/vol", pod, "--", "sh", "-c", "cat /proc/self/uid_map; id -u; echo x > /vol/made-by-root; stat -c %u:%g / /etc/hostname /root /var/tmp /usr/bin/su; echo ok > /etc/motd; cat /etc/motd")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 8 || strings.Join(strings.Fields(lines[0]), " ") != want || lines[1] != "0" {
		t.Fatalf("run in a userns pod: %q, want uid_map %q and id 0", out, want)
	}
	if got := strings.Join(lines[2:], " "); got != "0:0 0:0 0:0 0:0 0:0 ok" {
		t.Errorf("the default root in the container: owners of /, /etc/hostname, /root, /var/tmp, /usr/bin/su and a write to /etc: %q, want 0:0 each (the pod's root) and ok", got)
	}
	if got := owner(t, filepath.Join(vol, "made-by-root")); got != fmt.Sprintf("%d:%d", uid, gid) {
		t.Errorf("file the container's root wrote to a volume: owner %s on the host, want %d:%d", got, uid, gid)
	}
	// The host's root's files are not the container's root's: a file of
	// the host's root, 0600, in a plain volume.
	secret := t.TempDir()
	os.WriteFile(filepath.Join(secret, "secret"), []byte("x"), 0o600)
	if r := e.run("run", "-v", secret+":/s", pod, "--", "cat", "/s/secret"); r.code == 0 {
		t.Errorf("the container's root read a 0600 file of the host's root")
	}

	// Attack: the host's /usr is idmapped read-only, so that the pod's
	// root is the host's root there: neither in the container's mount
	// namespace (the host's user namespace owns it) nor in one of a
	// nested user namespace can it be made writable.
	evil := "/usr/podsb-h17c-evil-" + pod
	for _, script := range []string{
		"mount -o remount,rw /usr; umount /usr; touch " + evil,
		"unshare -Urm sh -c 'mount -o remount,rw /usr; mount -o remount,bind,rw /usr; umount /usr; touch " + evil + "'",
	} {
		e.run("run", pod, "--", "sh", "-c", script)
		if _, err := os.Stat(evil); err == nil {
			os.Remove(evil)
			t.Errorf("the container's root wrote the host's /usr with %q", script)
		}
	}

	// Orphans: the container's are adopted and reaped by pause, PID 1.
	if out := e.must("run", pod, "--", "cat", "/proc/1/comm"); strings.TrimSpace(out) != "pause" {
		t.Errorf("PID 1 seen from a container: %q", out)
	}
	e.must("run", "-d", "--name", "bg", pod, "--", "sh", "-c", "(sleep 0.2 &); sleep 1000")
	time.Sleep(time.Second)
	top := e.must("top", pod)
	if strings.Contains(top, "Z (zombie)") || strings.Contains(top, "   sleep 0.2") || !strings.Contains(top, "   sleep 1000") {
		t.Errorf("after a container's orphan exited, top shows:\n%s", top)
	}
	// exec --container joins the user namespace too.
	if out := e.must("exec", "--container", "bg", pod, "--", "cat", "/proc/self/uid_map"); strings.Join(strings.Fields(out), " ") != want {
		t.Errorf("exec --container: uid_map %q, want %q", out, want)
	}
	cs := e.must("ps", "--containers", pod)
	if !strings.Contains(cs, "bg") {
		t.Errorf("ps --containers:\n%s", cs)
	}
	e.must("kill", pod, "bg", "KILL")
}

// TestUserNSContainerImage: a container of image layers in a userns pod
// has an overlay over idmapped layers: the image's files show their image
// owners (0, 1234) inside and keep them on disk, the image's user writes
// to its home, and what the container writes lands in the upper directory
// as the pod's mapped IDs. A --rootfs directory is idmapped likewise.
func TestUserNSContainerImage(t *testing.T) {
	e := newEnv(t)
	name, d := e.create("--userns", "auto")
	uid, gid := usernsRange(t, d)
	pod, err := sandbox.Load(e.root, name)
	if err != nil {
		t.Fatal(err)
	}
	img := testImage(t)
	home := filepath.Join(img.Layers[0], "home/app")
	must(t, os.Chown(home, 1234, 1234))

	cc := sandbox.ContainerConfig{Image: img, Name: "img"}
	// The image's user, 1234, writes its home but not /.
	cc.Args = []string{"id -u; stat -c %u:%g /kept /bin/busybox /home/app /work/dir /; touch /home/app/mine; touch /made 2>/dev/null && echo wrote /; cat /proc/self/uid_map"}
	out, st := runImage(t, pod, cc)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	wantMap := fmt.Sprintf("0 %d %d", uid, sandbox.UserNSSize)
	if st != 0 || len(lines) != 7 {
		t.Fatalf("image container: exit %d, %q", st, out)
	}
	if got := strings.Join(lines[:6], " "); got != "1234 0:0 0:0 1234:1234 0:0 0:0" {
		t.Errorf("image container as its user: %q, want 1234, then owners 0:0 0:0 1234:1234 0:0 0:0", got)
	}
	if got := strings.Join(strings.Fields(lines[len(lines)-1]), " "); got != wantMap {
		t.Errorf("uid_map in an image container: %q, want %q", got, wantMap)
	}
	// Nothing chowned on disk.
	for p, want := range map[string]string{filepath.Join(img.Layers[0], "kept"): "0:0", home: "1234:1234", filepath.Join(img.Layers[1], "kept"): "0:0"} {
		if got := owner(t, p); got != want {
			t.Errorf("layer file %s: owner %s on disk, want %s", p, got, want)
		}
	}
	// The upper directory: the image's user's file is its mapped ID's.
	upper := filepath.Join(e.root, name, "containers", "img", "overlay", "upper")
	// (app:staff, 1234:2345)
	if got := owner(t, filepath.Join(upper, "home/app/mine")); got != fmt.Sprintf("%d:%d", uid+1234, gid+2345) {
		t.Errorf("file of the image's user in the upper directory: owner %s, want %d:%d", got, uid+1234, gid+2345)
	}
	// Attack: the container's root writes a file of the shared layers,
	// which is copied up: the layer is untouched.
	cc = sandbox.ContainerConfig{Image: img}
	cc.Args, cc.User = []string{"echo evil > /kept; echo evil > /etc/passwd; cat /kept"}, "0"
	if out, _ := runImage(t, pod, cc); out != "evil\n" {
		t.Errorf("write of an image file by the container's root: %q", out)
	}
	if b, _ := os.ReadFile(filepath.Join(img.Layers[1], "kept")); string(b) != "upper\n" {
		t.Errorf("the layer's file after a container wrote it: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(img.Layers[0], "etc/passwd")); !strings.HasPrefix(string(b), "root:x:0:0:") {
		t.Errorf("the layer's /etc/passwd after a container wrote it: %q", b)
	}

	// As the image's root: writes the root, shown as 0, the pod's on disk.
	cc = sandbox.ContainerConfig{Image: img, Name: "img-root"}
	cc.Args, cc.User = []string{"touch /made && stat -c %u:%g /made /kept"}, "0"
	if out, st := runImage(t, pod, cc); st != 0 || out != "0:0\n0:0\n" {
		t.Errorf("image container as root: exit %d, %q", st, out)
	}
	upper = filepath.Join(e.root, name, "containers", "img-root", "overlay", "upper")
	if got := owner(t, filepath.Join(upper, "made")); got != fmt.Sprintf("%d:%d", uid, gid) {
		t.Errorf("file of the container's root in the upper directory: owner %s, want %d:%d", got, uid, gid)
	}

	// Volumes at new paths of an image root: their mount points and the
	// directories above them, made in the upper directory before the
	// plan runs, are the pod's root's (0:0 inside, its mapped IDs on
	// disk), not the host's root's (nobody inside, where the pod's root
	// could not write). Until 2026-12-06 they were the host's root's.
	vfile := filepath.Join(t.TempDir(), "f")
	must(t, os.WriteFile(vfile, nil, 0o644))
	cc = sandbox.ContainerConfig{Image: img, Name: "img-vol", Volumes: []rootfs.Volume{
		{Source: t.TempDir(), Destination: "/new/deep/vol", IDMap: true}, {Source: vfile, Destination: "/new/file", IDMap: true}}}
	cc.Args, cc.User = []string{"stat -c %u:%g /new /new/deep /new/deep/vol /new/file; mkdir /new/x /new/deep/x && echo wrote"}, "0"
	if out, st := runImage(t, pod, cc); st != 0 || out != "0:0\n0:0\n0:0\n0:0\nwrote\n" {
		t.Errorf("image container with volumes at new paths: exit %d, %q, want 0:0 four times, then wrote", st, out)
	}
	upper = filepath.Join(e.root, name, "containers", "img-vol", "overlay", "upper")
	for _, p := range []string{"new", "new/deep", "new/deep/vol", "new/file"} {
		if got := owner(t, filepath.Join(upper, p)); got != fmt.Sprintf("%d:%d", uid, gid) {
			t.Errorf("mount point %s in the upper directory: owner %s, want %d:%d", p, got, uid, gid)
		}
	}

	// A --rootfs directory, idmapped: the host's root's files are the
	// container's root's, and a missing volume mount point is made; an
	// idmap volume shows its host owner.
	dir := t.TempDir()
	baseLayer(t, dir)
	vol := t.TempDir()
	cc = sandbox.ContainerConfig{Rootfs: dir, Volumes: []rootfs.Volume{{Source: vol, Destination: "/new/vol", IDMap: true}}}
	cc.Args = []string{"/bin/sh", "-c", "stat -c %u:%g /kept /new/vol; echo made > /made"}
	if out, st := runImage(t, pod, cc); st != 0 || out != "0:0\n0:0\n" {
		t.Errorf("--rootfs container: exit %d, %q", st, out)
	}
	if got := owner(t, filepath.Join(dir, "made")); got != "0:0" {
		t.Errorf("file the container's root wrote in an idmapped --rootfs: owner %s on disk, want 0:0", got)
	}

	// An image volume shows its image owners.
	cc = sandbox.ContainerConfig{Image: img, Volumes: []rootfs.Volume{{Image: img, Destination: "/iv", ReadOnly: true}}}
	cc.Args, cc.User = []string{"stat -c %u:%g /iv/kept /iv/home/app"}, "0"
	if out, st := runImage(t, pod, cc); st != 0 || out != "0:0\n1234:1234\n" {
		t.Errorf("image volume: exit %d, %q", st, out)
	}

	// The host's PID namespace is refused in such a pod, nothing made.
	cc = sandbox.ContainerConfig{Image: img, Name: "hostpid", PID: sandbox.PIDMode{Host: true}}
	cc.Args, cc.Detach = []string{"true"}, true
	if _, err := pod.Run(context.Background(), cc); err == nil || !strings.Contains(err.Error(), "no container of it in the host's PID namespace") {
		t.Errorf("PID host in a userns pod: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.root, name, "containers", "hostpid")); !os.IsNotExist(err) {
		t.Errorf("refused container's directory: %v", err)
	}

	// A PID namespace of the container's own (the CRI's CONTAINER, made
	// after the root, by a process in the pod's user namespace): the
	// command is its PID 1, its /proc is that namespace's, masked.
	cc = sandbox.ContainerConfig{Image: img, Name: "ownpid", PID: sandbox.PIDMode{Own: true}}
	cc.Args, cc.User, cc.Detach = []string{"echo pid $$; set -- /proc/[0-9]*; echo procs $#; cat /proc/self/uid_map; wc -c < /proc/timer_list; while read -r a b c d mp opts rest; do [ $mp = /proc/sys ] && echo sys ${opts%%,*}; done < /proc/self/mountinfo; echo done"}, "0", true
	if _, err := pod.Run(context.Background(), cc); err != nil {
		t.Fatal(err)
	}
	ocs, err := pod.Container("ownpid")
	if err != nil {
		t.Fatal(err)
	}
	waitLog(t, ocs.Log, "done")
	if b, _ := os.ReadFile(ocs.Log); strings.Join(strings.Fields(string(b)), " ") != "pid 1 procs 1 "+wantMap+" 0 sys ro done" {
		t.Errorf("container with a PID namespace of its own: %q, want pid 1, 1 process, the map, an empty /proc/timer_list, /proc/sys read-only", b)
	}
}
