package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/errclass"
	"github.com/podsb/podsb/internal/setup"
	"github.com/podsb/podsb/nsenter"
)

// Rootless pods (security.md#rootless): made by a user other than root.
// The pod's init is born in a user namespace of its own that maps the
// user's own IDs to 0 (one ID each: an unprivileged process may write such
// maps itself), which owns the pod's other namespaces. The host's mount
// table is closed to the user, so nothing is mounted on the host: the
// handles are pause's own /proc/PID/ns files, linked from ROOT/NAME/ns/*
// for nsenter and opened by podsb only after pause is checked and with the
// recorded inodes. The bridge network, cgroups, host namespaces, ports and
// the template mount namespace are root's.

// ErrRootless is the class of what a rootless podsb cannot do: it needs
// root.
var ErrRootless = errors.New("rootless")

// UserNSFDEnv names the environment variable by which a rootless podsb
// exec hands its re-executed self the pod's user namespace handle: the
// binary's entry point (fastexec) joins it before the Go runtime starts,
// since setns(2) refuses a user namespace to a multi-threaded process.
const UserNSFDEnv = "PODSB_USERNS_FD"

func rootlessf(format string, args ...any) error {
	return errclass.New(ErrRootless, "rootless: "+format, args...)
}

var rootlessOnce struct {
	sync.Once
	inUserNS bool
	overflow uint32
}

func rootlessInit() {
	r := &rootlessOnce
	r.overflow = 65534
	if b, err := os.ReadFile("/proc/sys/kernel/overflowuid"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err == nil {
			r.overflow = uint32(n)
		}
	}
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return
	}
	f := strings.Fields(string(b))
	r.inUserNS = !(len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295")
}

// InUserNS tells whether this process runs in a user namespace other than
// the host's (a rootless exec that joined its pod's).
func InUserNS() bool {
	rootlessOnce.Do(rootlessInit)
	return rootlessOnce.inUserNS
}

// Rootless tells whether podsb runs without root: as a user other than
// root, or inside a rootless pod's user namespace.
func Rootless() bool { return os.Geteuid() != 0 || InUserNS() }

// trustedOwner tells whether the owner of a state root, or of a directory
// above it, can be trusted: root; for a rootless podsb also the user
// itself, and, inside a pod's user namespace (where the user is 0), the
// overflow ID that every unmapped owner shows as, root's directories
// among them. The rootless exec checked the root on the host before it
// joined.
func trustedOwner(uid uint32) bool {
	if uid == 0 {
		return true
	}
	if InUserNS() {
		return uid == rootlessOnce.overflow
	}
	return uid == uint32(os.Geteuid())
}

// RootlessRoot is a rootless user's default state root:
// $XDG_RUNTIME_DIR/podsb; "" if XDG_RUNTIME_DIR is not set.
func RootlessRoot() string {
	if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "podsb")
	}
	return ""
}

// checkRootless refuses what a rootless pod cannot have, one line each.
func (c *Config) checkRootless() error {
	switch {
	case c.Network != nil:
		if len(c.Network.Publish) > 0 {
			return rootlessf("published ports need root (the bridge network); use --network none without -p")
		}
		return rootlessf("the bridge network needs root; use --network none")
	case c.HostNetwork, c.HostIPC, c.HostPID:
		return rootlessf("host namespaces need root")
	case !c.Limits.none() || c.CgroupParent != "":
		return rootlessf("cgroup limits need root (podsb uses no delegated cgroup)")
	case c.Security.Privileged:
		return rootlessf("--privileged needs root")
	case c.UserNS == UserNSHost:
		return rootlessf("--userns host needs root: a rootless pod has a user namespace of its own")
	case c.UserNS == UserNSAuto || len(c.UIDMap)+len(c.GIDMap) > 0:
		return rootlessf("--userns auto, --uidmap and --gidmap need root: a rootless pod maps your own user and group to 0")
	}
	for _, v := range c.Volumes {
		if unix.Access(v.Source, unix.R_OK) != nil {
			return rootlessf("volume %s: %s is not readable by user %d", v, v.Source, os.Geteuid())
		}
	}
	return nil
}

// rootlessMaps are a rootless pod's maps: the user's own IDs as 0.
func rootlessMaps() *UserNS {
	return &UserNS{
		UIDMap: []IDMap{{ContainerID: 0, HostID: uint32(os.Geteuid()), Size: 1}},
		GIDMap: []IDMap{{ContainerID: 0, HostID: uint32(os.Getegid()), Size: 1}},
	}
}

// rootlessAttr makes attr start a rootless pod's init in a new user
// namespace with u's maps. Go writes them while the child waits, and
// "deny" to setgroups first, as the kernel asks of an unprivileged writer
// of gid_map; the init is then the namespace's root, and keeps its
// capabilities there through execve.
//
// A create that RunInUserNS started runs in the pod's user namespace
// already: its init is born there.
func rootlessAttr(attr *syscall.ProcAttr, u *UserNS) {
	if InUserNS() {
		return
	}
	attr.Sys.Cloneflags |= unix.CLONE_NEWUSER
	attr.Sys.UidMappings = sysIDMap(u.UIDMap)
	attr.Sys.GidMappings = sysIDMap(u.GIDMap)
	attr.Sys.GidMappingsEnableSetgroups = false
}

// linkNamespaces is a rootless pod's pin: the user cannot bind-mount, so
// the namespaces live as long as pause does, and nsDir/* are symbolic
// links to pause's /proc/PID/ns/*, which nsenter follows (the links are
// valid while pause lives; podsb itself opens /proc/PID/ns/* after
// checking pause, and compares the recorded inodes).
func linkNamespaces(pid int, nsDir string) ([]Namespace, error) {
	proc := "/proc/" + strconv.Itoa(pid) + "/ns/"
	var nss []Namespace
	for _, t := range NamespaceTypes {
		name := procName(t)
		var st unix.Stat_t
		if err := unix.Stat(proc+name, &st); err != nil {
			return nil, &os.PathError{Op: "stat", Path: proc + name, Err: err}
		}
		dst := filepath.Join(nsDir, name)
		if err := os.Symlink(proc+name, dst); err != nil {
			return nil, err
		}
		nss = append(nss, Namespace{Type: t, Path: dst, Inode: st.Ino})
	}
	return nss, nil
}

// openRootlessNS opens a rootless pod's namespaces nss (paths as
// NamespacePath gives them) from pause's /proc/PID/ns, each checked
// against the inode recorded at create; then checks that pause is still
// the pod's, so that a PID reused meanwhile cannot hand over another
// process's namespaces.
func (p *Pod) openRootlessNS(nss []nsenter.Namespace) (*nsenter.Handles, error) {
	files, err := p.openRootlessFiles(nss)
	if err != nil {
		return nil, err
	}
	safe := make([]nsenter.Namespace, len(nss))
	for i, f := range files {
		defer f.Close()
		safe[i] = nsenter.Namespace{Type: nss[i].Type, Path: fdPath(f)}
	}
	return nsenter.Open(safe)
}

func (p *Pod) openRootlessFiles(nss []nsenter.Namespace) ([]*os.File, error) {
	inodes := map[string]uint64{}
	for _, n := range p.state.Namespaces {
		inodes[n.Path] = n.Inode
	}
	proc := "/proc/" + strconv.Itoa(p.state.Pid) + "/ns/"
	var files []*os.File
	fail := func(err error) ([]*os.File, error) {
		for _, f := range files {
			f.Close()
		}
		return nil, err
	}
	for _, ns := range nss {
		want, ok := inodes[ns.Path]
		if !ok {
			return fail(fmt.Errorf("namespace handle %s: not one of the pod's", ns.Path))
		}
		f, err := os.Open(proc + filepath.Base(ns.Path))
		if err != nil {
			return fail(fmt.Errorf("%s: %w", p.name, ErrNotRunning))
		}
		files = append(files, f)
		var st unix.Stat_t
		var fs unix.Statfs_t
		if unix.Fstatfs(int(f.Fd()), &fs) != nil || fs.Type != unix.NSFS_MAGIC || unix.Fstat(int(f.Fd()), &st) != nil || st.Ino != want {
			return fail(fmt.Errorf("%s: %w", p.name, ErrNotRunning))
		}
	}
	if !p.alive(nil) {
		return fail(fmt.Errorf("%s: %w", p.name, ErrNotRunning))
	}
	return files, nil
}

// RootlessUserNS opens the user namespace of a rootless pod, checked as
// its other handles are, for a rootless exec to join before its Go
// runtime starts (UserNSFDEnv).
func (p *Pod) RootlessUserNS() (*os.File, error) {
	if p.state == nil || p.state.Rootless == nil {
		return nil, invalidf("pod %s is not a rootless pod", p.name)
	}
	if !p.alive(nil) {
		return nil, fmt.Errorf("%s: %w", p.name, ErrNotRunning)
	}
	files, err := p.openRootlessFiles([]nsenter.Namespace{{Type: unix.CLONE_NEWUSER, Path: p.NamespacePath(specs.UserNamespace)}})
	if err != nil {
		return nil, err
	}
	return files[0], nil
}

// rootlessIDs checks a command's user in a rootless pod: with
// subordinate IDs, its user, group and supplementary groups must be
// mapped (the ranges may be smaller than the IDs asked for). With the
// single-ID map its SetIDs is dropped: the command is 0 already (the
// joined user), and setgroups(2) is denied in the namespace; another user
// or group is refused.
func (p *Pod) rootlessIDs(ops []setup.Op, u execUser) ([]setup.Op, error) {
	if p.state == nil || p.state.Rootless == nil {
		return ops, nil
	}
	m := p.state.Rootless
	if !m.onlyRoot() {
		if _, ok := m.HostUID(u.uid); !ok {
			return nil, rootlessf("pod %s maps uids %s (your subordinate IDs): no user %d in it", p.name, fmtIDRanges(m.UIDMap), u.uid)
		}
		for _, g := range append([]uint32{u.gid}, u.groups...) {
			if _, ok := m.HostGID(g); !ok {
				return nil, rootlessf("pod %s maps gids %s (your subordinate IDs): no group %d in it", p.name, fmtIDRanges(m.GIDMap), g)
			}
		}
		return ops, nil
	}
	if u.uid != 0 || u.gid != 0 {
		return nil, rootlessf("pod %s maps only your own user and group, as 0: no user %d or group %d in it", p.name, u.uid, u.gid)
	}
	out := ops[:0:0]
	for _, o := range ops {
		if o.Code != setup.SetIDs {
			out = append(out, o)
		}
	}
	return out, nil
}

// fmtIDRanges prints the pod's side of a map: 0-65536 for 0 to 65536.
func fmtIDRanges(m []IDMap) string {
	var s []string
	for _, e := range m {
		s = append(s, fmt.Sprintf("%d-%d", e.ContainerID, uint64(e.ContainerID)+uint64(e.Size)-1))
	}
	return strings.Join(s, ",")
}

// IsRootless tells whether the pod was made without root.
func (p *Pod) IsRootless() bool { return p.state != nil && p.state.Rootless != nil }

// UserNSWaitEnv names the environment variable by which a rootless podsb
// create starts its re-executed self in a new user namespace whose maps
// it writes with newuidmap and newgidmap (RunInUserNS): the binary's entry
// point (fastexec) waits for one byte on the descriptor it names, then
// executes itself again without it, now the namespace's root with its
// capabilities (which an execve before the maps could not give).
const UserNSWaitEnv = "PODSB_USERNS_WAIT"

// NewIDMapPrograms are the setuid programs of shadow-utils (Debian package
// uidmap) that write a rootless user's subordinate IDs into a user
// namespace's maps, after checking them against /etc/subuid and
// /etc/subgid.
var NewIDMapPrograms = [2]string{"/usr/bin/newuidmap", "/usr/bin/newgidmap"}

// RootlessSubIDs returns a rootless pod's maps from the user's
// subordinate IDs: 0 is the user's own ID, 1 on the ranges of SubIDFiles
// for the user (by name or number), in order. Nil if neither file names
// any for the user: the pod then maps the user alone (rootlessMaps).
// Ranges in one file and none in the other, ranges that userSubIDs
// refuses, and a NewIDMapPrograms that cannot write them are errors.
func RootlessSubIDs() (*UserNS, error) {
	uid, gid := os.Geteuid(), os.Getegid()
	names := []string{strconv.Itoa(uid)}
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		names = append(names, u.Username)
	}
	var ranges [2][]IDMap
	for i, own := range []int{uid, gid} {
		b, err := os.ReadFile(SubIDFiles[i])
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, rootlessf("%v", err)
		}
		lines, err := readSubIDLines(b)
		if err != nil {
			return nil, rootlessf("%s: %v", SubIDFiles[i], err)
		}
		if ranges[i], err = userSubIDs(SubIDFiles[i], lines, names, uint32(own)); err != nil {
			return nil, err
		}
	}
	switch {
	case len(ranges[0]) == 0 && len(ranges[1]) == 0:
		return nil, nil
	case len(ranges[0]) == 0 || len(ranges[1]) == 0:
		has, hasnt := SubIDFiles[0], SubIDFiles[1]
		if len(ranges[0]) == 0 {
			has, hasnt = hasnt, has
		}
		return nil, rootlessf("%s names subordinate IDs of user %s and %s none: give both or neither", has, names[len(names)-1], hasnt)
	}
	u := &UserNS{}
	for i, own := range []int{uid, gid} {
		m := []IDMap{{ContainerID: 0, HostID: uint32(own), Size: 1}}
		next := uint64(1)
		for _, r := range ranges[i] {
			if len(m) == maxIDMapLines || next+uint64(r.Size) > 1<<32-1 {
				break
			}
			m = append(m, IDMap{ContainerID: uint32(next), HostID: r.HostID, Size: r.Size})
			next += uint64(r.Size)
		}
		if i == 0 {
			u.UIDMap = m
		} else {
			u.GIDMap = m
		}
	}
	for _, p := range NewIDMapPrograms {
		if err := checkIDMapProgram(p); err != nil {
			return nil, err
		}
	}
	return u, nil
}

// RunInUserNS runs the program path (argv, env, this process's stdio) in
// a new user namespace with u's maps, written by NewIDMapPrograms while
// the program's entry point waits (UserNSWaitEnv), and returns its exit
// code.
func RunInUserNS(u *UserNS, path string, argv, env []string) (int, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer w.Close()
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{
		Env:   append(env, UserNSWaitEnv+"=3"),
		Files: []uintptr{0, 1, 2, r.Fd()},
		Sys:   &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER},
	})
	r.Close()
	if err != nil {
		return 0, fmt.Errorf("rootless: start in a new user namespace: %w", err)
	}
	err = writeIDMaps(pid, u)
	if err == nil {
		_, err = w.Write([]byte{0})
	}
	if err != nil {
		unix.Kill(pid, unix.SIGKILL)
	}
	w.Close()
	var ws unix.WaitStatus
	for {
		_, werr := unix.Wait4(pid, &ws, 0, nil)
		if !errors.Is(werr, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return 0, err
	}
	if ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return ws.ExitStatus(), nil
}

// writeIDMaps writes u's maps into the user namespace of pid with
// newuidmap and newgidmap; their own message (its first 300 bytes, on one
// line) is the error's.
func writeIDMaps(pid int, u *UserNS) error {
	for i, m := range [][]IDMap{u.UIDMap, u.GIDMap} {
		args := []string{strconv.Itoa(pid)}
		for _, e := range m {
			args = append(args, strconv.FormatUint(uint64(e.ContainerID), 10), strconv.FormatUint(uint64(e.HostID), 10), strconv.FormatUint(uint64(e.Size), 10))
		}
		out, err := exec.Command(NewIDMapPrograms[i], args...).CombinedOutput()
		if err != nil {
			msg := strings.Join(strings.Fields(string(out)), " ")
			if len(msg) > 300 {
				msg = msg[:300] + "..."
			}
			if msg == "" {
				msg = "no message"
			}
			return rootlessf("%s could not write the subordinate IDs of %s into the pod's user namespace (%v): %s", NewIDMapPrograms[i], SubIDFiles[i], err, msg)
		}
	}
	return nil
}

// ownMaps reads this process's user namespace maps (a rootless create
// started by RunInUserNS).
func ownMaps() (*UserNS, error) {
	u := &UserNS{}
	for i, f := range []string{"/proc/self/uid_map", "/proc/self/gid_map"} {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var m []IDMap
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var e [3]uint64
			fs := strings.Fields(l)
			if len(fs) != 3 {
				return nil, fmt.Errorf("%s: line %q", f, l)
			}
			for j := range e {
				if e[j], err = strconv.ParseUint(fs[j], 10, 32); err != nil {
					return nil, fmt.Errorf("%s: line %q", f, l)
				}
			}
			m = append(m, IDMap{ContainerID: uint32(e[0]), HostID: uint32(e[1]), Size: uint32(e[2])})
		}
		if i == 0 {
			u.UIDMap = m
		} else {
			u.GIDMap = m
		}
	}
	return u, nil
}

// onlyRoot tells whether a rootless pod's maps are the user's own IDs
// alone: setgroups(2) is then denied in it, and no other ID exists.
func (u *UserNS) onlyRoot() bool {
	return len(u.UIDMap) == 1 && u.UIDMap[0].Size == 1 && len(u.GIDMap) == 1 && u.GIDMap[0].Size == 1
}
