package cri

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podsb/podsb/crilog"
)

// busyboxImage is an image of Debian's static busybox, with sh, sleep and
// echo, and cmd as its Cmd.
func busyboxImage(t *testing.T, cmd ...string) v1.Image {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skipf("no /bin/busybox (Debian's busybox-static, make deps): %v", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "bin/", Mode: 0o755, Typeflag: tar.TypeDir})
	tw.WriteHeader(&tar.Header{Name: "bin/busybox", Mode: 0o755, Size: int64(len(bb)), Typeflag: tar.TypeReg})
	tw.Write(bb)
	for _, n := range []string{"sh", "sleep", "echo", "cat", "true", "false", "ls"} {
		tw.WriteHeader(&tar.Header{Name: "bin/" + n, Linkname: "busybox", Mode: 0o777, Typeflag: tar.TypeSymlink})
	}
	tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Cmd = cmd
	cf.Config.Env = []string{"PATH=/bin", "FROM_IMAGE=yes"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// pullBusybox serves a busybox image and pulls it; it returns its ref.
func (ts *testServer) pullBusybox(cmd ...string) string {
	ts.t.Helper()
	ref := testRegistry(ts.t, "", "") + "/test/busybox:v1"
	pushImage(ts.t, ref, busyboxImage(ts.t, cmd...))
	if _, err := ts.im.PullImage(context.Background(), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
		ts.t.Fatal(err)
	}
	return ref
}

func ctrCfg(name, ref string, args ...string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: ref},
		Args:     args,
		LogPath:  name + ".log",
		Labels:   map[string]string{"ctr": name},
	}
}

func (ts *testServer) create(pod string, pcfg *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) string {
	ts.t.Helper()
	r, err := ts.rt.CreateContainer(context.Background(), &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: cfg, SandboxConfig: pcfg})
	if err != nil {
		ts.t.Fatalf("CreateContainer %s: %v", cfg.GetMetadata().GetName(), err)
	}
	return r.ContainerId
}

func (ts *testServer) cstatus(id string) *runtimeapi.ContainerStatus {
	ts.t.Helper()
	r, err := ts.rt.ContainerStatus(context.Background(), &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		ts.t.Fatalf("ContainerStatus: %v", err)
	}
	return r.Status
}

// waitExited waits until the container id has exited and returns its status.
func (ts *testServer) waitExited(id string) *runtimeapi.ContainerStatus {
	ts.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if st := ts.cstatus(id); st.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			return st
		}
	}
	ts.t.Fatalf("container %s did not exit", id)
	return nil
}

func TestContainerLifecycle(t *testing.T) {
	ts := newTestServer(t)
	ctx := context.Background()
	ref := ts.pullBusybox("sleep", "1000")
	pcfg := podCfg("ctrs", 0)
	pcfg.LogDirectory = t.TempDir()
	pod := ts.runp(pcfg)

	// A command of the config's, exiting 3.
	short := ts.create(pod, pcfg, ctrCfg("short", ref, "sh", "-c", "echo hello; echo oops >&2; exit 3"))
	if len(short) != 64 {
		t.Errorf("container ID %q", short)
	}
	if st := ts.cstatus(short); st.State != runtimeapi.ContainerState_CONTAINER_CREATED || st.CreatedAt == 0 || st.StartedAt != 0 ||
		st.LogPath != filepath.Join(pcfg.LogDirectory, "short.log") || st.ImageRef == "" || st.Image.GetImage() != ref {
		t.Errorf("created: %v", st)
	}
	_, err := ts.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: short})
	if err != nil {
		t.Fatal(err)
	}
	st := ts.waitExited(short)
	if st.ExitCode != 3 || st.Reason != "Error" || st.StartedAt == 0 || st.FinishedAt < st.StartedAt {
		t.Errorf("exited: code %d reason %q started %d finished %d", st.ExitCode, st.Reason, st.StartedAt, st.FinishedAt)
	}
	// Its log, in the CRI format.
	var stdout, stderr []string
	f, err := os.Open(st.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(f)
	for {
		l, err := crilog.ReadLine(br)
		if err != nil {
			break
		}
		if l.Stream == crilog.Stdout {
			stdout = append(stdout, string(l.Content))
		} else {
			stderr = append(stderr, string(l.Content))
		}
	}
	f.Close()
	if strings.Join(stdout, "|") != "hello" || strings.Join(stderr, "|") != "oops" {
		t.Errorf("log: stdout %q stderr %q", stdout, stderr)
	}
	_, err = ts.rt.ReopenContainerLog(ctx, &runtimeapi.ReopenContainerLogRequest{ContainerId: short})
	wantCode(t, "reopen of an exited container's log", err, codes.FailedPrecondition)
	_, err = ts.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: short})
	wantCode(t, "second start", err, codes.FailedPrecondition)

	// The image's command, stopped by StopContainer.
	long := ts.create(pod, pcfg, ctrCfg("long", ref))
	if _, err := ts.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: long}); err != nil {
		t.Fatal(err)
	}
	if st := ts.cstatus(long); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("long: %v", st)
	}
	// ReopenContainerLog after a rotation makes a new log file.
	longLog := filepath.Join(pcfg.LogDirectory, "long.log")
	if err := os.Rename(longLog, longLog+".1"); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.rt.ReopenContainerLog(ctx, &runtimeapi.ReopenContainerLogRequest{ContainerId: long}); err != nil {
		t.Errorf("ReopenContainerLog: %v", err)
	}
	if _, err := os.Stat(longLog); err != nil {
		t.Errorf("after reopen: %v", err)
	}
	var sr *runtimeapi.ContainerStatsResponse
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if sr, err = ts.rt.ContainerStats(ctx, &runtimeapi.ContainerStatsRequest{ContainerId: long}); err != nil ||
			sr.Stats.GetMemory().GetWorkingSetBytes().GetValue() != 0 {
			break
		}
	}
	if err != nil || sr.Stats.GetAttributes().GetId() != long || sr.Stats.GetCpu().GetTimestamp() == 0 ||
		sr.Stats.GetMemory().GetWorkingSetBytes().GetValue() == 0 {
		t.Errorf("stats: %v %v", sr, err)
	}
	lsr, err := ts.rt.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{Filter: &runtimeapi.ContainerStatsFilter{LabelSelector: map[string]string{"ctr": "long"}}})
	if err != nil || len(lsr.Stats) != 1 || lsr.Stats[0].GetAttributes().GetId() != long {
		t.Errorf("stats by label: %v %v", lsr, err)
	}
	lr, err := ts.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}}})
	if err != nil || len(lr.Containers) != 1 || lr.Containers[0].Id != long || lr.Containers[0].PodSandboxId != pod {
		t.Errorf("running: %v %v", lr, err)
	}
	lr, err = ts.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		PodSandboxId: pod, LabelSelector: map[string]string{"ctr": "short"}}})
	if err != nil || len(lr.Containers) != 1 || lr.Containers[0].Id != short {
		t.Errorf("by label: %v %v", lr, err)
	}

	// A restart keeps every container and its status.
	ts.restart()
	if st := ts.cstatus(short); st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 3 {
		t.Errorf("short after restart: %v", st)
	}
	if st := ts.cstatus(long); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("long after restart: %v", st)
	}
	if _, err := ts.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: long, Timeout: 5}); err != nil {
		t.Fatal(err)
	}
	if st := ts.cstatus(long); st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 128+15 {
		t.Errorf("long after stop: code %d %v", st.ExitCode, st)
	}
	if _, err := ts.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: long}); err != nil {
		t.Errorf("second stop: %v", err)
	}

	// Bad input.
	_, err = ts.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: ctrCfg("short", ref)})
	wantCode(t, "same name and attempt", err, codes.AlreadyExists)
	_, err = ts.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: strings.Repeat("f", 64), Config: ctrCfg("x", ref)})
	wantCode(t, "unknown pod", err, codes.NotFound)
	_, err = ts.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: &runtimeapi.ContainerConfig{Image: &runtimeapi.ImageSpec{Image: ref}}})
	wantCode(t, "no metadata", err, codes.InvalidArgument)
	_, err = ts.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: ctrCfg("noimage", "")})
	wantCode(t, "no image", err, codes.InvalidArgument)
	_, err = ts.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: ctrCfg("notpulled", "127.0.0.1:1/nosuch:v1")})
	wantCode(t, "image not in the store", err, codes.NotFound)
	bad := ctrCfg("badmount", ref)
	bad.Mounts = []*runtimeapi.Mount{{HostPath: "relative", ContainerPath: "/x"}}
	_, err = ts.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: bad})
	wantCode(t, "relative host path", err, codes.InvalidArgument)
	bad.Mounts = []*runtimeapi.Mount{{HostPath: t.TempDir(), ContainerPath: "/x", Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL}}
	_, err = ts.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: bad})
	wantCode(t, "bidirectional propagation in an unprivileged container", err, codes.InvalidArgument)
	_, err = ts.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: strings.Repeat("e", 64)})
	wantCode(t, "status of unknown", err, codes.NotFound)
	_, err = ts.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{})
	wantCode(t, "start of empty ID", err, codes.InvalidArgument)
	if _, err := ts.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: strings.Repeat("e", 64)}); err != nil {
		t.Errorf("remove of unknown: %v", err)
	}

	if _, err := ts.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: short}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: short}); err == nil {
		t.Error("status of a removed container")
	}
	// A running container goes with its pod.
	again := ts.create(pod, pcfg, ctrCfg("again", ref))
	if _, err := ts.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: again}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	if st := ts.cstatus(again); st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 128+9 {
		t.Errorf("after stopp: code %d %v", st.ExitCode, st)
	}
	_, err = ts.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: ctrCfg("late", ref)})
	wantCode(t, "create in a stopped pod", err, codes.FailedPrecondition)
	// Its containers hold the image until they are removed.
	_, err = ts.im.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	wantCode(t, "remove of a held image", err, codes.FailedPrecondition)
	if _, err := ts.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.im.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
		t.Errorf("remove of the image once its containers are gone: %v", err)
	}
	// The last pod leaves the bridge network for the next one while the
	// server runs; the server's stop removes it (checkNoLeaks).
	if _, err := net.InterfaceByName(ts.bridge); err != nil {
		t.Errorf("bridge %s after the last pod's removal: %v", ts.bridge, err)
	}
	if lr, err := ts.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{}); err != nil || len(lr.Containers) != 0 {
		t.Errorf("left: %v %v", lr, err)
	}
	if ents, _ := os.ReadDir(filepath.Join(ts.opts.StateDir, "containers")); len(ents) != 0 {
		t.Errorf("records left: %v", ents)
	}
}
