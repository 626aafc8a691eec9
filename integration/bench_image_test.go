package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/testenv"
)

// BenchmarkImagePull measures pulling and unpacking a locally built image
// of about 100 MB in 6 layers from an in-process registry on 127.0.0.1,
// each round into an empty store: podsb image pull against podman pull
// (with a private root, runroot and config, no system service) and against
// skopeo copy to an OCI layout followed by umoci unpack, interleaved in one
// run. Results: docs/performance.md.
func BenchmarkImagePull(b *testing.B) {
	testenv.RequireRoot(b)
	for _, p := range []string{"podman", "skopeo", "umoci"} {
		if _, err := exec.LookPath(p); err != nil {
			b.Fatalf("%s not installed (make deps): %v", p, err)
		}
	}
	rounds := benchRounds(b, 5)
	e := newEnv(b)
	host := serveImages(b, map[string]v1.Image{"bench:1": benchImage(b)})
	ref := host + "/bench:1"
	tmp := b.TempDir()
	conf := func(name, text string) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			b.Fatal(err)
		}
		return p
	}
	podmanEnv := append(os.Environ(),
		"CONTAINERS_CONF="+conf("containers.conf", "[engine]\nevents_logger = \"none\"\ncgroup_manager = \"cgroupfs\"\n"),
		"CONTAINERS_REGISTRIES_CONF="+conf("registries.conf", "[[registry]]\nlocation = \""+host+"\"\ninsecure = true\n"),
		"CONTAINERS_STORAGE_CONF="+conf("storage.conf", "[storage]\ndriver = \"overlay\"\nrunroot = \""+tmp+"/unused-run\"\ngraphroot = \""+tmp+"/unused-graph\"\n"),
	)
	run := func(env []string, name string, args ...string) {
		cmd := exec.Command(name, args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	// Podman sets up a new store (probing overlayfs) on its first
	// command: that is done before the clock starts, by podman images.
	// Its runroot must be at most 50 characters.
	runroots := map[string]string{}
	podmanArgs := func(dir string) []string {
		if runroots[dir] == "" {
			rr, err := os.MkdirTemp("", "pr")
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { os.RemoveAll(rr) })
			runroots[dir] = rr
		}
		return []string{"--root", dir + "/root", "--runroot", runroots[dir], "--tmpdir", dir + "/tmp",
			"--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--events-backend", "none"}
	}
	tools := []struct {
		name string
		prep func(dir string)
		pull func(dir string, i int)
	}{
		{"podsb", nil, func(dir string, i int) {
			run(nil, e.bin, "--image-root", dir, "image", "pull", "-q", ref)
			if ents, err := os.ReadDir(filepath.Join(dir, "layers")); err != nil || len(ents) != 6 {
				b.Fatalf("podsb unpacked %d layers, want 6: %v", len(ents), err)
			}
		}},
		{"podman", func(dir string) { run(podmanEnv, "podman", append(podmanArgs(dir), "images")...) }, func(dir string, i int) {
			run(podmanEnv, "podman", append(podmanArgs(dir), "pull", "-q", "--tls-verify=false", ref)...)
		}},
		{"skopeo+umoci", nil, func(dir string, i int) {
			run(nil, "skopeo", "copy", "-q", "--src-tls-verify=false", "docker://"+ref, "oci:"+dir+"/oci:bench")
			run(nil, "umoci", "unpack", "--image", dir+"/oci:bench", dir+"/bundle")

		}},
	}
	samples := map[string][]time.Duration{}
	for i := range rounds + 1 { // round 0 warms the caches
		for _, t := range tools {
			dir, err := os.MkdirTemp(tmp, t.name+"-")
			if err != nil {
				b.Fatal(err)
			}
			if t.prep != nil {
				t.prep(dir)
			}
			start := time.Now()
			t.pull(dir, i)
			d := time.Since(start)
			if i == 1 {
				logDu(b, t.name, dir)
			}
			if i > 0 {
				samples[t.name] = append(samples[t.name], d)
			}
			for _, m := range mountsUnder(b, dir) {
				unix.Unmount(m, unix.MNT_DETACH)
			}
			if err := os.RemoveAll(dir); err != nil {
				b.Fatal(err)
			}
		}
	}
	report(b, samples, "podman")
	report(b, samples, "skopeo+umoci")
}

// logDu logs the disk use of a tool's store after a pull.
func logDu(b *testing.B, name, dir string) {
	out, err := exec.Command("du", "-sh", dir).Output()
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%s: du -sh: %s", name, out)
}
