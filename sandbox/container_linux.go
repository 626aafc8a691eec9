package sandbox

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/errclass"
	"github.com/podsb/podsb/rootfs"
)

// ContainerConfig describes a container: a command with a root filesystem
// and mount namespace of its own, in the pod's PID, network, IPC and UTS
// namespaces, with pause as its PID 1.
type ContainerConfig struct {
	// ExecConfig is the command, as for Exec; Detach sends its output to
	// the log file ROOT/POD/logs/NAME.log (unless Stdio says otherwise).
	// With Detach and TTY, the command's stdio and controlling terminal
	// is a terminal of the pod's devpts, and Process.PTY is the
	// terminal's other side, which the caller reads and closes; there is
	// no log file.
	ExecConfig
	// Stdio, only with Detach and without TTY, gives the command the
	// caller's files as stdin, stdout and stderr: a non-nil entry replaces
	// /dev/null (stdin) or the log file (stdout, stderr); the log file is
	// made only if stdout or stderr is nil. The command gets its own
	// descriptions of the files; the caller may close them once Run has
	// returned. Directories, symbolic links and O_PATH descriptors are
	// refused, as for Exec.
	Stdio [3]*os.File
	// Name is unique within the pod; a random ID if empty.
	Name string
	// Rootfs is a host directory to use as the container's root; empty is
	// the default root, as for a pod.
	Rootfs string
	// ReadOnly makes the container's root read-only.
	ReadOnly bool
	// Volumes are host paths bound into the container.
	Volumes []Volume
	// MaskedPaths and ReadOnlyPaths, when not nil, replace the default
	// lists of paths hidden and made read-only (rootfs.MaskedPaths and
	// rootfs.ReadOnlyPaths; see rootfs.Spec.MaskPaths). Privileged
	// containers have none.
	MaskedPaths, ReadOnlyPaths []string
	// Image, if set, makes the root an overlay of image layers (instead
	// of Rootfs) and applies the image's configuration: see
	// rootfs.ImageRoot.
	Image *rootfs.ImageRoot
	// Resources are the container's limits, in a cgroup of its own below
	// the pod's (every container has one, limits or not).
	Resources Resources
	// PID chooses the container's PID namespace (pidns_linux.go): the
	// pod's (zero), one of its own, or another container's.
	PID PIDMode
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
	// PIDNamespace is the pinned handle of its PID namespace if it has
	// one of its own (PIDMode.Own); PIDTarget the container whose PID
	// namespace it joined (PIDMode.Target).
	PIDNamespace string `json:"pidNamespace,omitempty"`
	PIDTarget    string `json:"pidTarget,omitempty"`
	// HostPID says it runs in the host's PID namespace (PIDMode.Host):
	// PodPID is 0, and the process that started it records its exit.
	HostPID bool `json:"hostPID,omitempty"`
	// Log is the output of a detached container.
	Log string `json:"log,omitempty"`
	// User is who the container's process runs as.
	User *Identity `json:"user,omitempty"`
	// Cgroup is the path of the container's cgroup, Resources its limits
	// (as last updated).
	Cgroup    string    `json:"cgroup,omitempty"`
	Resources Resources `json:"resources,omitzero"`
	// Exit is how a stopped detached container ended, as pause recorded
	// it (exit_linux.go); Container and Containers fill it in, it is not
	// stored here. It is nil while the container runs, for a container
	// that was not detached (Process.Wait has its status), for one that
	// died with its pod (the pod stopped or its pause died: nobody
	// recorded it), and for one in a pod made by a podsb without exit
	// records until the pod is started again.
	Exit *ContainerExit `json:"exit,omitempty"`
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

// Container returns the state of one container, with live status and,
// for a stopped detached container, its exit (ContainerState.Exit): if
// its process has just died and pause has not yet recorded it, Container
// waits for the record (up to 2 s, for a pause that is stopped).
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
	live := p.containerLives(cs)
	if !live && cs.Status == specs.StateCreating {
		// A start that died before its command ran: no container.
		return cs, errclass.New(ErrNotFound, "no such container %s in pod %s", name, p.name)
	}
	cs.Status = specs.StateStopped
	cs.Exit = nil
	if live {
		cs.Status = specs.StateRunning
	} else if cs.Detached {
		cs.Exit = p.exitOf(cs)
	}
	return cs, nil
}

// containerLives tells whether the process a container's record names
// lives, in the running pod.
func (p *Pod) containerLives(cs ContainerState) bool {
	ps, err := readStat(cs.Pid)
	return err == nil && cs.Pid > 0 && ps.startTime == cs.StartTime && ps.state != 'Z' && ps.state != 'X' && p.Status() == specs.StateRunning
}

// reclaimDeadStart removes the container name if it is what a dead start
// left (containerStart): nobody holds its directory's lock, and it has no
// record or a record of a start whose process never ran. It tells whether
// the name is free now.
func (p *Pod) reclaimDeadStart(name string) bool {
	f, err := os.Open(p.containerDir(name))
	if isNotExist(err) {
		return true
	}
	if err != nil {
		return false
	}
	defer f.Close()
	if flock(f, unix.LOCK_EX|unix.LOCK_NB) != nil {
		return false // a live start
	}
	if b, err := os.ReadFile(filepath.Join(p.containerDir(name), stateFile)); err == nil {
		var cs ContainerState
		if json.Unmarshal(b, &cs) != nil || cs.Status != specs.StateCreating || p.containerLives(cs) {
			return false
		}
	}
	os.Remove(filepath.Join(p.Dir(), "logs", name+".log"))
	for _, handle := range []string{p.containerMountNS(name), p.containerPIDNS(name)} {
		if unmount(handle) != nil {
			return false
		}
		os.Remove(handle)
	}
	if removeUpper(f) != nil || p.removeContainerCgroup(name) != nil {
		return false
	}
	return os.RemoveAll(p.containerDir(name)) == nil
}

// SignalContainer sends sig to a container's main process, through a pidfd
// opened before the identity check.
func (p *Pod) SignalContainer(name string, sig unix.Signal) error {
	cs, err := p.Container(name)
	if err != nil {
		return opError("signal", p.name, name, err)
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
	return opError("signal", p.name, name, unix.PidfdSendSignal(fd, sig, nil, 0))
}

// Run starts a container in the pod. Its init, pause in run mode, is forked
// from a thread that joined the pod's PID, UTS, IPC and network namespaces,
// into a new mount namespace; it builds the container's root (as a pod's,
// but with the pod's own /dev/shm and /dev/pts attached: IPC and terminals
// are shared), waits while podsb pins the new mount namespace, becomes the
// command's user and executes the command. Exit status, signals, terminal,
// detaching and environment are as for Exec.
func (p *Pod) Run(ctx context.Context, cc ContainerConfig) (*Process, error) {
	proc, err := p.run(ctx, cc)
	if err != nil {
		return nil, opError("run", p.name, "", err)
	}
	return proc, nil
}

func (p *Pod) run(ctx context.Context, cc ContainerConfig) (*Process, error) {
	if cc.Image != nil {
		if err := applyImage(&cc); err != nil {
			return nil, err
		}
	}
	c := cc.ExecConfig
	if c.Container != "" {
		return nil, invalidf("run: ExecConfig.Container is for Exec")
	}
	if err := cc.Resources.Check(); err != nil {
		return nil, err
	}
	if err := p.checkLaunch(c); err != nil {
		return nil, err
	}
	if cc.Stdio != [3]*os.File{} {
		if !c.Detach || c.TTY {
			return nil, invalidf("run: ContainerConfig.Stdio is for Detach without TTY")
		}
		for i, f := range cc.Stdio {
			if f == nil {
				continue
			}
			if err := checkStdio(i, f); err != nil {
				return nil, err
			}
		}
	}
	name := cc.Name
	if name == "" {
		name = newID()
	}
	if err := validateContainerName(name); err != nil {
		return nil, err
	}
	if cc.PID.Host && p.state.UserNS != nil {
		return nil, invalidf("run: pod %s has a user namespace of its own: no container of it in the host's PID namespace", p.name)
	}
	if err := p.checkPIDMode(cc.PID, c.Detach, name); err != nil {
		return nil, err
	}
	spec := rootfs.Spec{Dir: cc.Rootfs, ReadOnly: cc.ReadOnly, Volumes: cc.Volumes, Mask: !cc.Security.Privileged, NoDev: !cc.Security.Privileged,
		MaskPaths: cc.MaskedPaths, ReadOnlyPaths: cc.ReadOnlyPaths, EtcCopies: p.state.UserNS != nil || p.state.Rootless != nil}
	if spec.Dir != "" {
		spec.Dir = filepath.Clean(spec.Dir)
	}
	if err := spec.Check(); err != nil {
		return nil, invalid(err)
	}
	if err := checkSharedVolumes(&cc); err != nil {
		return nil, err
	}
	if err := checkExposures(p.root, spec.Dir, spec.Volumes); err != nil {
		return nil, err
	}
	// gc leaves the container's directory alone while it is being made.
	lock, err := p.lockShared(ctx)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	r := &containerStart{pod: p, cc: cc, spec: spec, name: name, dir: p.containerDir(name), trace: traceFunc(cc.Trace)}
	proc, err := r.start(ctx)
	if err != nil {
		lock.Close() // stoppedError may wait for an rm's lock
		return nil, p.stoppedError(err)
	}
	return proc, nil
}
