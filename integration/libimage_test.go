package integration

import (
	"context"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/podsb/podsb/image"
	"github.com/podsb/podsb/image/fetch"
	"github.com/podsb/podsb/internal/testenv"
	"github.com/podsb/podsb/sandbox"
)

// TestLibraryPullAndRun is the Go API's image story in a few lines: open a
// store, pull an image by name, and run a container from it in a pod.
func TestLibraryPullAndRun(t *testing.T) {
	testenv.RequireRoot(t)
	img := imageOf(t, v1.Config{Entrypoint: []string{"/bin/busybox"}, Cmd: []string{"echo", "from the image"}}, busyboxLayer(t))
	ref := serveImages(t, map[string]v1.Image{"lib/busybox:1": img}) + "/lib/busybox:1"
	ctx := context.Background()

	store, err := image.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fetch.Pull(ctx, store, ref, fetch.PullOptions{}); err != nil {
		t.Fatal(err)
	}
	pod, err := sandbox.Create(ctx, sandbox.Config{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	st := pod.State()
	t.Cleanup(func() {
		checkNoLeaks(t, filepath.Dir(pod.Dir()), map[string]bool{pod.Name(): true}, map[int]uint64{st.Pid: st.StartTime})
	})
	defer pod.Remove(ctx, sandbox.RemoveOptions{Force: true})
	root, err := store.RootOf(ref, "my-test")
	if err != nil {
		t.Fatal(err)
	}
	defer store.Release(root.ID, "my-test")

	var out syncBuffer
	p, err := pod.Run(ctx, sandbox.ContainerConfig{Image: root, ExecConfig: sandbox.ExecConfig{Stdout: &out}})
	if err != nil {
		t.Fatal(err)
	}
	if status, err := p.Wait(); status != 0 || err != nil || out.String() != "from the image\n" {
		t.Errorf("run: %d %v %q", status, err, out.String())
	}
}
