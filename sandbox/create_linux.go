package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"podsb/reaper"
	"podsb/rootfs"
)

// cloneFlags are the namespaces a pod's init is born in.
const cloneFlags = unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWNS | unix.CLONE_NEWNET

// initConfig is what Create sends the pod's init over its config pipe.
type initConfig struct {
	Rootfs   rootfs.Spec `json:"rootfs"`
	Hostname string      `json:"hostname"`
}

// Create makes a pod and returns once it is ready: pause runs as PID 1 of
// the pod's new namespaces inside its root, the namespaces are pinned under
// the state directory and registered with ip netns, and the state is
// written. On failure nothing of the pod is left behind.
//
// The pause process is started as a child of the caller in a session of its
// own; a caller that exits leaves it to be adopted by the host's init.
func Create(ctx context.Context, c Config) (*Pod, error) {
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.Root, 0o700); err != nil {
		return nil, fmt.Errorf("state root: %w", err)
	}
	dir := filepath.Join(c.Root, c.Name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("pod %s: %w", c.Name, ErrExists)
		}
		return nil, fmt.Errorf("state directory: %w", err)
	}
	lock, err := lockDir(ctx, dir, c.Name)
	if err != nil {
		os.Remove(dir)
		return nil, err
	}
	defer lock.Close()
	p := &Pod{root: c.Root, name: c.Name}
	var child *initProc
	ok := false
	defer func() {
		if ok {
			return
		}
		if child != nil {
			child.kill()
		}
		teardown(dir, c.Name)
	}()

	if _, err := os.Lstat(filepath.Join(NetNSDir, c.Name)); err == nil {
		return nil, fmt.Errorf("network namespace %q: %w in %s", c.Name, ErrExists, NetNSDir)
	}
	ic := initConfig{
		Hostname: c.Hostname,
		Rootfs: rootfs.Spec{
			Dir:      c.Rootfs,
			Target:   filepath.Join(dir, "rootfs"),
			ReadOnly: c.ReadOnly,
			EtcDir:   filepath.Join(dir, "etc"),
			Volumes:  c.Volumes,
		},
	}
	for _, d := range []string{"ns", "rootfs", "etc"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	if err := writeEtc(ic.Rootfs.EtcDir, c.Hostname); err != nil {
		return nil, err
	}

	child, err = startInit(ic)
	if err != nil {
		return nil, err
	}
	pid := child.cmd.Process.Pid
	ps, err := readStat(pid)
	if err != nil {
		return nil, fmt.Errorf("pod init: %w", err)
	}
	st := &State{
		State: specs.State{
			Version: specs.Version,
			ID:      c.Name,
			Status:  specs.StateCreating,
			Pid:     pid,
			Bundle:  dir,
		},
		Created:   time.Now().UTC(),
		StartTime: ps.startTime,
		BootID:    bootID(),
		Hostname:  c.Hostname,
		Rootfs:    c.Rootfs,
		ReadOnly:  c.ReadOnly,
		Volumes:   c.Volumes,
	}
	// Written before the pod can be half-made, so that rm finds pause
	// even if this process dies from here on.
	if err := writeState(dir, st); err != nil {
		return nil, err
	}
	if err := child.await(ctx); err != nil {
		return nil, err
	}
	if st.Namespaces, err = pinNamespaces(pid, filepath.Join(dir, "ns")); err != nil {
		return nil, fmt.Errorf("pin namespaces: %w", err)
	}
	if st.NetNS, err = registerNetNS(c.Name, filepath.Join(dir, "ns", "net")); err != nil {
		return nil, err
	}
	st.Status = specs.StateRunning
	if err := writeState(dir, st); err != nil {
		return nil, err
	}
	// The pod no longer needs us: forget the child without waiting for it.
	child.cmd.Process.Release()
	ok = true
	p.state = st
	return p, nil
}

// initProc is a pod's init between its start and its exec of pause.
type initProc struct {
	cmd    *exec.Cmd
	status *os.File // read end of the status pipe
}

// startInit starts the pod's init, a re-exec of this binary in new
// namespaces, and sends it its configuration. Its fds: 3 the config pipe,
// 4 the status pipe, 5 the pause program.
func startInit(ic initConfig) (*initProc, error) {
	b, err := json.Marshal(ic)
	if err != nil {
		return nil, err
	}
	pause, err := reaper.Memfd()
	if err != nil {
		return nil, err
	}
	defer pause.Close()
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer cfgR.Close()
	defer cfgW.Close()
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer statusW.Close()
	cmd := &exec.Cmd{
		Path:       "/proc/self/exe",
		Args:       []string{initArg0},
		Env:        []string{},
		Dir:        "/",
		ExtraFiles: []*os.File{cfgR, statusW, pause},
		SysProcAttr: &unix.SysProcAttr{
			Cloneflags: cloneFlags,
			Setsid:     true,
		},
	}
	if err := cmd.Start(); err != nil {
		statusR.Close()
		return nil, fmt.Errorf("start pod init: %w", err)
	}
	p := &initProc{cmd: cmd, status: statusR}
	if _, err := cfgW.Write(b); err != nil {
		return p, fmt.Errorf("send pod init its config: %w", err)
	}
	return p, nil
}

// await waits for the init to report. Success is silence: the status pipe
// is close-on-exec, so end of file with nothing read means the init has
// executed pause. A message is the init's error.
func (p *initProc) await(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { p.status.SetReadDeadline(time.Now()) })
	defer stop()
	msg, err := io.ReadAll(p.status)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fmt.Errorf("pod init: %w", err)
	}
	if len(msg) > 0 {
		return fmt.Errorf("pod init: %s", msg)
	}
	// The kernel sets the new executable before it closes the status pipe;
	// an init that died without a word is a zombie with no executable.
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.cmd.Process.Pid))
	if err != nil || !strings.HasPrefix(exe, "/memfd:pause") {
		return errors.New("pod init: exited before starting pause")
	}
	return nil
}

// kill ends an init that did not make it, and reaps it.
func (p *initProc) kill() {
	p.status.Close()
	p.cmd.Process.Kill()
	p.cmd.Wait()
}

// writeEtc writes the pod's hostname, hosts and resolv.conf into etcDir.
func writeEtc(etcDir, hostname string) error {
	hosts := "127.0.0.1\tlocalhost " + hostname + "\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	files := map[string]string{
		"hostname":    hostname + "\n",
		"hosts":       hosts,
		"resolv.conf": resolvConf(),
	}
	for _, f := range rootfs.EtcFiles {
		if err := os.WriteFile(filepath.Join(etcDir, f), []byte(files[f]), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// resolvConf returns the host's resolv.conf without loopback name servers,
// which a pod cannot reach in its own network namespace.
func resolvConf() string {
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return ""
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" && (strings.HasPrefix(f[1], "127.") || f[1] == "::1") {
			continue
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}
