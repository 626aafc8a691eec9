package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/testenv"
	"github.com/podsb/podsb/rootfs"
	"github.com/podsb/podsb/sandbox"
)

// busyboxApplets are linked to /bin/busybox in the base layer.
var busyboxApplets = []string{"sh", "cat", "echo", "id", "ls", "pwd", "sleep", "test", "touch", "env", "wc", "sort", "true"}

// baseLayer makes, in dir, the lowest layer of the test images: busybox
// and its applets, an /etc with a user and groups, and entries the upper
// layer hides (a whiteout) or replaces (an opaque directory).
func baseLayer(t testing.TB, dir string) {
	t.Helper()
	for _, d := range []string{"bin", "etc", "tmp", "gone", "opq", "home/app"} {
		must(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	must(t, os.Chmod(filepath.Join(dir, "tmp"), 0o1777))
	b, err := os.ReadFile("/bin/busybox")
	if err != nil {
		if testenv.Integration() {
			t.Fatalf("busybox-static is not installed (scripts/deps.sh installs it): %v", err)
		}
		t.Skipf("busybox-static is not installed (scripts/deps.sh installs it): %v", err)
	}
	must(t, os.WriteFile(filepath.Join(dir, "bin/busybox"), b, 0o755))
	for _, a := range busyboxApplets {
		must(t, os.Symlink("busybox", filepath.Join(dir, "bin", a)))
	}
	writeFile(t, filepath.Join(dir, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\napp:x:1234:1234:app:/home/app:/bin/sh\n")
	writeFile(t, filepath.Join(dir, "etc/group"), "root:x:0:\napp:x:1234:\nstaff:x:2345:\nextra:x:3456:app\n")
	writeFile(t, filepath.Join(dir, "gone/file"), "hidden by a whiteout\n")
	writeFile(t, filepath.Join(dir, "opq/old"), "hidden by an opaque directory\n")
	writeFile(t, filepath.Join(dir, "kept"), "base\n")
}

// upperLayer makes, in dir, a layer over baseLayer: a whiteout of /gone,
// /opq opaque with a new file, and a file replaced.
func upperLayer(t testing.TB, dir string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Join(dir, "opq"), 0o755))
	must(t, unix.Mknod(filepath.Join(dir, "gone"), unix.S_IFCHR, 0))
	must(t, unix.Setxattr(filepath.Join(dir, "opq"), "trusted.overlay.opaque", []byte("y"), 0))
	writeFile(t, filepath.Join(dir, "opq/new"), "new\n")
	writeFile(t, filepath.Join(dir, "kept"), "upper\n")
}

func writeFile(t testing.TB, path, s string) {
	t.Helper()
	must(t, os.WriteFile(path, []byte(s), 0o644))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// testImage returns an image root of a base and an upper layer, made in a
// temporary directory, with a configuration that exercises every field.
func testImage(t testing.TB) *rootfs.ImageRoot {
	t.Helper()
	dir := t.TempDir()
	l0, l1 := filepath.Join(dir, "layer0"), filepath.Join(dir, "layer1")
	baseLayer(t, l0)
	upperLayer(t, l1)
	return &rootfs.ImageRoot{
		ID:     "test/busybox:layers",
		Layers: []string{l0, l1},
		Config: rootfs.ImageConfig{
			User:       "app:staff",
			Env:        []string{"PATH=/bin", "FOO=image", "BAR=image"},
			Entrypoint: []string{"/bin/sh", "-c"},
			Cmd:        []string{"echo default command"},
			WorkingDir: "/work/dir",
			StopSignal: "SIGUSR1",
		},
	}
}

// runImage runs a container of img in pod and returns its output and
// exit status.
func runImage(t testing.TB, pod *sandbox.Pod, cc sandbox.ContainerConfig) (string, int) {
	t.Helper()
	var out syncBuffer
	cc.Stdout, cc.Stderr = &out, &out
	p, err := pod.Run(context.Background(), cc)
	if err != nil {
		t.Fatalf("run %v: %v", cc.Args, err)
	}
	status, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), status
}

func TestImageRootConfig(t *testing.T) {
	e := newEnv(t)
	name, _ := e.create()
	pod, err := sandbox.Load(e.root, name)
	if err != nil {
		t.Fatal(err)
	}
	img := testImage(t)

	// Entrypoint and Cmd.
	if out, st := runImage(t, pod, sandbox.ContainerConfig{Image: img}); st != 0 || out != "default command\n" {
		t.Errorf("default command: exit %d, %q", st, out)
	}
	// A command replaces Cmd and keeps Entrypoint; the caller's env goes
	// over the image's; WorkingDir is made; User's names come from the
	// image's /etc; whiteout and opaque directory hide the base's files.
	script := `id -u; id -g; id -G; pwd; echo "$FOO $BAR $HOME"; cat /kept; ls /opq; test -e /gone && echo gone is there; echo end`
	cc := sandbox.ContainerConfig{Image: img}
	cc.Args = []string{script}
	cc.Env = []string{"BAR=user"}
	out, st := runImage(t, pod, cc)
	want := "1234\n2345\n2345 3456\n/work/dir\nimage user /home/app\nupper\nnew\nend\n"
	if st != 0 || out != want {
		t.Errorf("image config: exit %d\n%s\nwant\n%s", st, out, want)
	}
	// The caller's user and directory win over the image's.
	cc = sandbox.ContainerConfig{Image: img}
	cc.Args, cc.User, cc.Dir = []string{"id -u; pwd"}, "0", "/tmp"
	if out, st := runImage(t, pod, cc); st != 0 || out != "0\n/tmp\n" {
		t.Errorf("-u 0 -w /tmp: exit %d, %q", st, out)
	}
	// A user the image does not know.
	cc = sandbox.ContainerConfig{Image: img}
	cc.Args, cc.User = []string{"true"}, "nobody"
	if _, err := pod.Run(context.Background(), cc); err == nil || !strings.Contains(err.Error(), "nobody") {
		t.Errorf("unknown user: %v", err)
	}

	// StopSignal: podsb kill with no signal sends it.
	cc = sandbox.ContainerConfig{Name: "stopper", Image: img}
	cc.Args = []string{`trap 'echo got USR1; exit 0' USR1; echo ready; while :; do sleep 0.05; done`}
	cc.Detach = true
	if _, err := pod.Run(context.Background(), cc); err != nil {
		t.Fatal(err)
	}
	cs, err := pod.Container("stopper")
	if err != nil || cs.StopSignal() != unix.SIGUSR1 || cs.Image == nil || cs.Image.ID != img.ID {
		t.Fatalf("state: %+v, %v", cs, err)
	}
	waitLog(t, cs.Log, "ready")
	// exec --container gets the image's Env, WorkingDir and User, as
	// docker exec does.
	if out := e.must("exec", "--container", "stopper", name, "--", "/bin/sh", "-c", `id -u; pwd; echo "$FOO"; cat /kept`); out != "1234\n/work/dir\nimage\nupper\n" {
		t.Errorf("exec --container: %q", out)
	}
	if out := e.must("exec", "--container", "stopper", "-u", "0", "-w", "/", "-e", "FOO=mine", name, "--", "/bin/sh", "-c", `id -u; pwd; echo "$FOO"`); out != "0\n/\nmine\n" {
		t.Errorf("exec --container -u 0 -w / -e FOO=mine: %q", out)
	}
	e.must("kill", name, "stopper")
	waitLog(t, cs.Log, "got USR1")
	if out := e.must("ps", "--containers", "-a", name); !strings.Contains(out, "image test/busybox:layers") {
		t.Errorf("ps --containers: no image root in\n%s", out)
	}
}

// waitLog waits until the log file holds s.
func waitLog(t *testing.T, path, s string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %s: no %q in %q", path, s, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestImageRootSharedLayers(t *testing.T) {
	e := newEnv(t)
	name, _ := e.create()
	pod, err := sandbox.Load(e.root, name)
	if err != nil {
		t.Fatal(err)
	}
	img := testImage(t)
	img.Config.User = ""
	img.UpperParent = t.TempDir()
	vol := t.TempDir()

	// Two containers write over the same lowers: neither sees the
	// other's writes, and the layers stay as they were.
	for _, c := range []string{"a", "b"} {
		cc := sandbox.ContainerConfig{Name: c, Image: img, Volumes: []sandbox.Volume{{Source: vol, Destination: "/vol"}}}
		cc.Args = []string{fmt.Sprintf(`test -e /mine-a && echo sees a; echo %s > /mine-%s; echo %s > /kept; rm /bin/wc; cat /kept; echo %s > /vol/%s`, c, c, c, c, c)}
		if out, st := runImage(t, pod, cc); st != 0 || out != c+"\n" {
			t.Errorf("container %s: exit %d, %q", c, st, out)
		}
		if b, _ := os.ReadFile(filepath.Join(vol, c)); string(b) != c+"\n" {
			t.Errorf("volume: %q", b)
		}
	}
	for _, l := range img.Layers {
		for _, f := range []string{"mine-a", "mine-b"} {
			if _, err := os.Lstat(filepath.Join(l, f)); err == nil {
				t.Errorf("write reached layer %s", l)
			}
		}
	}
	if b, _ := os.ReadFile(filepath.Join(img.Layers[1], "kept")); string(b) != "upper\n" {
		t.Errorf("layer file changed: %q", b)
	}
	if _, err := os.Stat(filepath.Join(img.Layers[0], "bin/wc")); err != nil {
		t.Errorf("a removal reached the layer: %v", err)
	}
	uppers, _ := filepath.Glob(filepath.Join(img.UpperParent, "podsb-upper-*"))
	if len(uppers) != 2 {
		t.Fatalf("upper directories: %v", uppers)
	}
	for _, u := range uppers {
		if _, err := os.Stat(filepath.Join(u, "upper/kept")); err != nil {
			t.Errorf("upper %s: %v", u, err)
		}
	}

	// --read-only: the root refuses writes, the volume takes them.
	cc := sandbox.ContainerConfig{Image: img, ReadOnly: true, Volumes: []sandbox.Volume{{Source: vol, Destination: "/vol"}}}
	cc.Args = []string{`touch /x 2>/dev/null && echo root writable; touch /vol/ro && echo volume writable`}
	if out, st := runImage(t, pod, cc); st != 0 || out != "volume writable\n" {
		t.Errorf("read-only: exit %d, %q", st, out)
	}

	// The overlays are never in the host's mount table.
	for _, m := range overlayMountsOf(t, img) {
		t.Errorf("overlay on the host: %s", m)
	}
	// rm of the pod removes the upper directories.
	e.must("rm", name)
	if left, _ := os.ReadDir(img.UpperParent); len(left) != 0 {
		t.Errorf("after rm: %d entries left in %s", len(left), img.UpperParent)
	}
}

// overlayMountsOf lists the mounts in this process's mount table whose
// options name one of img's layers.
func overlayMountsOf(t testing.TB, img *rootfs.ImageRoot) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		for _, l := range img.Layers {
			if strings.Contains(line, l) {
				out = append(out, line)
				break
			}
		}
	}
	return out
}

// manyLayers makes n layers, each adding a file, under directory names
// long enough that their lowerdir= option would not fit in one page.
func manyLayers(t testing.TB, n int) []string {
	t.Helper()
	dir := t.TempDir()
	layers := make([]string, n)
	for i := range n {
		layers[i] = filepath.Join(dir, fmt.Sprintf("layer-%03d-%s", i, strings.Repeat("x", 40)))
		if i == 0 {
			baseLayer(t, layers[i])
			continue
		}
		must(t, os.Mkdir(layers[i], 0o755))
		writeFile(t, filepath.Join(layers[i], fmt.Sprintf("f%03d", i)), fmt.Sprint(i))
		if i == n-1 {
			writeFile(t, filepath.Join(layers[i], "kept"), "top\n")
		}
	}
	return layers
}

func TestImageRootManyLayers(t *testing.T) {
	e := newEnv(t)
	name, _ := e.create()
	pod, err := sandbox.Load(e.root, name)
	if err != nil {
		t.Fatal(err)
	}
	const n = 250
	layers := manyLayers(t, n)
	if opt := len("lowerdir=" + strings.Join(layers, ":")); opt < 4096 {
		t.Fatalf("lowerdir= of %d bytes: fits in a page, proves nothing", opt)
	}
	img := &rootfs.ImageRoot{Layers: layers}
	cc := sandbox.ContainerConfig{Image: img}
	cc.Args = []string{"/bin/sh", "-c", "ls / | wc -l; cat /kept /f001 /f249"}
	out, st := runImage(t, pod, cc)
	// n-1 files, kept, and bin dev etc gone home opq proc sys tmp work
	// directories of the base and the plan.
	if st != 0 || !strings.HasSuffix(out, "top\n1249") {
		t.Errorf("%d layers: exit %d, %q", n, st, out)
	}
	img.Layers = manyLayers(t, rootfs.MaxLayers+1)
	if _, err := pod.Run(context.Background(), cc); err == nil {
		t.Errorf("%d layers: no error", rootfs.MaxLayers+1)
	}
}

// TestImageRootKilledStart kills a process running a container from
// layers at moments spread over its start, then checks that gc leaves no
// upper directory, no mount and no process.
func TestImageRootKilledStart(t *testing.T) {
	e := newEnv(t)
	name, _ := e.create()
	img := testImage(t)
	img.Config.User = ""
	img.UpperParent = t.TempDir()
	cfg, err := json.Marshal(img)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "PODSB_TEST_IMAGE_RUN="+e.root+"\n"+name+"\n"+string(cfg))
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill it 0 to ~17 ms after it says it calls Run.
		buf := make([]byte, 5)
		io.ReadFull(out, buf)
		time.Sleep(time.Duration(i) * 1500 * time.Microsecond)
		cmd.Process.Kill()
		cmd.Wait()
	}
	before, _ := os.ReadDir(img.UpperParent)
	e.must("gc")
	// What is left belongs to containers that got a state (their
	// command was killed with the helper): rm removes it.
	pod, err := sandbox.Load(e.root, name)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := pod.Containers()
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Join(e.root, name, "containers"))
	left, _ := os.ReadDir(img.UpperParent)
	if len(ents) != len(cs) || len(left) != len(cs) {
		t.Errorf("after gc: %d containers with a state, %d directories, %d upper directories", len(cs), len(ents), len(left))
	}
	t.Logf("%d of 12 runs got a state; %d upper directories before gc, %d after", len(cs), len(before), len(left))
	for _, m := range overlayMountsOf(t, img) {
		t.Errorf("overlay on the host: %s", m)
	}
	e.must("rm", name)
	if left, _ := os.ReadDir(img.UpperParent); len(left) != 0 {
		t.Errorf("after rm: %d upper directories left", len(left))
	}
}

// imageRunHelper is the process TestImageRootKilledStart kills (TestMain
// runs it instead of the tests when its environment names an image): it
// runs a container of that image, and is killed while it does.
func imageRunHelper(v string) {
	parts := strings.SplitN(v, "\n", 3)
	var img rootfs.ImageRoot
	if err := json.Unmarshal([]byte(parts[2]), &img); err != nil {
		panic(err)
	}
	pod, err := sandbox.Load(parts[0], parts[1])
	if err != nil {
		panic(err)
	}
	cc := sandbox.ContainerConfig{Image: &img}
	cc.Args = []string{"sleep 1000"}
	os.Stdout.WriteString("start")
	pod.Run(context.Background(), cc)
	time.Sleep(time.Hour)
}

// Bad image roots fail with a clear error, and leave no container, no
// upper directory and no mount.
func TestImageRootBadInput(t *testing.T) {
	e := newEnv(t)
	name, _ := e.create()
	pod, err := sandbox.Load(e.root, name)
	if err != nil {
		t.Fatal(err)
	}
	img := testImage(t)
	img.UpperParent = t.TempDir()
	file := filepath.Join(t.TempDir(), "file")
	writeFile(t, file, "")
	// A layer whose /etc/passwd is a link to a file of the host: the
	// lookup must not follow it there.
	hostPasswd := filepath.Join(t.TempDir(), "passwd")
	writeFile(t, hostPasswd, "evil:x:4242:4242::/:/bin/sh\n")
	evil := filepath.Join(t.TempDir(), "evil")
	must(t, os.MkdirAll(filepath.Join(evil, "etc"), 0o755))
	must(t, os.Symlink(hostPasswd, filepath.Join(evil, "etc/passwd")))
	for _, tc := range []struct {
		name string
		edit func(cc *sandbox.ContainerConfig)
		want string
	}{
		{"rootfs and image", func(cc *sandbox.ContainerConfig) { cc.Rootfs = img.Layers[0] }, "not both"},
		{"no layers", func(cc *sandbox.ContainerConfig) { cc.Image.Layers = nil }, "no layers"},
		{"missing layer", func(cc *sandbox.ContainerConfig) { cc.Image.Layers = []string{"/nonexistent/layer"} }, "not a directory"},
		{"no command", func(cc *sandbox.ContainerConfig) { cc.Image.Config.Entrypoint, cc.Image.Config.Cmd = nil, nil }, "no command"},
		{"bad stop signal", func(cc *sandbox.ContainerConfig) { cc.Image.Config.StopSignal = "SIGNOPE" }, "SIGNOPE"},
		{"unknown user", func(cc *sandbox.ContainerConfig) { cc.User = "nobody" }, `user "nobody"`},
		{"unknown group", func(cc *sandbox.ContainerConfig) { cc.User = "app:nogroup" }, `group "nogroup"`},
		{"working directory is a file", func(cc *sandbox.ContainerConfig) { cc.Dir = "/kept/x" }, "working directory"},
		{"not executable", func(cc *sandbox.ContainerConfig) { cc.Args = []string{"/etc/passwd"}; cc.Image.Config.Entrypoint = nil }, "/etc/passwd"},
		{"passwd linked to the host", func(cc *sandbox.ContainerConfig) {
			cc.Image.Layers, cc.User = append(append([]string{}, img.Layers...), evil), "evil"
		}, `user "evil"`},
		{"upper parent gone", func(cc *sandbox.ContainerConfig) { cc.Image.UpperParent = file }, "upper parent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := *img
			c.Config.Env = append([]string{}, img.Config.Env...)
			cc := sandbox.ContainerConfig{Name: "bad", Image: &c}
			tc.edit(&cc)
			_, err := pod.Run(context.Background(), cc)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %v: want one line with %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(e.root, name, "containers", "bad")); err == nil {
				t.Error("container directory left")
			}
			if left, _ := os.ReadDir(img.UpperParent); len(left) != 0 {
				t.Errorf("%d upper directories left", len(left))
			}
		})
	}
	for _, m := range overlayMountsOf(t, img) {
		t.Errorf("overlay on the host: %s", m)
	}
}

// gc of a pod whose pause died removes its containers' upper directories.
func TestImageRootGCOfDeadPod(t *testing.T) {
	e := newEnv(t)
	name, doc := e.create()
	pod, err := sandbox.Load(e.root, name)
	if err != nil {
		t.Fatal(err)
	}
	img := testImage(t)
	img.UpperParent = t.TempDir()
	cc := sandbox.ContainerConfig{Image: img}
	cc.Args, cc.Detach = []string{"sleep 1000"}, true
	if _, err := pod.Run(context.Background(), cc); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(img.UpperParent); len(left) != 1 {
		t.Fatalf("%d upper directories", len(left))
	}
	must(t, unix.Kill(doc.Pid, unix.SIGKILL))
	must(t, waitDead(doc.Pid, doc.StartTime, 5*time.Second))
	if out := e.must("gc"); !strings.Contains(out, name) {
		t.Errorf("gc removed %q, not %s", out, name)
	}
	if left, _ := os.ReadDir(img.UpperParent); len(left) != 0 {
		t.Errorf("after gc: %d upper directories left", len(left))
	}
}
