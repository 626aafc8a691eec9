package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/testenv"
	"github.com/podsb/podsb/rootfs"
	"github.com/podsb/podsb/sandbox"
)

// BenchmarkImageRun measures running `true` in a container whose root is
// an overlay of two image layers (busybox-static and a layer with a
// whiteout and an opaque directory) against the same run with --rootfs of
// the base layer, both through the Go API and waited for, `podsb run
// --rootfs` and `podsb run --image` (busybox-static, pulled into a store)
// through the binary, a root of 250 layers, and `podman run
// --rm` of the base layer's files
// imported as an image (podman's own --root and --runroot in a temporary
// directory, overlay storage, runc), interleaved. Results:
// docs/performance.md.
func BenchmarkImageRun(b *testing.B) {
	testenv.RequireRoot(b)
	rounds := benchRounds(b, 30)
	e := newEnv(b)
	name, _ := e.create()
	pod, err := sandbox.Load(e.root, name)
	if err != nil {
		b.Fatal(err)
	}
	img := testImage(b)
	img.Config = rootfs.ImageConfig{}
	base := img.Layers[0]
	run := func(tb testing.TB, cc sandbox.ContainerConfig) { runTrue(tb, pod, cc) }
	many := &rootfs.ImageRoot{Layers: manyLayers(b, 250)}
	// The CLI's run --image: busybox-static as an image of the store,
	// pulled from an in-process registry.
	images := b.TempDir()
	imageRef := serveImages(b, map[string]v1.Image{"bench/busybox:1": imageOf(b, v1.Config{}, busyboxLayer(b))}) + "/bench/busybox:1"
	e.must("--image-root", images, "image", "pull", "-q", imageRef)
	tools := []tool{
		{name: "podsb-250-layers", op: func(tb testing.TB, _ int, _ any) any { run(tb, sandbox.ContainerConfig{Image: many}); return nil }},
		{name: "podsb-layers", op: func(tb testing.TB, _ int, _ any) any { run(tb, sandbox.ContainerConfig{Image: img}); return nil }},
		{name: "podsb-rootfs", op: func(tb testing.TB, _ int, _ any) any { run(tb, sandbox.ContainerConfig{Rootfs: base}); return nil }},
		{name: "podsb-cli-rootfs", op: func(tb testing.TB, _ int, _ any) any {
			e.must("run", "--rootfs", base, name, "--", "/bin/true")
			return nil
		}},
		{name: "podsb-cli-image", op: func(tb testing.TB, _ int, _ any) any {
			e.must("--image-root", images, "run", "--image", imageRef, name, "--", "/bin/true")
			return nil
		}},
	}
	ref := "podsb-rootfs"
	if pm := newPodman(b, base); pm != nil {
		tools = append(tools, tool{name: "podman", op: func(tb testing.TB, _ int, _ any) any {
			if out, err := pm.command("run", "--rm", "--network", "none", "--runtime", "runc",
				"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096", "localhost/podsb-bench:1", "/bin/true").CombinedOutput(); err != nil {
				tb.Fatalf("podman run: %v: %s", err, out)
			}
			return nil
		}})
		ref = "podman"
	}
	report(b, measure(b, rounds, tools), ref)
}

// podman is a podman with a store of its own under a temporary directory.
type podman struct{ dir string }

// newPodman imports the files of dir as the image localhost/podsb-bench:1
// into a private store; nil (and a log line) without podman.
func newPodman(tb testing.TB, dir string) *podman {
	tb.Helper()
	if _, err := exec.LookPath("podman"); err != nil {
		tb.Log("podman is not installed: no podman series")
		return nil
	}
	pm := &podman{dir: tb.TempDir()}
	tb.Cleanup(pm.close)
	tar := filepath.Join(pm.dir, "image.tar")
	if out, err := exec.Command("tar", "-C", dir, "-cf", tar, ".").CombinedOutput(); err != nil {
		tb.Fatalf("tar: %v: %s", err, out)
	}
	if out, err := pm.command("import", tar, "localhost/podsb-bench:1").CombinedOutput(); err != nil {
		tb.Fatalf("podman import: %v: %s", err, out)
	}
	return pm
}

func (pm *podman) command(args ...string) *exec.Cmd {
	return exec.Command("podman", append([]string{
		"--root", filepath.Join(pm.dir, "root"), "--runroot", filepath.Join(pm.dir, "run"),
		"--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--events-backend", "none",
	}, args...)...)
}

// close removes the store, and what podman left mounted in it.
func (pm *podman) close() {
	pm.command("system", "reset", "--force").Run()
	for range 3 {
		b, _ := os.ReadFile("/proc/self/mountinfo")
		left := false
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], pm.dir+"/") {
				unix.Unmount(f[4], unix.MNT_DETACH)
				left = true
			}
		}
		if !left {
			break
		}
	}
}

// BenchmarkImageDensity runs 100 containers from one set of layers, each
// with its upper directory in one parent, and reports the disk each adds
// (du of its upper and work directory) next to the layers' size: the
// layers are shared, a container adds only what it writes and the mount
// points podsb makes. Layers and upper directories on $TMPDIR (a tmpfs
// under make bench) and on /var/tmp (a disk, as the image store's
// /var/lib/podsb). Results: docs/performance.md.
func BenchmarkImageDensity(b *testing.B) {
	testenv.RequireRoot(b)
	n := benchRounds(b, 100)
	for _, fs := range []struct{ name, dir string }{{"tmpdir", os.TempDir()}, {"var-tmp", "/var/tmp"}} {
		b.Run(fs.name, func(b *testing.B) {
			dir, err := os.MkdirTemp(fs.dir, "podsb-density-")
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { os.RemoveAll(dir) })
			density(b, n, dir)
		})
	}
}

func density(b *testing.B, n int, dir string) {
	e := newEnv(b)
	name, _ := e.create()
	pod, err := sandbox.Load(e.root, name)
	if err != nil {
		b.Fatal(err)
	}
	l0, l1 := filepath.Join(dir, "layer0"), filepath.Join(dir, "layer1")
	baseLayer(b, l0)
	upperLayer(b, l1)
	img := &rootfs.ImageRoot{Layers: []string{l0, l1}, UpperParent: filepath.Join(dir, "uppers")}
	must(b, os.Mkdir(img.UpperParent, 0o700))
	start := time.Now()
	for i := range n {
		cc := sandbox.ContainerConfig{Image: img}
		cc.Args = []string{"/bin/sh", "-c", "echo " + strconv.Itoa(i) + " > /id"}
		p, err := pod.Run(context.Background(), cc)
		if err != nil {
			b.Fatal(err)
		}
		if st, err := p.Wait(); st != 0 || err != nil {
			b.Fatalf("container %d: %d %v", i, st, err)
		}
	}
	elapsed := time.Since(start)
	uppers, _ := filepath.Glob(filepath.Join(img.UpperParent, "podsb-upper-*"))
	if len(uppers) != n {
		b.Fatalf("%d upper directories for %d containers", len(uppers), n)
	}
	layers := duKB(b, img.Layers...)
	total := duKB(b, img.UpperParent)
	one := duKB(b, uppers[0])
	b.ReportMetric(float64(total)/float64(n), "KB-per-container")
	b.ReportMetric(float64(layers), "KB-layers")
	b.ReportMetric(0, "ns/op")
	b.Logf("\n| containers | layers (shared) | all upper dirs | per container | one upper dir | run+wait each |\n| ---: | ---: | ---: | ---: | ---: | ---: |\n| %d | %d KB | %d KB | %.1f KB | %d KB | %s |",
		n, layers, total, float64(total)/float64(n), one, formatMs(elapsed/time.Duration(n)))
	out, _ := exec.Command("find", uppers[0]).Output()
	b.Logf("one upper directory:\n%s", out)
	e.must("rm", name)
	if left, _ := os.ReadDir(img.UpperParent); len(left) != 0 {
		b.Errorf("after rm: %d upper directories left", len(left))
	}
}

// duKB is du -sk of the paths together (hard links counted once).
func duKB(tb testing.TB, paths ...string) int {
	tb.Helper()
	out, err := exec.Command("du", append([]string{"-skc"}, paths...)...).Output()
	if err != nil {
		tb.Fatalf("du: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var kb int
	if _, err := fmt.Sscan(lines[len(lines)-1], &kb); err != nil {
		tb.Fatalf("du: %q", out)
	}
	return kb
}

// runTrue runs /bin/true as a container of pod, made as cc says, and
// waits for it.
func runTrue(tb testing.TB, pod *sandbox.Pod, cc sandbox.ContainerConfig) {
	tb.Helper()
	cc.Args = []string{"/bin/true"}
	p, err := pod.Run(context.Background(), cc)
	if err != nil {
		tb.Fatal(err)
	}
	if st, err := p.Wait(); st != 0 || err != nil {
		tb.Fatalf("true: %d %v", st, err)
	}
}
