package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"podsb/internal/setup"
	"podsb/network"
	"podsb/reaper"
	"podsb/rootfs"
)

// cloneFlags are the namespaces a pod's init is born in.
const cloneFlags = unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWNS | unix.CLONE_NEWNET

// pauseOOMScoreAdj is the OOM score adjustment of pause, as Kubernetes gives
// its pause container: the kernel should kill it last, as the pod dies with
// it. Lowering the score needs CAP_SYS_RESOURCE; without it pause keeps the
// score it inherited rather than failing the pod.
const pauseOOMScoreAdj = "-998"

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
	step := c.tracer()
	root, err := makeRoot(c.Root)
	if err != nil {
		if errors.Is(err, ErrUntrustedRoot) {
			return nil, err
		}
		return nil, fmt.Errorf("state root: %w", err)
	}
	defer root.Close()
	// The pod's directory, marked and locked from its first moment.
	lock, err := makePodDir(root, c.Root, c.Name)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	dir := lock.path
	step("state directory")
	p := &Pod{root: c.Root, name: c.Name}
	var child *initProc
	var lease *network.Lease
	var cgroup string
	ok := false
	defer func() {
		if ok {
			return
		}
		if child != nil {
			child.kill()
		}
		if lease != nil {
			releaseNetwork(c.Root, c.Name, lease)
		}
		if cgroup != "" {
			removeCgroup(&State{Cgroup: cgroup, Limits: c.Limits})
		}
		teardown(lock)
	}()

	if _, err := os.Lstat(filepath.Join(NetNSDir, c.Name)); err == nil {
		return nil, fmt.Errorf("network namespace %q: %w in %s", c.Name, ErrExists, NetNSDir)
	}
	var podIP netip.Addr
	if c.Network != nil {
		if lease, err = reserveNetwork(c.Root, c.Name, c.Network); err != nil {
			return nil, err
		}
		podIP = lease.Addr.Addr()
		step("reserve address and ports")
	}
	spec := rootfs.Spec{
		Dir:      c.Rootfs,
		Target:   filepath.Join(dir, "rootfs"),
		ReadOnly: c.ReadOnly,
		Etc:      etcFiles(c.Hostname, podIP),
		Volumes:  c.Volumes,
	}
	for _, d := range []string{"ns", "rootfs"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	if spec.Dir != "" {
		// A directory root gets the files by bind mounts from here.
		spec.EtcDir = filepath.Join(dir, "etc")
		if err := writeEtc(spec.EtcDir, spec.Etc); err != nil {
			return nil, err
		}
	}
	spec.Mask = !c.Security.Privileged
	spec.NoDev = !c.Security.Privileged
	ops, err := initProgram(&spec, c.Hostname, c.Security, true)
	if err != nil {
		return nil, err
	}
	step("plan")
	child, err = startInit(ops, cloneFlags)
	if err != nil {
		return nil, err
	}
	step("clone namespaces, exec init")
	pid := child.pid
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
		Network:   lease,
		Limits:    c.Limits,
		Security:  c.Security,
	}
	if !c.Limits.none() {
		// Recorded before the cgroup is made, so that rm finds it
		// whenever this process dies.
		cgroup = cgroupPath(c.Root, c.Name)
		st.Cgroup = cgroup
	}
	// Written before the pod can be half-made, so that rm finds pause
	// even if this process dies from here on.
	if err := writeState(lock, st); err != nil {
		return nil, err
	}
	step("first state write")
	if !c.Limits.none() {
		// pause joins its cgroup before it runs its program: everything
		// of the pod is born in it.
		m, err := cgroupManager(cgroup, c.Limits)
		if err == nil {
			if err = m.Apply(pid); err == nil {
				err = m.Set(c.Limits.resources())
			}
		}
		if err != nil {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
		step("cgroup")
	}
	if err := child.send(); err != nil {
		return nil, err
	}
	if err := child.await(ctx); err != nil {
		return nil, err
	}
	step("init: mounts, pivot_root")
	if st.Namespaces, err = pinNamespaces(pid, filepath.Join(dir, "ns")); err != nil {
		return nil, fmt.Errorf("pin namespaces: %w", err)
	}
	step("pin namespaces")
	if lease != nil {
		if err := attachNetwork(c.Root, c.Name, lease, filepath.Join(dir, "ns", "net"), step); err != nil {
			return nil, err
		}
		step("bridge, veth, address, route, NAT")
	}
	if st.NetNS, err = registerNetNS(c.Name, filepath.Join(dir, "ns", "net")); err != nil {
		return nil, err
	}
	step("register with ip netns")
	st.Status = specs.StateRunning
	if err := writeJoin(dir, st); err != nil {
		return nil, err
	}
	if err := writeState(lock, st); err != nil {
		return nil, err
	}
	step("final state write")
	ok = true
	p.state = st
	return p, nil
}

// initProgram is what the pod's init does before it becomes pause.
// With newNet, the init also names the new UTS namespace and brings up the
// new network namespace's loopback.
func initProgram(spec *rootfs.Spec, hostname string, sec Security, newNet bool) ([]setup.Op, error) {
	root, err := rootfs.Plan(spec)
	if err != nil {
		return nil, err
	}
	mask, all, err := sec.capMask()
	if err != nil {
		return nil, err
	}
	priv, err := sec.privilegeOps(0, mask, all, nil)
	if err != nil {
		return nil, err
	}
	root = append(root, priv...)
	ops := []setup.Op{{Code: setup.Write, Flags: setup.Optional, Str: []string{"/proc/self/oom_score_adj", pauseOOMScoreAdj}}}
	if newNet {
		ops = append(ops, setup.Op{Code: setup.Hostname, Str: []string{hostname}}, setup.Op{Code: setup.LoopbackUp})
	}
	return append(ops, root...), nil
}

// initProc is a pod's init between its start and its becoming pause.
type initProc struct {
	pid    int
	ops    []setup.Op
	config *os.File // write end of the program pipe, until send
	status *os.File // read end of the status pipe
}

// startInit starts the pod's init in new namespaces: the pause program, from
// a sealed memfd, in setup mode; send gives it its program. The init's
// fds: 0-2 /dev/null, 3 the program, 4 the status pipe, 5 the memfd it was
// executed from.
//
// It forks with syscall.ForkExec rather than os/exec: the pod's init is not
// a child this process waits for, and os/exec would cost a probing fork and
// three opens of /dev/null on every create.
func startInit(ops []setup.Op, flags uintptr) (*initProc, error) {
	pause, err := reaper.Memfd()
	if err != nil {
		return nil, err
	}
	defer pause.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer null.Close()
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer cfgR.Close()
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer statusW.Close()
	pid, err := syscall.ForkExec("/proc/self/fd/5", []string{"pause", "setup"}, &syscall.ProcAttr{
		Dir:   "/",
		Env:   []string{},
		Files: []uintptr{null.Fd(), null.Fd(), null.Fd(), cfgR.Fd(), statusW.Fd(), pause.Fd()},
		Sys: &syscall.SysProcAttr{
			Cloneflags: flags,
			Setsid:     true,
		},
	})
	if err != nil {
		statusR.Close()
		cfgW.Close()
		return nil, fmt.Errorf("start pod init: %w", err)
	}
	return &initProc{pid: pid, ops: ops, config: cfgW, status: statusR}, nil
}

// send gives the init its program. Until then the init waits; if this
// process dies first, the init finds no program and exits, so a create
// killed before its first state write leaves no process behind.
func (p *initProc) send() error {
	defer p.config.Close()
	if _, err := p.config.Write(setup.Encode(p.ops)); err != nil {
		return fmt.Errorf("send pod init its program: %w", err)
	}
	return nil
}

// await waits for the init to report. Success is silence: when the init has
// run its program it closes every fd but stdio, so end of file with nothing
// read means the pod is ready. A report is the failed operation.
func (p *initProc) await(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { p.status.SetReadDeadline(time.Now()) })
	defer stop()
	report, err := io.ReadAll(p.status)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fmt.Errorf("pod init: %w", err)
	}
	if len(report) > 0 {
		return fmt.Errorf("pod init: %w", setup.Failure(p.ops, report))
	}
	// An init that died without a word (killed) is a zombie by now.
	if ps, err := readStat(p.pid); err != nil || ps.state == 'Z' {
		return errors.New("pod init: died before the pod was ready")
	}
	return nil
}

// kill ends an init that did not make it, and reaps it.
func (p *initProc) kill() {
	p.config.Close()
	p.status.Close()
	unix.Kill(p.pid, unix.SIGKILL)
	unix.Wait4(p.pid, nil, 0, nil)
}

// etcFiles returns the contents of the pod's hostname, hosts and
// resolv.conf. The hostname maps to the pod's address if it has one.
func etcFiles(hostname string, ip netip.Addr) map[string]string {
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	if ip.IsValid() {
		hosts += ip.String() + "\t" + hostname + "\n"
	} else {
		hosts = "127.0.0.1\tlocalhost " + hostname + "\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	}
	return map[string]string{
		"hostname":    hostname + "\n",
		"hosts":       hosts,
		"resolv.conf": resolvConf(),
	}
}

// writeEtc writes the files into etcDir.
func writeEtc(etcDir string, files map[string]string) error {
	if err := os.Mkdir(etcDir, 0o700); err != nil {
		return err
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
