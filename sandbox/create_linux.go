package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/setup"
	"github.com/podsb/podsb/network"
	"github.com/podsb/podsb/reaper"
	"github.com/podsb/podsb/rootfs"
)

// cloneFlags are the namespaces a pod's init is born in.
const cloneFlags = unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWNS | unix.CLONE_NEWNET

// podCloneFlags are cloneFlags without the namespaces the pod shares with
// the host: its pinned handles of them are then the host's.
func podCloneFlags(c Config) uintptr {
	flags := uintptr(cloneFlags)
	if c.HostNetwork {
		flags &^= unix.CLONE_NEWNET | unix.CLONE_NEWUTS
	}
	if c.HostIPC {
		flags &^= unix.CLONE_NEWIPC
	}
	return flags
}

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
//
// Create runs createSteps in order. Each step that made something the pod
// must not keep on failure says how to undo it; a failed create undoes the
// steps done, last first. What survives this process's death (the init,
// the cgroup, the lease) is found from the state record by rm and gc, so
// the first state write comes before any of it can be half-made.
//
// A failure of the system is an Error, as "create NAME: pipe2: too many
// open files"; bad input and a name in use say what they are about
// already.
func Create(ctx context.Context, c Config) (_ *Pod, err error) {
	c, err = c.withDefaults()
	if err != nil {
		return nil, err
	}
	defer func() { err = opError("create", c.Name, "", err) }()
	var rl *UserNS // a rootless pod's maps
	if Rootless() {
		if err := c.checkRootless(); err != nil {
			return nil, err
		}
		rl = rootlessMaps()
		if InUserNS() {
			// Started by RunInUserNS, in the pod's user namespace.
			if rl, err = ownMaps(); err != nil {
				return nil, err
			}
		}
	}
	if err := checkCgroupParent(c.CgroupParent); err != nil {
		return nil, err
	}
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
	r := &podCreate{c: c, lock: lock, dir: lock.path, trace: c.tracer()}
	r.rootless = rl
	r.trace("state directory")
	if err := r.run(ctx); err != nil {
		return nil, err
	}
	return &Pod{root: c.Root, name: c.Name, state: r.st}, nil
}

// podCreate is one Create in progress: what its steps made so far.
type podCreate struct {
	c     Config
	lock  *podDir
	dir   string
	trace func(step string)
	undos []func()

	lease  *network.Lease
	podIP  netip.Addr
	spec   rootfs.Spec
	ops    []setup.Op
	child  *initProc
	cgroup string
	st     *State
	userns *podUserNS // with a user namespace of the pod's own
	// rootless is a rootless pod's maps (rootless_linux.go).
	rootless *UserNS
}

// createStep is one named step of Create. skip, if set, says the step does
// not apply to this pod; do returns the step's undo, or nil.
type createStep struct {
	name string
	skip func(*podCreate) bool
	do   func(*podCreate, context.Context) (undo func(), err error)
}

// createSteps are Create's steps in order. Their names are the trace points
// (Config.Trace) that the fault tests kill a create after.
var createSteps = []createStep{
	{name: "reserve address and ports", skip: noNetwork, do: (*podCreate).reserveNetwork},
	{name: "user namespace", skip: hostUserNS, do: (*podCreate).reserveUserNS},
	{name: "plan", do: (*podCreate).plan},
	{name: "clone namespaces, exec init", do: (*podCreate).startInit},
	{name: "first state write", do: (*podCreate).firstStateWrite},
	{name: "user namespace: mounts", skip: hostUserNS, do: (*podCreate).attachUserNS},
	{name: "cgroup", skip: noLimits, do: (*podCreate).joinCgroup},
	{name: "init: mounts, pivot_root", do: (*podCreate).runInit},
	{name: "pin namespaces", do: (*podCreate).pin},
	{name: "bridge, veth, address, route, NAT", skip: noNetwork, do: (*podCreate).attachNetwork},
	{name: "register with ip netns", skip: isRootless, do: (*podCreate).registerNetNS},
	{name: "final state write", do: (*podCreate).finalStateWrite},
}

func noNetwork(r *podCreate) bool  { return r.c.Network == nil }
func isRootless(r *podCreate) bool { return r.rootless != nil }
func noLimits(r *podCreate) bool   { return r.c.Limits.none() && r.c.CgroupParent == "" }

// run runs the steps; on failure it undoes what they made, and removes the
// pod's directory with whatever is still mounted or pinned below it.
func (r *podCreate) run(ctx context.Context) error {
	for _, s := range createSteps {
		if s.skip != nil && s.skip(r) {
			continue
		}
		undo, err := s.do(r, ctx)
		if undo != nil {
			r.undos = append(r.undos, undo)
		}
		if err != nil {
			for i := len(r.undos) - 1; i >= 0; i-- {
				r.undos[i]()
			}
			teardown(r.lock)
			return err
		}
		r.trace(s.name)
	}
	return nil
}

// reserveNetwork takes the pod's address and published ports from the
// network's store.
func (r *podCreate) reserveNetwork(context.Context) (func(), error) {
	lease, err := reserveNetwork(r.c.Root, r.c.Name, r.c.Network)
	if err != nil {
		return nil, err
	}
	r.lease, r.podIP = lease, lease.Addr.Addr()
	return func() { releaseNetwork(r.c.Root, r.c.Name, lease, false) }, nil
}

// plan decides the pod's root and init program. Its files live in the
// pod's directory, which teardown removes.
func (r *podCreate) plan(context.Context) (func(), error) {
	c := r.c
	if _, err := os.Lstat(filepath.Join(NetNSDir, c.Name)); err == nil {
		return nil, fmt.Errorf("network namespace %q: %w in %s", c.Name, ErrExists, NetNSDir)
	}
	r.spec = rootfs.Spec{
		Dir:      c.Rootfs,
		Target:   filepath.Join(r.dir, "rootfs"),
		ReadOnly: c.ReadOnly,
		Etc:      etcFiles(c.Hostname, r.podIP, c.ResolvConf),
		Volumes:  c.Volumes,
		Mask:     !c.Security.Privileged,
		NoDev:    !c.Security.Privileged,
		OnlyRoot: r.rootless != nil && r.rootless.onlyRoot(),
		// The host's /etc files would show as nobody's in a user
		// namespace of the pod's own: copies.
		EtcCopies: r.userns != nil || r.rootless != nil,
	}
	for _, d := range []string{"ns", "rootfs", exitsDirName} {
		if err := os.Mkdir(filepath.Join(r.dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	if r.spec.Dir != "" {
		// A directory root gets the files by bind mounts from here.
		r.spec.EtcDir = filepath.Join(r.dir, "etc")
		if err := writeEtc(r.spec.EtcDir, r.spec.Etc); err != nil {
			return nil, err
		}
	}
	var head []setup.Op
	if r.userns != nil {
		var err error
		if head, err = prepareUserNS(r.userns, &r.spec, r.dir); err != nil {
			return nil, err
		}
	}
	sysctls, err := sysctlPaths(c.Sysctls, c.HostNetwork, c.HostIPC)
	if err != nil {
		return nil, err
	}
	r.ops, err = initProgram(&r.spec, c.Hostname, c.Security, !c.HostNetwork, sysctls, r.dir)
	if head != nil && err == nil {
		// In place of its own opening of the exits directory.
		r.ops = append(head, r.ops[1:]...)
	}
	return nil, err
}

// startInit starts the pod's init in new namespaces, waiting for its
// program. It is cloned from the state root's template mount namespace
// (template_linux.go) when the pod's root allows.
func (r *podCreate) startInit(context.Context) (func(), error) {
	var child *initProc
	fork := func() (err error) {
		child, err = startInit(r.ops, podCloneFlags(r.c), r.userns, r.rootless)
		return err
	}
	var err error
	// A pod with a user namespace forks from a thread of its own (its
	// working directory): from the host's namespace.
	if r.userns == nil && r.rootless == nil && useTemplate(r.c) {
		err = forkFromTemplate(r.lock.root, filepath.Dir(r.dir), r.dir, r.ops, fork)
	} else {
		err = fork()
	}
	if err != nil {
		return nil, err
	}
	r.child = child
	if r.userns != nil {
		// The init cannot lower its own score outside its namespace.
		os.WriteFile("/proc/"+strconv.Itoa(child.pid)+"/oom_score_adj", []byte(pauseOOMScoreAdj), 0)
	}
	return child.kill, nil
}

// firstStateWrite records the init, so that rm finds it even if this
// process dies from here on. The cgroup is recorded before it is made.
func (r *podCreate) firstStateWrite(context.Context) (func(), error) {
	c, pid := r.c, r.child.pid
	ps, err := readStat(pid)
	if err != nil {
		return nil, fmt.Errorf("pod init: %w", err)
	}
	r.st = &State{
		State: specs.State{
			Version: specs.Version,
			ID:      c.Name,
			Status:  specs.StateCreating,
			Pid:     pid,
			Bundle:  r.dir,
		},
		Created:     time.Now().UTC(),
		StartTime:   ps.startTime,
		BootID:      bootID(),
		Hostname:    c.Hostname,
		Rootfs:      c.Rootfs,
		ReadOnly:    c.ReadOnly,
		Volumes:     c.Volumes,
		Network:     r.lease,
		Limits:      c.Limits,
		Security:    c.Security,
		ResolvConf:  c.ResolvConf,
		HostNetwork: c.HostNetwork,
		HostIPC:     c.HostIPC,
		HostPID:     c.HostPID,
	}
	if r.userns != nil {
		r.st.UserNS, r.st.Sysctls = r.userns.ns, c.Sysctls
	}
	r.st.Rootless = r.rootless
	if !noLimits(r) {
		r.cgroup = c.CgroupParent + cgroupPath(c.Root, c.Name)
		r.st.Cgroup = r.cgroup
	}
	return nil, writeState(r.lock, r.st)
}

// joinCgroup makes the pod's cgroup and puts pause in it before it runs its
// program: everything of the pod is born in it.
func (r *podCreate) joinCgroup(context.Context) (func(), error) {
	// A cgroup with a process in it cannot be removed: the init goes first.
	undo := func() {
		r.child.kill()
		destroyCgroup(r.cgroup, r.c.Limits)
	}
	m, err := cgroupManager(r.cgroup, r.c.Limits)
	if err == nil {
		if err = m.Apply(r.child.pid); err == nil {
			err = m.Set(r.c.Limits.resources())
		}
	}
	if err != nil {
		return undo, fmt.Errorf("cgroup: %w", err)
	}
	return undo, nil
}

// runInit sends the init its program (mounts, pivot_root, privileges) and
// waits until it has become pause.
func (r *podCreate) runInit(ctx context.Context) (func(), error) {
	if err := r.child.send(); err != nil {
		return nil, err
	}
	return nil, r.child.await(ctx)
}

// pin bind-mounts pause's namespaces under the pod's ns directory; teardown
// unmounts them.
func (r *podCreate) pin(context.Context) (func(), error) {
	var err error
	pin := pinNamespaces
	if r.rootless != nil {
		pin = linkNamespaces
	}
	if r.st.Namespaces, err = pin(r.child.pid, filepath.Join(r.dir, "ns")); err != nil {
		return nil, fmt.Errorf("pin namespaces: %w", err)
	}
	return nil, nil
}

// attachNetwork connects the pod to the bridge; the lease's undo removes
// what it made.
func (r *podCreate) attachNetwork(context.Context) (func(), error) {
	return nil, attachNetwork(r.c.Root, r.c.Name, r.lease, filepath.Join(r.dir, "ns", "net"), r.trace)
}

// registerNetNS makes the pod's network namespace visible to ip netns;
// teardown removes the registration.
func (r *podCreate) registerNetNS(context.Context) (func(), error) {
	var err error
	r.st.NetNS, err = registerNetNS(r.c.Name, filepath.Join(r.dir, "ns", "net"))
	return nil, err
}

// finalStateWrite writes the join record exec uses and marks the pod
// running.
func (r *podCreate) finalStateWrite(context.Context) (func(), error) {
	r.st.Status = specs.StateRunning
	if err := writeJoin(r.dir, r.st); err != nil {
		return nil, err
	}
	return nil, writeState(r.lock, r.st)
}

// initProgram is what the pod's init does before it becomes pause: first
// it opens the exits directory of the pod's directory dir, which pause
// keeps (exit_linux.go). With newNet, the init also names the new UTS
// namespace and brings up the new network namespace's loopback. Then it
// writes the sysctls (paths below /proc/sys and values, sysctlPaths):
// still seeing the host's /proc, it opens them in its own namespaces,
// which is where the kernel applies a namespaced sysctl.
func initProgram(spec *rootfs.Spec, hostname string, sec Security, newNet bool, sysctls [][2]string, dir string) ([]setup.Op, error) {
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
	ops := []setup.Op{openExitsOp(dir), {Code: setup.Write, Flags: setup.Optional, Str: []string{"/proc/self/oom_score_adj", pauseOOMScoreAdj}}}
	if newNet {
		ops = append(ops, setup.Op{Code: setup.Hostname, Str: []string{hostname}}, setup.Op{Code: setup.LoopbackUp})
	}
	for _, s := range sysctls {
		ops = append(ops, setup.Op{Code: setup.Write, Num: 0o644, Str: []string{"/proc/sys/" + s[0], s[1]}})
	}
	return append(ops, root...), nil
}

// initProc is a pod's init between its start and its becoming pause.
type initProc struct {
	pid    int
	ops    []setup.Op
	config *os.File // write end of the program pipe, until send
	status *os.File // read end of the status pipe
	killed bool
}

// startInit starts the pod's init in new namespaces: the pause program, from
// a sealed memfd, in setup mode; send gives it its program. The init's
// fds: 0-2 /dev/null, 3 the program, 4 the status pipe, 5 the memfd it was
// executed from.
//
// It forks with syscall.ForkExec rather than os/exec: the pod's init is not
// a child this process waits for, and os/exec would cost a probing fork and
// three opens of /dev/null on every create.
//
// With u, the init is also born in a new user namespace, which owns the
// others, with u's maps (written by this process before the init goes
// on), in u's working directory.
//
// With rootless, the init is born in a new user namespace with those maps
// instead (rootlessAttr).
func startInit(ops []setup.Op, flags uintptr, u *podUserNS, rootless *UserNS) (*initProc, error) {
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
	attr := &syscall.ProcAttr{
		Dir:   "/",
		Env:   []string{},
		Files: []uintptr{null.Fd(), null.Fd(), null.Fd(), cfgR.Fd(), statusW.Fd(), pause.Fd()},
		Sys: &syscall.SysProcAttr{
			Cloneflags: flags,
			Setsid:     true,
		},
	}
	var pid int
	if rootless != nil {
		rootlessAttr(attr, rootless)
	}
	if u != nil {
		u.userAttr(attr)
		err = forkIn(u.dir, func() (err error) {
			pid, err = syscall.ForkExec("/proc/self/fd/5", []string{"pause", "setup"}, attr)
			return err
		})
	} else {
		pid, err = syscall.ForkExec("/proc/self/fd/5", []string{"pause", "setup"}, attr)
	}
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

// kill ends an init that did not make it, and reaps it. Once: the PID is
// free for reuse after that.
func (p *initProc) kill() {
	if p.killed {
		return
	}
	p.killed = true
	p.config.Close()
	p.status.Close()
	unix.Kill(p.pid, unix.SIGKILL)
	unix.Wait4(p.pid, nil, 0, nil)
}

// etcFiles returns the contents of the pod's hostname, hosts and
// resolv.conf. The hostname maps to the pod's address if it has one. An
// empty resolv is the host's resolv.conf (resolvConf).
func etcFiles(hostname string, ip netip.Addr, resolv string) map[string]string {
	if resolv == "" {
		resolv = resolvConf()
	}
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	if ip.IsValid() {
		hosts += ip.String() + "\t" + hostname + "\n"
	} else {
		hosts = "127.0.0.1\tlocalhost " + hostname + "\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	}
	return map[string]string{
		"hostname":    hostname + "\n",
		"hosts":       hosts,
		"resolv.conf": resolv,
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
