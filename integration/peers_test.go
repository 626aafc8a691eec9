// Peers: the runtimes podsb's create and rm latency is compared with.
//
// Every peer starts a pause process as PID 1 of new pid, uts, ipc, mount and
// network namespaces, and removes it again:
//
//   - unshare (the floor): `unshare --fork --pid --uts --ipc --net --mount
//     --mount-proc true`, one command that creates the namespaces, mounts a
//     /proc and exits. It has no separate rm phase.
//   - runc: `runc --root STATE run -d --bundle BUNDLE ID` to create,
//     `runc --root STATE delete -f ID` to remove.
//   - crun: `crun --cgroup-manager=cgroupfs --root STATE run -d --bundle
//     BUNDLE ID` and `crun ... delete -f ID`.
//
// The bundle's rootfs holds only /usr/bin/catatonit (statically linked in
// Debian 12), and config.json (built from runtime-spec's specs-go types) runs
// `/catatonit -P` with terminal false, uid 0, no capabilities,
// noNewPrivileges, a read-only root, a /proc mount (as --mount-proc does) and
// the namespaces pid, uts, ipc, mount and network. It sets no
// linux.resources, no cgroupsPath, no seccomp, no masked or read-only paths
// and no /dev mount, so each runtime does its least work; each still creates
// its default device nodes in the rootfs and a cgroup per container. STATE is
// a private directory under the test's TempDir, never /run/runc or /run/crun.
//
// Cgroups on a hybrid host without systemd (cgroup v1 controllers under
// /sys/fs/cgroup/*, a cgroup2 at /sys/fs/cgroup/unified):
//
//   - runc 1.1.5 needs no change: with no cgroupsPath it makes the cgroup
//     /ID below its own cgroup in every v1 hierarchy and in the cgroup2, and
//     `delete -f` removes them all.
//   - crun 1.8.1 refuses to create any container, whatever --cgroup-manager
//     says (even "disabled"), when the cgroup2 at /sys/fs/cgroup/unified has
//     a controller enabled: "cgroups in hybrid mode not supported, drop all
//     controllers from cgroupv2". Here it holds hugetlb. crun decides the mode
//     by statfs of /sys/fs/cgroup/unified, so the benchmark runs every crun
//     command from one OS thread that has its own mount namespace
//     (unshare(CLONE_FS|CLONE_NEWNS), / made rprivate) in which an empty
//     tmpfs covers /sys/fs/cgroup/unified. crun then sees a pure cgroup v1
//     host: with --cgroup-manager=cgroupfs and no cgroupsPath it makes the
//     cgroup /ID at the root of every v1 hierarchy (and leaves the container
//     in the cgroup2 cgroup it was started from), and `delete -f` removes
//     them. The host's mounts are untouched; a crun command costs only a
//     hand-off to that thread, which forks it (exec.Cmd forks from the
//     calling thread); the mount namespace and its tmpfs go away with the
//     thread. On a pure v1 or pure v2 host this is skipped.
//
// Neither runtime leaves a cgroup, a mount or a process behind; the tests
// check this after every run. `crun delete -f` may return before the killed
// container process is gone; `runc delete -f` returns once it is a zombie
// (reaped by PID 1), but only after a fixed sleep: runc 1.1.5 sends SIGKILL,
// then sleeps 100 ms before it first checks whether the container is gone,
// which dominates its rm time.

package integration

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/testenv"
)

// pauseBinary is the pause process of the peers' bundles.
const pauseBinary = "/usr/bin/catatonit"

// floorArgs is the floor: the unshare command that makes the same namespaces.
var floorArgs = []string{"unshare", "--fork", "--pid", "--uts", "--ipc", "--net", "--mount", "--mount-proc", "true"}

// peerTools returns the peers as contenders for measure: "unshare", "runc"
// and "crun". Add podsb's own tools to the same measure() call.
func peerTools(tb testing.TB) []tool {
	tb.Helper()
	floorLog := logFile(tb, tb.TempDir())
	return []tool{
		{
			name: "unshare",
			op: func(tb testing.TB, _ int, _ any) any {
				if err := unshareFloor(tb, floorLog); err != nil {
					tb.Fatal(err)
				}
				return nil
			},
		},
		newRunc(tb).tool(),
		newCrun(tb).tool(),
	}
}

// TestPeersWork checks that every peer does the work the benchmark times: a
// running pause process in five new namespaces, which rm removes with its
// cgroups.
func TestPeersWork(t *testing.T) {
	testenv.RequireRoot(t)
	t.Run("unshare", func(t *testing.T) {
		if err := unshareFloor(t, logFile(t, t.TempDir())); err != nil {
			t.Fatal(err)
		}
		// The same command, printing its namespaces instead of running true.
		args := append(slices.Clone(floorArgs[:len(floorArgs)-1]), "readlink")
		for _, ns := range pauseNamespaces {
			args = append(args, "/proc/self/ns/"+ns)
		}
		out, err := exec.Command(args[0], args[1:]...).Output()
		if err != nil {
			t.Fatalf("%s: %v", strings.Join(args, " "), err)
		}
		inside := strings.Fields(string(out))
		for i, ns := range pauseNamespaces {
			if host := nsID(t, "self", ns); i >= len(inside) || inside[i] == host {
				t.Errorf("unshare did not make a new %s namespace: %q, host %s", ns, out, host)
			}
		}
	})
	for _, peer := range []struct {
		name string
		new  func(testing.TB) *ociRuntime
	}{{"runc", newRunc}, {"crun", newCrun}} {
		t.Run(peer.name, func(t *testing.T) {
			rt := peer.new(t)
			id := rt.id(0)
			if err := rt.run(id); err != nil {
				t.Fatal(err)
			}
			st, err := rt.state(id)
			if err != nil {
				t.Fatal(err)
			}
			if st.Status != specs.StateRunning || st.Pid <= 0 {
				t.Fatalf("state of %s: status %q pid %d, want running", id, st.Status, st.Pid)
			}
			pid := strconv.Itoa(st.Pid)
			if !sameRoot(st.Pid, rt.rootfs()) {
				t.Errorf("root of %s is not %s", id, rt.rootfs())
			}
			// crun's run -d may return before its child has executed the
			// container's process: give it until a deadline.
			var cmdline []byte
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				cmdline, _ = os.ReadFile("/proc/" + pid + "/cmdline")
				if string(cmdline) == "/catatonit\x00-P\x00" || time.Now().After(deadline) {
					break
				}
			}
			if string(cmdline) != "/catatonit\x00-P\x00" {
				t.Errorf("cmdline of %s = %q, want /catatonit -P", id, cmdline)
			}
			for _, ns := range pauseNamespaces {
				if nsID(t, pid, ns) == nsID(t, "self", ns) {
					t.Errorf("%s shares the test's %s namespace", id, ns)
				}
			}
			cgroups, err := cgroupDirs(id)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s made the cgroups %v", rt.name, cgroups)

			if err := rt.delete(id); err != nil {
				t.Fatal(err)
			}
			if _, err := rt.state(id); err == nil {
				t.Errorf("state of %s succeeds after delete", id)
			}
			if left := waitProcessesGone(rt.rootfs()); len(left) > 0 {
				t.Errorf("%s delete -f returned, processes %v remain", rt.name, left)
			}
			if left, _ := cgroupDirs(id); len(left) > 0 {
				t.Errorf("%s delete -f left the cgroups %v", rt.name, left)
			}
		})
	}
}

// pauseNamespaces are the namespaces of a pause process, as named in /proc/PID/ns.
var pauseNamespaces = []string{"pid", "uts", "ipc", "mnt", "net"}

// nsID returns the identity of the namespace ns of the process pid ("self"
// for the test), like "net:[4026531840]".
func nsID(tb testing.TB, pid, ns string) string {
	tb.Helper()
	id, err := os.Readlink("/proc/" + pid + "/ns/" + ns)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

// unshareFloor runs the floor command once, its stderr going to log.
func unshareFloor(tb testing.TB, log *os.File) error {
	tb.Helper()
	cmd := exec.Command(floorArgs[0], floorArgs[1:]...)
	cmd.Stderr = log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(floorArgs, " "), err, logTail(log))
	}
	return nil
}

// ociRuntime is runc or crun with a private state directory and bundle.
type ociRuntime struct {
	name   string
	dir    string   // TempDir holding the bundle, the state and the log
	bin    string   // path of the runtime's binary
	global []string // global options: --root and cgroup options
	prefix string   // prefix of every container ID, unique to this ociRuntime
	log    *os.File // stderr of every command; a started container keeps it
	// thread, if set, runs every command: crun needs its mount namespace.
	thread *nsThread
}

// runtimeSeq makes the container IDs of successive ociRuntimes distinct.
var runtimeSeq atomic.Int32

func newRunc(tb testing.TB) *ociRuntime { return newOCIRuntime(tb, "runc") }

func newCrun(tb testing.TB) *ociRuntime {
	rt := newOCIRuntime(tb, "crun", "--cgroup-manager=cgroupfs")
	hybrid, err := hybridCgroupWithV2Controllers()
	if err != nil {
		tb.Fatal(err)
	}
	if hybrid {
		if rt.thread, err = startUnifiedCgroupHiddenThread(); err != nil {
			tb.Fatal(err)
		}
	}
	return rt
}

// newOCIRuntime finds the runtime name, writes its bundle and registers a
// cleanup that deletes its containers and checks that nothing leaked.
func newOCIRuntime(tb testing.TB, name string, global ...string) *ociRuntime {
	tb.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		if testenv.Integration() {
			tb.Fatalf("%s not installed: %v", name, err)
		}
		tb.Skipf("%s not installed: %v", name, err)
	}
	dir := tb.TempDir()
	rt := &ociRuntime{
		name:   name,
		dir:    dir,
		bin:    bin,
		global: append([]string{"--root", filepath.Join(dir, "state")}, global...),
		prefix: fmt.Sprintf("podsb-peer-%d-%d-%s-", os.Getpid(), runtimeSeq.Add(1), name),
		log:    logFile(tb, dir),
	}
	writeBundle(tb, filepath.Join(dir, "bundle"))
	tb.Cleanup(func() {
		rt.deleteAll()
		if rt.thread != nil {
			rt.thread.close()
		}
		checkPeerLeaks(tb, rt)
	})
	return rt
}

// tool returns rt as a contender: op runs a container, rm deletes it.
func (rt *ociRuntime) tool() tool {
	return tool{
		name: rt.name,
		op: func(tb testing.TB, i int, _ any) any {
			id := rt.id(i)
			if err := rt.run(id); err != nil {
				tb.Fatal(err)
			}
			return id
		},
		rm: func(tb testing.TB, _ int, id any) {
			if err := rt.delete(id.(string)); err != nil {
				tb.Fatal(err)
			}
		},
	}
}

func (rt *ociRuntime) id(i int) string { return rt.prefix + strconv.Itoa(i) }
func (rt *ociRuntime) rootfs() string  { return filepath.Join(rt.dir, "bundle", "rootfs") }

// run starts the container id detached and returns once the runtime has.
func (rt *ociRuntime) run(id string) error {
	return rt.command(nil, "run", "-d", "--bundle", filepath.Join(rt.dir, "bundle"), id)
}

// delete kills and removes the container id.
func (rt *ociRuntime) delete(id string) error { return rt.command(nil, "delete", "-f", id) }

// state returns the state of the container id.
func (rt *ociRuntime) state(id string) (*specs.State, error) {
	var out bytes.Buffer
	if err := rt.command(&out, "state", id); err != nil {
		return nil, err
	}
	var st specs.State
	if err := json.Unmarshal(out.Bytes(), &st); err != nil {
		return nil, fmt.Errorf("%s state %s: %w", rt.name, id, err)
	}
	return &st, nil
}

// deleteAll deletes every container left in rt's state directory.
func (rt *ociRuntime) deleteAll() {
	entries, _ := os.ReadDir(filepath.Join(rt.dir, "state"))
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), rt.prefix) {
			_ = rt.delete(e.Name()) // best effort: checkPeerLeaks reports what remains
		}
	}
}

// command runs rt with args, stdout going to stdout (discarded if nil). Its
// stdout and stderr are files or nil, never pipes: a detached container
// inherits them, and a pipe would keep cmd.Wait waiting until it exits.
func (rt *ociRuntime) command(stdout io.Writer, args ...string) error {
	cmd := exec.Command(rt.bin, append(slices.Clone(rt.global), args...)...)
	cmd.Stdout = stdout
	cmd.Stderr = rt.log
	var err error
	if rt.thread != nil {
		rt.thread.do(func() { err = cmd.Run() })
	} else {
		err = cmd.Run()
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", rt.name, strings.Join(args, " "), err, logTail(rt.log))
	}
	return nil
}

// writeBundle writes an OCI bundle running catatonit -P to dir.
func writeBundle(tb testing.TB, dir string) {
	tb.Helper()
	rootfs := filepath.Join(dir, "rootfs")
	// Mount points: the root is read-only, so the runtimes cannot make them.
	for _, d := range []string{"dev", "proc"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	requireStatic(tb, pauseBinary)
	pause, err := os.ReadFile(pauseBinary)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "catatonit"), pause, 0o755); err != nil {
		tb.Fatal(err)
	}
	spec := specs.Spec{
		// Not specs.Version (1.3.0): crun 1.8.1 rejects any version
		// but 1.0.x ("unknown version specified").
		Version: "1.0.2",
		Process: &specs.Process{
			Args:            []string{"/catatonit", "-P"},
			Env:             []string{"PATH=/"},
			Cwd:             "/",
			Capabilities:    &specs.LinuxCapabilities{},
			NoNewPrivileges: true,
		},
		Root:     &specs.Root{Path: "rootfs", Readonly: true},
		Hostname: "peer",
		Mounts:   []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc"}},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace},
				{Type: specs.UTSNamespace},
				{Type: specs.IPCNamespace},
				{Type: specs.MountNamespace},
				{Type: specs.NetworkNamespace},
			},
		},
	}
	config, err := json.MarshalIndent(&spec, "", "\t")
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), config, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// requireStatic fails tb unless path is a statically linked ELF executable,
// the only kind that runs alone in an otherwise empty rootfs.
func requireStatic(tb testing.TB, path string) {
	tb.Helper()
	f, err := elf.Open(path)
	if err != nil {
		tb.Fatalf("pause binary: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			tb.Fatalf("pause binary %s is dynamically linked; the bundle holds only it", path)
		}
	}
}

// logFile opens a file in dir for the stderr of commands; tb closes it.
func logFile(tb testing.TB, dir string) *os.File {
	tb.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "stderr.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	return f
}

// logTail returns the last KiB of the log f, for an error message.
func logTail(f *os.File) string {
	b, err := os.ReadFile(f.Name())
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > 1024 {
		b = b[len(b)-1024:]
	}
	return strings.TrimSpace(string(b))
}

// hybridCgroupWithV2Controllers reports whether /sys/fs/cgroup is a hybrid
// layout whose cgroup2 at /sys/fs/cgroup/unified has controllers, the layout
// crun refuses.
func hybridCgroupWithV2Controllers() (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		return false, &os.PathError{Op: "statfs", Path: "/sys/fs/cgroup", Err: err}
	}
	if st.Type != unix.TMPFS_MAGIC {
		return false, nil
	}
	err := unix.Statfs("/sys/fs/cgroup/unified", &st)
	if errors.Is(err, unix.ENOENT) || err == nil && st.Type != unix.CGROUP2_SUPER_MAGIC {
		return false, nil
	}
	if err != nil {
		return false, &os.PathError{Op: "statfs", Path: "/sys/fs/cgroup/unified", Err: err}
	}
	controllers, err := os.ReadFile("/sys/fs/cgroup/unified/cgroup.controllers")
	return len(bytes.TrimSpace(controllers)) > 0, err
}

// nsThread runs functions on one locked OS thread with its own mount
// namespace. Children started there (exec.Cmd forks from the calling thread)
// are born in that mount namespace.
type nsThread struct {
	funcs chan func()
}

// startUnifiedCgroupHiddenThread starts an nsThread whose mount namespace
// has an empty tmpfs over /sys/fs/cgroup/unified, so that crun sees a cgroup
// v1 host (see the top of this file). The tmpfs also catches the cgroup
// directories crun makes there in v1 mode.
func startUnifiedCgroupHiddenThread() (*nsThread, error) {
	t := &nsThread{funcs: make(chan func())}
	errc := make(chan error)
	go func() {
		// Never unlocked: the thread's mount namespace is not the
		// process's, so the thread must end with this goroutine.
		runtime.LockOSThread()
		if err := hideUnifiedCgroup(); err != nil {
			errc <- err
			return
		}
		errc <- nil
		for f := range t.funcs {
			f()
		}
	}()
	if err := <-errc; err != nil {
		return nil, err
	}
	return t, nil
}

// hideUnifiedCgroup gives the calling thread a private mount namespace with a
// tmpfs over /sys/fs/cgroup/unified.
// Preconditions: the calling goroutine has locked its OS thread for good.
func hideUnifiedCgroup() error {
	// CLONE_FS too: a thread sharing its fs_struct with the others may not
	// unshare its mount namespace.
	if err := unix.Unshare(unix.CLONE_FS | unix.CLONE_NEWNS); err != nil {
		return os.NewSyscallError("unshare mount namespace", err)
	}
	// Private first, so that the tmpfs does not propagate to the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return &os.PathError{Op: "make rprivate", Path: "/", Err: err}
	}
	const target = "/sys/fs/cgroup/unified"
	if err := unix.Mount("podsb-bench", target, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=1m,mode=0755"); err != nil {
		return &os.PathError{Op: "mount tmpfs", Path: target, Err: err}
	}
	return nil
}

// do runs f on the thread and waits for it. f must not call tb.Fatal.
func (t *nsThread) do(f func()) {
	done := make(chan struct{})
	t.funcs <- func() { f(); close(done) }
	<-done
}

// close ends the thread and with it its mount namespace.
func (t *nsThread) close() { close(t.funcs) }

// checkPeerLeaks fails tb if a process runs in rt's rootfs, a mount is under
// rt's directory, or a cgroup is named with rt's prefix; it kills, unmounts
// and removes what it finds.
func checkPeerLeaks(tb testing.TB, rt *ociRuntime) {
	tb.Helper()
	for _, pid := range waitProcessesGone(rt.rootfs()) {
		tb.Errorf("process %d still runs in %s; killing it", pid, rt.rootfs())
		_ = unix.Kill(pid, unix.SIGKILL) // it may have exited meanwhile
	}
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		tb.Error(err)
	}
	for line := range strings.Lines(string(mountinfo)) {
		// Field 5 is the mount point; spaces in it are escaped.
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], rt.dir) {
			tb.Errorf("mount %s left behind; unmounting it", f[4])
			_ = unix.Unmount(f[4], unix.MNT_DETACH)
		}
	}
	cgroups, err := cgroupDirs(rt.prefix)
	if err != nil {
		tb.Error(err)
	}
	for _, d := range slices.Backward(cgroups) {
		tb.Errorf("cgroup %s left behind; removing it", d)
		_ = os.Remove(d)
	}
}

// waitProcessesGone waits up to 5 s until no process has rootfs as its root
// (delete -f may return before the killed process is gone) and returns those
// that still do.
func waitProcessesGone(rootfs string) []int {
	deadline := time.Now().Add(5 * time.Second)
	for {
		procs := processesIn(rootfs)
		if len(procs) == 0 || time.Now().After(deadline) {
			return procs
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// processesIn returns the processes whose root directory is rootfs. Zombies
// have none and are not counted: they are their reaper's business.
func processesIn(rootfs string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && sameRoot(pid, rootfs) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// sameRoot reports whether the process pid has the directory rootfs as its
// root. It compares the directories, not paths: readlink of /proc/PID/root
// says "/" for a process that pivot_root'd in another mount namespace.
func sameRoot(pid int, rootfs string) bool {
	root, err := os.Stat("/proc/" + strconv.Itoa(pid) + "/root")
	if err != nil {
		return false
	}
	want, err := os.Stat(rootfs)
	return err == nil && os.SameFile(root, want)
}

// cgroupDirs returns the cgroup directories under /sys/fs/cgroup whose name
// starts with prefix, parents before children.
func cgroupDirs(prefix string) ([]string, error) {
	var dirs []string
	err := filepath.WalkDir("/sys/fs/cgroup", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking
			}
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), prefix) {
			dirs = append(dirs, path)
		}
		return nil
	})
	return dirs, err
}
