package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/creack/pty"
	securejoin "github.com/cyphar/filepath-securejoin"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"podsb/internal/errclass"
	"podsb/internal/setup"
	"podsb/nsenter"
	"podsb/rootfs"
)

// ContainerConfig describes a container: a command with a root filesystem
// and mount namespace of its own, in the pod's PID, network, IPC and UTS
// namespaces, with pause as its PID 1.
type ContainerConfig struct {
	// ExecConfig is the command, as for Exec; Detach sends its output to
	// the log file ROOT/POD/logs/NAME.log.
	ExecConfig
	// Name is unique within the pod; a random ID if empty.
	Name string
	// Rootfs is a host directory to use as the container's root; empty is
	// the default root, as for a pod.
	Rootfs string
	// ReadOnly makes the container's root read-only.
	ReadOnly bool
	// Volumes are host paths bound into the container.
	Volumes []Volume
	// Image, if set, makes the root an overlay of image layers (instead
	// of Rootfs) and applies the image's configuration: see
	// rootfs.ImageRoot.
	Image *rootfs.ImageRoot
}

// ContainerState is what podsb keeps of a container in
// ROOT/POD/containers/NAME/state.json.
type ContainerState struct {
	Name string `json:"name"`
	// Status is running while the container's main process lives.
	Status specs.ContainerState `json:"status"`
	// Pid is the main process's PID on the host, PodPID inside the pod.
	Pid       int       `json:"pid"`
	PodPID    int       `json:"podPid"`
	StartTime uint64    `json:"startTime"`
	Created   time.Time `json:"created"`
	Args      []string  `json:"args"`
	Rootfs    string    `json:"rootfs,omitempty"`
	ReadOnly  bool      `json:"readOnly,omitempty"`
	Volumes   []Volume  `json:"volumes,omitempty"`
	Detached  bool      `json:"detached,omitempty"`
	// Image is the image the root was made of.
	Image *rootfs.ImageRoot `json:"image,omitempty"`
	// MountNamespace is the pinned handle of its mount namespace.
	MountNamespace string `json:"mountNamespace"`
	// Log is the output of a detached container.
	Log string `json:"log,omitempty"`
}

// containerMountNS is where a container's mount namespace is pinned: in the
// pod's ns directory, a private mount.
func (p *Pod) containerMountNS(name string) string {
	return filepath.Join(p.Dir(), "ns", "mnt-"+name)
}

func (p *Pod) containerDir(name string) string {
	return filepath.Join(p.Dir(), "containers", name)
}

// Containers lists the pod's containers, sorted by name, with live status.
func (p *Pod) Containers() ([]ContainerState, error) {
	ents, err := os.ReadDir(filepath.Join(p.Dir(), "containers"))
	if isNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []ContainerState
	for _, e := range ents {
		if cs, err := p.Container(e.Name()); err == nil {
			out = append(out, cs)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Container returns the state of one container, with live status.
func (p *Pod) Container(name string) (ContainerState, error) {
	var cs ContainerState
	if err := validateContainerName(name); err != nil {
		return cs, err
	}
	b, err := os.ReadFile(filepath.Join(p.containerDir(name), stateFile))
	if err != nil {
		return cs, errclass.New(ErrNotFound, "no such container %s in pod %s", name, p.name)
	}
	if err := json.Unmarshal(b, &cs); err != nil {
		return cs, err
	}
	cs.Status = specs.StateStopped
	if ps, err := readStat(cs.Pid); err == nil && cs.Pid > 0 && ps.startTime == cs.StartTime && ps.state != 'Z' && ps.state != 'X' && p.Status() == specs.StateRunning {
		cs.Status = specs.StateRunning
	}
	return cs, nil
}

// SignalContainer sends sig to a container's main process, through a pidfd
// opened before the identity check.
func (p *Pod) SignalContainer(name string, sig unix.Signal) error {
	cs, err := p.Container(name)
	if err != nil {
		return err
	}
	if cs.Status != specs.StateRunning {
		return errclass.New(ErrNotRunning, "container %s in pod %s is not running", name, p.name)
	}
	fd, err := unix.PidfdOpen(cs.Pid, 0)
	if err != nil {
		return errclass.New(ErrNotRunning, "container %s in pod %s is not running", name, p.name)
	}
	defer unix.Close(fd)
	if cs, err = p.Container(name); err != nil || cs.Status != specs.StateRunning {
		return errclass.New(ErrNotRunning, "container %s in pod %s is not running", name, p.name)
	}
	return unix.PidfdSendSignal(fd, sig, nil, 0)
}

// Run starts a container in the pod. Its init, pause in run mode, is forked
// from a thread that joined the pod's PID, UTS, IPC and network namespaces,
// into a new mount namespace; it builds the container's root (as a pod's,
// but with the pod's own /dev/shm and /dev/pts attached: IPC and terminals
// are shared), waits while podsb pins the new mount namespace, becomes the
// command's user and executes the command. Exit status, signals, terminal,
// detaching and environment are as for Exec.
func (p *Pod) Run(ctx context.Context, cc ContainerConfig) (*Process, error) {
	if cc.Image != nil {
		if err := applyImage(&cc); err != nil {
			return nil, err
		}
	}
	c := cc.ExecConfig
	if c.Container != "" {
		return nil, invalidf("run: ExecConfig.Container is for Exec")
	}
	if err := p.checkLaunch(c); err != nil {
		return nil, err
	}
	name := cc.Name
	if name == "" {
		name = newID()
	}
	if err := validateContainerName(name); err != nil {
		return nil, err
	}
	spec := rootfs.Spec{Dir: cc.Rootfs, ReadOnly: cc.ReadOnly, Volumes: cc.Volumes, Mask: !cc.Security.Privileged, NoDev: !cc.Security.Privileged}
	if spec.Dir != "" {
		spec.Dir = filepath.Clean(spec.Dir)
	}
	if err := spec.Check(); err != nil {
		return nil, invalid(err)
	}
	// gc leaves the container's directory alone while it is being made.
	lock, err := p.lockShared(ctx)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := os.MkdirAll(filepath.Join(p.Dir(), "containers"), 0o700); err != nil {
		return nil, err
	}
	cdir := p.containerDir(name)
	if err := os.Mkdir(cdir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("container %s in pod %s: %w", name, p.name, ErrExists)
		}
		return nil, err
	}
	r := &containerStart{pod: p, name: name, dir: cdir}
	var proc *Process
	if cc.Image != nil {
		err = r.mountImage(cc.Image, &spec, cc.Dir)
	}
	if err == nil {
		proc, err = r.start(ctx, cc, spec)
	}
	if r.overlay != nil {
		r.overlay.Close() // the container's init has attached it
	}
	if err != nil {
		r.undo()
		return nil, err
	}
	return proc, nil
}

// containerStart is a container being started.
type containerStart struct {
	pod    *Pod
	name   string
	dir    string
	pinned bool
	state  ContainerState
	// overlay is the detached overlay mount of an image root.
	overlay *os.File
}

func (r *containerStart) undo() {
	if r.pinned {
		unmount(r.pod.containerMountNS(r.name))
		os.Remove(r.pod.containerMountNS(r.name))
	}
	r.undoImage()
	os.RemoveAll(r.dir)
}

func (r *containerStart) start(ctx context.Context, cc ContainerConfig, spec rootfs.Spec) (*Process, error) {
	p, c := r.pod, cc.ExecConfig
	st := p.state
	var ip = netipAddr(st)
	spec.Target = filepath.Join(r.dir, "rootfs")
	spec.Etc = etcFiles(st.Hostname, ip)
	if err := os.Mkdir(spec.Target, 0o700); err != nil {
		return nil, err
	}
	if spec.Dir != "" {
		spec.EtcDir = filepath.Join(r.dir, "etc")
		if err := writeEtc(spec.EtcDir, spec.Etc); err != nil {
			return nil, err
		}
	}
	// The container's user, from its own /etc (a copy of the host's in
	// the default root).
	etc := "/etc"
	if spec.Dir != "" && c.User != "" {
		var err error
		if etc, err = securejoin.SecureJoin(spec.Dir, "etc"); err != nil {
			return nil, err
		}
	}
	u, err := userIn(etc, c.User)
	if err != nil {
		return nil, err
	}
	env, dir := commandEnv(c, u, st.Hostname)

	// From the pod's mount namespace: detached copies of its /dev/shm and
	// /dev/pts, its /dev/null, and a pty of its devpts for -t.
	mh, err := p.openNS([]nsenter.Namespace{{Type: unix.CLONE_NEWNS, Path: p.NamespacePath(specs.MountNamespace)}})
	if err != nil {
		return nil, err
	}
	var shm, pts, null, ptmx, tty *os.File
	err = mh.Do(func() error {
		for _, m := range []struct {
			path string
			f    **os.File
		}{{"/dev/shm", &shm}, {"/dev/pts", &pts}} {
			fd, err := unix.OpenTree(unix.AT_FDCWD, m.path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
			if err != nil {
				return &os.PathError{Op: "open_tree", Path: m.path, Err: err}
			}
			*m.f = os.NewFile(uintptr(fd), m.path)
		}
		var err error
		if null, err = os.OpenFile(os.DevNull, os.O_RDWR, 0); err != nil {
			return err
		}
		if c.TTY {
			if ptmx, tty, err = pty.Open(); err == nil {
				err = tty.Chown(int(u.uid), int(u.gid))
			}
		}
		return err
	})
	mh.Close()
	for _, f := range []*os.File{shm, pts, null, tty} {
		if f != nil {
			defer f.Close()
		}
	}
	if err != nil {
		if ptmx != nil {
			ptmx.Close()
		}
		return nil, err
	}
	// The program: the container's root, a pause while podsb pins its
	// mount namespace, then the command. Its extra fds: /dev/shm, /dev/pts,
	// and an image root's overlay.
	spec.Shared = map[string]int{"dev/shm": programExtraFD, "dev/pts": programExtraFD + 1}
	extra := []*os.File{shm, pts}
	if r.overlay != nil {
		spec.Shared["."] = programExtraFD + len(extra)
		extra = append(extra, r.overlay)
	}
	ops, err := rootfs.Plan(&spec)
	if err != nil {
		return nil, invalid(err)
	}
	ops = append(ops, setup.Op{Code: setup.Sync}, setup.Op{Code: setup.Chdir, Str: []string{dir}})
	cmdOps, err := commandOps(c.Security, u, c.Detach, c.Args[0], c.Args)
	if err != nil {
		return nil, err
	}
	pg, err := newProgram(append(ops, cmdOps...))
	if err != nil {
		return nil, err
	}
	defer pg.close()

	// Stdio.
	var s *stdio
	switch {
	case c.Detach:
		logs := filepath.Join(p.Dir(), "logs")
		if err := os.MkdirAll(logs, 0o700); err != nil {
			return nil, err
		}
		r.state.Log = filepath.Join(logs, r.name+".log")
		logf, err := os.OpenFile(r.state.Log, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
		if err != nil {
			return nil, err
		}
		defer logf.Close()
		s = &stdio{files: [3]*os.File{null, logf, logf}}
	case c.TTY:
		s = &stdio{files: [3]*os.File{tty, tty, tty}}
	default:
		if s, err = newStdio(c.Stdin, c.Stdout, c.Stderr); err != nil {
			return nil, err
		}
	}

	// Fork from a thread in the pod's PID, UTS, IPC and network
	// namespaces, into a new mount namespace (a copy of the host's, where
	// the container's root and volumes are found).
	var nss []nsenter.Namespace
	for _, t := range []struct {
		flag int
		ns   specs.LinuxNamespaceType
	}{{unix.CLONE_NEWPID, specs.PIDNamespace}, {unix.CLONE_NEWUTS, specs.UTSNamespace}, {unix.CLONE_NEWIPC, specs.IPCNamespace}, {unix.CLONE_NEWNET, specs.NetworkNamespace}} {
		nss = append(nss, nsenter.Namespace{Type: t.flag, Path: p.NamespacePath(t.ns)})
	}
	h, err := p.openNS(nss)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	proc := &Process{release: make(chan struct{}), pty: ptmx}
	started := make(chan error, 1)
	h.Go(func(err error) {
		if err == nil {
			proc.hostPID, err = pg.fork(env, "/", s, extra, &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS, Setsid: true})
		}
		started <- err
		if err == nil && !c.Detach {
			<-proc.release // the command dies with this thread
		}
	})
	if err := <-started; err != nil {
		if ptmx != nil {
			ptmx.Close()
		}
		s.wait()
		return nil, fmt.Errorf("start container %s: %w", r.name, err)
	}
	initPID := proc.hostPID
	fail := func(err error) (*Process, error) {
		unix.Kill(initPID, unix.SIGKILL)
		waitExit(initPID)
		close(proc.release)
		s.wait()
		if ptmx != nil {
			ptmx.Close()
		}
		return nil, err
	}
	if err := p.joinCgroup(initPID); err != nil {
		return fail(err)
	}
	spawned, err := pg.run(ctx, func() error { return r.pin(initPID, cc) })
	if err != nil {
		return fail(fmt.Errorf("container %s: %w", r.name, p.programError(c.Args[0], err)))
	}
	if c.Detach {
		// The init forked the command and exited: reap it; pause adopts
		// the command.
		waitExit(initPID)
		close(proc.release)
		proc.podPID = spawned
		proc.hostPID = hostPIDOf(p, proc.podPID)
		proc.logPath = r.state.Log
	} else {
		if proc.pidfd, err = unix.PidfdOpen(initPID, 0); err != nil {
			return fail(os.NewSyscallError("pidfd_open", err))
		}
		proc.stdio = s
	}
	r.state.Pid = proc.hostPID
	r.state.PodPID = proc.PodPID()
	if ps, err := readStat(proc.hostPID); err == nil {
		r.state.StartTime = ps.startTime
	}
	r.state.Status = specs.StateRunning
	if err := r.writeState(); err != nil {
		// Run fails, and undoes the container: its command must not run
		// on unrecorded.
		if !c.Detach {
			unix.Close(proc.pidfd)
			return fail(err)
		}
		if proc.hostPID > 0 {
			// pause's child, alive a moment ago: it is not reaped
			// before pause hears of its death, so the PID is its own.
			unix.Kill(proc.hostPID, unix.SIGKILL)
		}
		return nil, err
	}
	return proc, nil
}

// pin binds the container's new mount namespace into the pod's ns
// directory (a private mount, where a mount-namespace file may be bound)
// and writes its first state.
func (r *containerStart) pin(pid int, cc ContainerConfig) error {
	handle := r.pod.containerMountNS(r.name)
	if err := touch(handle); err != nil {
		return err
	}
	if err := mount(fmt.Sprintf("/proc/%d/ns/mnt", pid), handle, "", unix.MS_BIND, ""); err != nil {
		os.Remove(handle)
		return fmt.Errorf("pin mount namespace of container %s: %w", r.name, err)
	}
	r.pinned = true
	r.state = ContainerState{
		Name: r.name, Status: specs.StateCreating, Pid: pid, Created: time.Now().UTC(),
		Args: cc.Args, Rootfs: cc.Rootfs, ReadOnly: cc.ReadOnly, Volumes: cc.Volumes,
		Detached: cc.Detach, MountNamespace: handle, Log: r.state.Log, Image: cc.Image,
	}
	return r.writeState()
}

func (r *containerStart) writeState() error {
	b, err := json.MarshalIndent(r.state, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(r.dir, stateFile), b)
}
