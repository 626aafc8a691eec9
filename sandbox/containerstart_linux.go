package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/creack/pty"
	securejoin "github.com/cyphar/filepath-securejoin"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/setup"
	"github.com/podsb/podsb/nsenter"
	"github.com/podsb/podsb/rootfs"
)

// containerStart is a container being started by Run. Its start is a list
// of named steps (containerStart.steps); each makes one thing and pushes
// what undoes it on a cleanup stack, which a failed step runs in reverse
// and success drops. The names are the points of Trace.
//
// Whatever point a start is killed at, it leaves either a running
// container whose record names its process, or a dead start: no process
// (the init dies with podsb's thread, PR_SET_PDEATHSIG, and a process
// waiting at Sync stops when its go-ahead pipe ends without the go-ahead
// byte), and files that Container treats as absent and that the next Run
// of the name, gc, or rm of the pod removes (reclaimDeadStart).
type containerStart struct {
	pod   *Pod
	cc    ContainerConfig
	spec  rootfs.Spec
	name  string
	dir   string // ROOT/POD/containers/NAME
	trace func(string)

	undo   []func() // on failure, in reverse
	closes []func() // always, after undo

	user                      execUser
	env                       []string
	workdir                   string
	shm, pts, null, tty, ptmx *os.File
	pg                        *program
	s                         *stdio
	proc                      *Process
	initPID                   int                 // the container's init, a child of podsb
	initGone                  bool                // reaped (-d: after its Spawn)
	spawnFD                   int                 // -d: a pidfd of the spawned command, or -1
	userns                    *os.File            // the pod's user namespace, if of its own
	overlay                   *os.File            // an image root's detached overlay, or an idmapped root directory
	volumes                   map[string]*os.File // detached trees of volumes, by rootfs.VolumeKey
	extra                     []*os.File          // the init's extra files, from programExtraFD
	pidNS                     string              // the handle of the PID namespace the init joins
	state                     ContainerState
}

// startStep is one step of a container's start.
type startStep struct {
	name string
	do   func(ctx context.Context) error
}

// steps are the steps of a start, in order.
func (r *containerStart) steps() []startStep {
	return []startStep{
		{"container directory", r.makeDir},
		{"user namespace", r.openUserNS},
		{"image overlay", r.mountOverlay},
		{"idmapped root", r.mapRoot},
		{"root, user, environment", r.prepare},
		{"volume trees", r.openVolumes},
		{"pod devices", r.openPodDevices},
		{"program, stdio", r.makeProgram},
		{"fork init", r.forkInit},
		{"cgroup", r.joinCgroup},
		{"init: mounts, pivot_root", r.buildRoot},
		{"pin mount namespace", r.pin},
		{"exit record", r.watchExit},
		{"first state write", r.record},
		{"go-ahead, exec", r.goAhead},
		{"final state write", r.finish},
	}
}

// start runs the steps; on a failure it undoes what the earlier ones made.
func (r *containerStart) start(ctx context.Context) (*Process, error) {
	r.spawnFD = -1
	defer func() {
		for _, c := range r.closes {
			c()
		}
	}()
	for _, s := range r.steps() {
		if err := s.do(ctx); err != nil {
			for i := len(r.undo) - 1; i >= 0; i-- {
				r.undo[i]()
			}
			return nil, err
		}
		r.trace(s.name)
	}
	return r.proc, nil
}

func (r *containerStart) onFail(f func()) { r.undo = append(r.undo, f) }
func (r *containerStart) closeLater(f *os.File) {
	if f != nil {
		r.closes = append(r.closes, func() { f.Close() })
	}
}

// makeDir makes the container's directory, locked while the start lives
// (a later Run of the name, finding it, tells a live start from a dead
// one by this lock). A dead start of the same name is removed first.
func (r *containerStart) makeDir(context.Context) error {
	containers := filepath.Join(r.pod.Dir(), "containers")
	if err := os.MkdirAll(containers, 0o700); err != nil {
		return err
	}
	// Runs of the pod make, lock and reclaim directories one at a time:
	// a directory is never seen between its making and its lock.
	cf, err := os.Open(containers)
	if err != nil {
		return err
	}
	defer cf.Close()
	if err := flock(cf, unix.LOCK_EX); err != nil {
		return err
	}
	for try := 0; ; try++ {
		err := os.Mkdir(r.dir, 0o700)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrExist) {
			return err
		}
		if try > 0 || !r.pod.reclaimDeadStart(r.name) {
			return fmt.Errorf("container %s in pod %s: %w", r.name, r.pod.name, ErrExists)
		}
	}
	r.onFail(func() { os.RemoveAll(r.dir) })
	f, err := os.Open(r.dir)
	if err != nil {
		return err
	}
	r.closeLater(f)
	return flock(f, unix.LOCK_EX)
}

// prepare makes the root's mount point and (for a directory root) its
// /etc files, and resolves the user in the container's own /etc (a copy
// of the host's in the default root), the environment and the directory.
func (r *containerStart) prepare(context.Context) error {
	c, st := r.cc.ExecConfig, r.pod.state
	r.spec.Target = filepath.Join(r.dir, "rootfs")
	r.spec.Etc = etcFiles(st.Hostname, netipAddr(st), st.ResolvConf)
	if err := os.Mkdir(r.spec.Target, 0o700); err != nil {
		return err
	}
	if r.spec.Dir != "" {
		r.spec.EtcDir = filepath.Join(r.dir, "etc")
		if err := writeEtc(r.spec.EtcDir, r.spec.Etc); err != nil {
			return err
		}
	}
	etc := "/etc"
	if r.spec.Dir != "" && c.User != "" {
		var err error
		if etc, err = securejoin.SecureJoin(r.spec.Dir, "etc"); err != nil {
			return err
		}
	}
	var err error
	if r.user, err = userIn(etc, c.User); err != nil {
		return err
	}
	if err := r.user.addGroups(c.Groups, c.StrictGroups); err != nil {
		return err
	}
	r.env, r.workdir = commandEnv(c, r.user, st.Hostname)
	return nil
}

// openPodDevices opens, from the pod's mount namespace, detached copies of
// its /dev/shm and /dev/pts, its /dev/null, and a pty of its devpts for -t.
func (r *containerStart) openPodDevices(context.Context) error {
	p, c := r.pod, r.cc.ExecConfig
	mh, err := p.openNS([]nsenter.Namespace{{Type: unix.CLONE_NEWNS, Path: p.NamespacePath(specs.MountNamespace)}})
	if err != nil {
		return err
	}
	err = mh.Do(func() error {
		for _, m := range []struct {
			path string
			f    **os.File
		}{{"/dev/shm", &r.shm}, {"/dev/pts", &r.pts}} {
			fd, err := unix.OpenTree(unix.AT_FDCWD, m.path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
			if err != nil {
				return &os.PathError{Op: "open_tree", Path: m.path, Err: err}
			}
			*m.f = os.NewFile(uintptr(fd), m.path)
		}
		var err error
		if r.null, err = os.OpenFile(os.DevNull, os.O_RDWR, 0); err != nil {
			return err
		}
		if c.TTY {
			if r.ptmx, r.tty, err = pty.Open(); err == nil {
				uid, gid := p.hostIDs(r.user.uid, r.user.gid)
				err = r.tty.Chown(int(uid), int(gid))
			}
		}
		return err
	})
	mh.Close()
	for _, f := range []*os.File{r.shm, r.pts, r.null, r.tty} {
		r.closeLater(f)
	}
	if r.ptmx != nil {
		// On success it is the Process's terminal.
		r.onFail(func() { r.ptmx.Close() })
	}
	return err
}

// makeProgram plans the container's root and writes pause's program:
// Pdeathsig (the init dies with podsb's forking thread), the root, for -d
// the Spawn of the command's process, Sync (podsb pins and records that
// process, then sends the go-ahead), the directory, the privileges and
// the command. It also opens the command's stdio.
func (r *containerStart) makeProgram(context.Context) error {
	c := r.cc.ExecConfig
	r.spec.Shared = map[string]int{"dev/shm": programExtraFD, "dev/pts": programExtraFD + 1}
	r.extra = []*os.File{r.shm, r.pts}
	if r.overlay != nil {
		r.spec.Shared["."] = programExtraFD + len(r.extra)
		r.extra = append(r.extra, r.overlay)
	}
	for key, f := range r.volumes {
		r.spec.Shared[key] = programExtraFD + len(r.extra)
		r.extra = append(r.extra, f)
	}
	// A PID namespace of the container's own in a pod with a user
	// namespace: see lateProcOps.
	lateProc := r.cc.PID.Own && r.userns != nil
	r.spec.ProcLater = lateProc
	planned, err := rootfs.Plan(&r.spec)
	if err != nil {
		return invalid(err)
	}
	cmdOps, err := commandOps(c.Security, r.pod.state.Security, r.user, c.Detach, c.Args[0], c.Args)
	if err != nil {
		return err
	}
	ops := []setup.Op{{Code: setup.Pdeathsig}}
	if c.Detach {
		spawn := cmdOps[0]
		cmdOps = cmdOps[1:]
		if c.TTY {
			// The spawned process leads a new session: its stdio, the
			// pty's terminal, becomes its controlling terminal.
			spawn.Num = 1
		}
		if r.cc.PID.Host {
			// The init's parent, podsb, becomes the process's: pause,
			// in another PID namespace, cannot adopt it (hostpid_linux.go).
			spawn.Num |= unix.CLONE_PARENT
		}
		if lateProc {
			if ops, err = r.lateProcOps(append(ops, planned...), spawn); err != nil {
				return err
			}
		} else if r.cc.PID.Own {
			// PID 1 of a new namespace, forked before the root is made:
			// the root's /proc is its namespace's.
			spawn.Num |= unix.CLONE_NEWPID
			ops = append(ops, spawn)
			ops = append(ops, planned...)
		} else {
			ops = append(append(ops, planned...), spawn)
		}
	} else {
		ops = append(ops, planned...)
	}
	ops = append(ops, setup.Op{Code: setup.Sync}, setup.Op{Code: setup.Chdir, Str: []string{r.workdir}})
	// The root is made (as the host's root): the pod's user namespace,
	// then the command's user and privileges in it.
	if !lateProc {
		ops = r.joinUserNSOps(ops)
	}
	if r.pg, err = newProgram(append(ops, cmdOps...)); err != nil {
		return err
	}
	r.closes = append(r.closes, r.pg.close)

	switch {
	case c.Detach && !c.TTY:
		files := r.cc.Stdio
		if files[0] == nil {
			files[0] = r.null
		}
		if files[1] != nil && files[2] != nil {
			r.s = &stdio{files: files}
			break
		}
		logs := filepath.Join(r.pod.Dir(), "logs")
		if err := os.MkdirAll(logs, 0o700); err != nil {
			return err
		}
		r.state.Log = filepath.Join(logs, r.name+".log")
		logf, err := os.OpenFile(r.state.Log, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		r.onFail(func() { os.Remove(r.state.Log) })
		r.closeLater(logf)
		for i := 1; i < 3; i++ {
			if files[i] == nil {
				files[i] = logf
			}
		}
		r.s = &stdio{files: files}
	case c.TTY:
		r.s = &stdio{files: [3]*os.File{r.tty, r.tty, r.tty}}
	default:
		if r.s, err = newStdio(c.Stdin, c.Stdout, c.Stderr); err != nil {
			return err
		}
		r.onFail(r.s.wait)
	}
	return nil
}

// forkInit forks the init (pause run) from a thread in the pod's PID, UTS,
// IPC and network namespaces, into a new mount namespace (a copy of the
// host's, where the container's root and volumes are found). The thread
// stays until the Process is released: the init dies with it.
func (r *containerStart) forkInit(context.Context) error {
	p := r.pod
	pidNS, err := r.pidNSPath()
	if err != nil {
		return err
	}
	r.pidNS = pidNS
	var nss []nsenter.Namespace
	if pidNS != "" {
		nss = append(nss, nsenter.Namespace{Type: unix.CLONE_NEWPID, Path: pidNS})
	}
	for _, t := range []struct {
		flag int
		ns   specs.LinuxNamespaceType
	}{{unix.CLONE_NEWUTS, specs.UTSNamespace}, {unix.CLONE_NEWIPC, specs.IPCNamespace}, {unix.CLONE_NEWNET, specs.NetworkNamespace}} {
		nss = append(nss, nsenter.Namespace{Type: t.flag, Path: p.NamespacePath(t.ns)})
	}
	h, err := p.openNS(nss)
	if err != nil {
		return err
	}
	defer h.Close()
	r.proc = &Process{release: make(chan struct{}), pty: r.ptmx, pidfd: -1}
	started := make(chan error, 1)
	h.Go(func(err error) {
		if err == nil {
			extra := r.extra
			sys := &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS, Setsid: true}
			// An attached command's terminal is its controlling one, as
			// for exec -t (a detached one's process takes it: makeProgram).
			sys.Setctty = r.cc.TTY && !r.cc.Detach
			r.proc.hostPID, err = r.pg.fork(r.env, "/", r.s, extra, sys)
		}
		started <- err
		if err == nil {
			<-r.proc.release
		}
	})
	if err := <-started; err != nil {
		return fmt.Errorf("start container %s: %w", r.name, err)
	}
	r.initPID = r.proc.hostPID
	r.onFail(func() {
		if !r.initGone {
			unix.Kill(r.initPID, unix.SIGKILL)
			waitExit(r.initPID)
			close(r.proc.release)
		}
	})
	return nil
}

// joinCgroup makes the container's cgroup and puts its init in it before
// the init runs anything: every process of the container is born in it.
func (r *containerStart) joinCgroup(context.Context) error {
	// Removed last, once the init (forkInit's undo) and the spawned
	// process (buildRoot's) are dead: a cgroup with a process in it
	// cannot be removed.
	r.undo = append([]func(){func() { r.pod.removeContainerCgroup(r.name) }}, r.undo...)
	path, err := r.pod.joinContainerCgroup(r.name, r.initPID, r.cc.Resources)
	r.state.Cgroup = path
	return err
}

// buildRoot sends the program and waits until the root is made and the
// command's process waits at Sync: the init itself, or for -d the child
// it spawned, which pause adopts once the init, reaped here, exits.
func (r *containerStart) buildRoot(ctx context.Context) error {
	if err := r.pg.send(); err != nil {
		return err
	}
	synced, err := r.pg.follow(ctx)
	if err == nil && !synced {
		err = errors.New("its init exited before its root was made")
	}
	if err != nil {
		return fmt.Errorf("container %s: %w", r.name, r.pod.programError(r.cc.Args[0], err))
	}
	if !r.cc.Detach {
		return nil
	}
	waitExit(r.initPID)
	r.initGone = true
	close(r.proc.release)
	r.proc.hostPID, r.proc.podPID = spawnedHostPID(r.pod, r.cc.PID.Own, r.pidNS, r.pg.spawned)
	if r.proc.hostPID <= 0 {
		return fmt.Errorf("container %s: its process %d is not in the pod", r.name, r.proc.podPID)
	}
	// pause's child, waiting at Sync: not reaped before pause hears of its
	// death, so the PID is its own until then.
	if r.spawnFD, err = unix.PidfdOpen(r.proc.hostPID, 0); err != nil {
		return os.NewSyscallError("pidfd_open", err)
	}
	r.onFail(func() { unix.PidfdSendSignal(r.spawnFD, unix.SIGKILL, nil, 0) })
	r.closes = append(r.closes, func() { unix.Close(r.spawnFD) })
	if r.cc.PID.Host {
		return r.watchHostPID()
	}
	return nil
}

// pin binds the container's new mount namespace into the pod's ns
// directory (a private mount, where a mount-namespace file may be bound).
func (r *containerStart) pin(context.Context) error {
	handle := r.pod.containerMountNS(r.name)
	if err := touch(handle); err != nil {
		return err
	}
	r.onFail(func() { os.Remove(handle) })
	if err := mount(fmt.Sprintf("/proc/%d/ns/mnt", r.proc.hostPID), handle, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("pin mount namespace of container %s: %w", r.name, err)
	}
	r.onFail(func() { unmount(handle) })
	if r.cc.PID == (PIDMode{}) {
		return nil
	}
	// A PID namespace not the pod's: exec joins it by this handle.
	pidHandle := r.pod.containerPIDNS(r.name)
	if err := touch(pidHandle); err != nil {
		return err
	}
	r.onFail(func() { os.Remove(pidHandle) })
	if err := mount(fmt.Sprintf("/proc/%d/ns/pid", r.proc.hostPID), pidHandle, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("pin PID namespace of container %s: %w", r.name, err)
	}
	r.onFail(func() { unmount(pidHandle) })
	r.state.PIDNamespace = pidHandle
	return nil
}

// record writes the container's state, creating, naming the process that
// is about to become the command: should podsb die once it has let the
// process go, the record is already true.
func (r *containerStart) record(context.Context) error {
	cc := r.cc
	r.state = ContainerState{
		Name: r.name, Status: specs.StateCreating, Pid: r.proc.hostPID, PodPID: r.proc.PodPID(),
		Created: time.Now().UTC(), Args: cc.Args, Rootfs: cc.Rootfs, ReadOnly: cc.ReadOnly,
		Volumes: cc.Volumes, Detached: cc.Detach, MountNamespace: r.pod.containerMountNS(r.name), Log: r.state.Log,
		Image: cc.Image, User: r.user.identity(), Cgroup: r.state.Cgroup, Resources: cc.Resources,
		PIDNamespace: r.state.PIDNamespace, PIDTarget: cc.PID.Target, HostPID: cc.PID.Host,
	}
	if cc.PID.Host {
		r.state.PodPID = 0 // in no namespace of the pod's
	}
	ps, err := readStat(r.proc.hostPID)
	if err != nil {
		return err
	}
	r.state.StartTime = ps.startTime
	return r.writeState()
}

// goAhead lets the process go on and waits until it executed the command.
func (r *containerStart) goAhead(ctx context.Context) error {
	err := r.pg.goAhead()
	if err == nil {
		_, err = r.pg.follow(ctx)
	}
	if err != nil {
		return fmt.Errorf("container %s: %w", r.name, r.pod.programError(r.cc.Args[0], err))
	}
	return nil
}

// finish records the container running, and hands the Process over.
func (r *containerStart) finish(context.Context) error {
	if r.cc.Detach {
		r.proc.logPath = r.state.Log
	} else {
		fd, err := unix.PidfdOpen(r.initPID, 0)
		if err != nil {
			return os.NewSyscallError("pidfd_open", err)
		}
		r.proc.pidfd = fd
		r.onFail(func() { unix.Close(fd) })
		r.proc.stdio = r.s
	}
	r.state.Status = specs.StateRunning
	return r.writeState()
}

func (r *containerStart) writeState() error {
	b, err := json.MarshalIndent(r.state, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(r.dir, stateFile), b)
}
