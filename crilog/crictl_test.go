package crilog

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeRuntime answers what crictl logs asks: the container's log path.
type fakeRuntime struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	logPath string
}

func (f *fakeRuntime) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: "crilog-test", RuntimeVersion: "0", RuntimeApiVersion: "v1"}, nil
}

func (f *fakeRuntime) ContainerStatus(_ context.Context, r *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	return &runtimeapi.ContainerStatusResponse{Status: &runtimeapi.ContainerStatus{
		Id: r.ContainerId, State: runtimeapi.ContainerState_CONTAINER_EXITED, LogPath: f.logPath, CreatedAt: 1,
		Metadata: &runtimeapi.ContainerMetadata{Name: "c"}, Image: &runtimeapi.ImageSpec{Image: "x"}, ImageRef: "x", StartedAt: 1, FinishedAt: 2,
	}}, nil
}

// TestCrictlReadsTheLog: crictl logs (kubelet's reader) reads what the
// logger wrote back to the container's output. It needs crictl v1.37.0
// ($PODSB_CRICTL, else make tools' /var/cache/podsb-tools/crictl-v1.37.0).
func TestCrictlReadsTheLog(t *testing.T) {
	crictl := os.Getenv("PODSB_CRICTL")
	if crictl == "" {
		crictl = "/var/cache/podsb-tools/crictl-v1.37.0"
	}
	if _, err := os.Stat(crictl); err != nil {
		t.Skipf("no crictl (%v): make tools builds it; TestParseLineKubelet checks kubelet's rules without it", err)
	}
	c := startCtr(t, ctrOpts{script: `echo one; echo two >&2; head -c 40000 /dev/zero | tr '\0' a; echo; printf 'tty\r\n'; printf 'last'`})
	c.wait()

	sock := filepath.Join(c.dir, "cri.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(srv, &fakeRuntime{logPath: c.log})
	go srv.Serve(ln)
	defer srv.Stop()

	var stdout, stderr bytes.Buffer
	cmd := exec.Command(crictl, "--runtime-endpoint", "unix://"+sock, "--timeout", "10s", "logs", strings.Repeat("c", 64))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("crictl logs: %v: %s", err, stderr.String())
	}
	if want := "one\n" + strings.Repeat("a", 40000) + "\ntty\nlast\n"; stdout.String() != want {
		t.Errorf("crictl logs stdout: %d bytes %.40q..., want %d bytes", stdout.Len(), stdout.String(), len(want))
	}
	if !strings.Contains(stderr.String(), "two\n") {
		t.Errorf("crictl logs stderr: %q", stderr.String())
	}
}
