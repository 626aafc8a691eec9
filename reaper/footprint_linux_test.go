package reaper_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/testenv"
	"github.com/podsb/podsb/reaper"
)

// TestFootprint checks what pause holds once running, and compares its
// proportional set size (Pss) with catatonit -P (podman's pause) and tini,
// each run the same way: as PID 1 of a new PID namespace.
func TestFootprint(t *testing.T) {
	testenv.RequireRoot(t)
	catatonit, err := exec.LookPath("catatonit")
	if err != nil {
		t.Fatal(err)
	}
	tini, err := exec.LookPath("tini")
	if err != nil {
		t.Fatal(err)
	}

	// An fd the launcher forgot to mark close-on-exec must not survive
	// into pause.
	leak, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer leak.Close()
	cmd := pauseCmd("pause")
	cmd.ExtraFiles = []*os.File{leak}
	cmd.Dir = t.TempDir() // pause must not keep it busy
	p := startPause(t, cmd)

	proc := func(name string) string {
		return fmt.Sprintf("/proc/%d/%s", p.pid, name)
	}
	if b, err := os.ReadFile(proc("comm")); err != nil || string(b) != "pause\n" {
		t.Errorf("comm = %q, %v; want \"pause\"", b, err)
	}
	if b, err := os.ReadFile(proc("cmdline")); err != nil || string(b) != "pause\x00" {
		t.Errorf("cmdline = %q, %v; want \"pause\\x00\"", b, err)
	}
	if b, err := os.ReadFile(proc("environ")); err != nil || len(b) != 0 {
		t.Errorf("environ = %q, %v; want empty", b, err)
	}
	if cwd, err := os.Readlink(proc("cwd")); err != nil || cwd != "/" {
		t.Errorf("cwd = %q, %v; want \"/\"", cwd, err)
	}
	ents, err := os.ReadDir(proc("fd"))
	if err != nil {
		t.Fatal(err)
	}
	var fds []string
	for _, e := range ents {
		fds = append(fds, e.Name())
	}
	if !slices.Equal(fds, []string{"0", "1", "2"}) {
		t.Errorf("pause holds fds %v, want [0 1 2]", fds)
	}

	pss := func(name string, pid int) int {
		t.Helper()
		kb, err := pssKB(pid)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return kb
	}
	other := func(path string, args ...string) int {
		t.Helper()
		cmd := exec.Command(path, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}
		c := start(t, cmd)
		waitSleeping(t, c.pid, filepath.Base(path))
		return pss(path, c.pid)
	}
	pausePss := pss("pause", p.pid)
	catatonitPss := other(catatonit, "-P")
	tiniPss := other(tini, "--", "sleep", "1000")
	t.Logf("Pss: pause %d kB, catatonit -P %d kB, tini %d kB (image %d bytes)",
		pausePss, catatonitPss, tiniPss, len(reaper.Image()))
	if 2*pausePss > catatonitPss {
		t.Errorf("pause's Pss is %d kB, more than half of catatonit -P's %d kB", pausePss, catatonitPss)
	}
}
