package sandbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/setup"
	"github.com/podsb/podsb/nsenter"
	"github.com/podsb/podsb/rootfs"
)

// SubIDFiles are the subuid(5) and subgid(5) files whose ranges for
// SubIDUser automatic user namespaces are taken from. A file that is
// missing or names no range for that user gives DefaultSubIDs.
var SubIDFiles = [2]string{"/etc/subuid", "/etc/subgid"}

// UserNSRecords is the machine's record of the pods' user namespace maps,
// of every state root: one file per pod, NAME@HASH (usernsRecordName),
// holding its usernsRecord. The directory is flock(2)ed while a create
// reads and adds to it, so that no two pods of any roots get overlapping
// host IDs. It lives in the default state root, root's, which is made if
// missing.
var UserNSRecords = filepath.Join(DefaultRoot, ".userns")

// maxUserNSRecord bounds a record's size: a few maps of JSON.
const maxUserNSRecord = 64 << 10

// usernsRecord is a pod's record in UserNSRecords: whose it is and its
// maps. A record without Root (of a podsb before the records were the
// machine's) is the default root's.
type usernsRecord struct {
	Root string `json:"root,omitempty"`
	Name string `json:"name,omitempty"`
	UserNS
}

// UserNSRecord is the path of the record of pod name of state root root
// in UserNSRecords, whether or not it exists.
func UserNSRecord(root, name string) string {
	return filepath.Join(UserNSRecords, usernsRecordName(root, name))
}

// usernsRecordName is NAME@ and the first 16 hex digits of the SHA-256 of
// the state root's path: unique on the machine, and still readable.
func usernsRecordName(root, name string) string {
	sum := sha256.Sum256([]byte(root))
	return name + "@" + hex.EncodeToString(sum[:8])
}

// reserveUserNS records the maps of pod name's user namespace in
// UserNSRecords, under the directory's lock: allocated for UserNSAuto, or
// the config's own, which must overlap no other pod's on the host side. A
// record whose pod directory is gone (a create killed before it could
// undo, or a state root removed with its pods) is dropped.
func reserveUserNS(root, name string, c Config) (*UserNS, error) {
	d, err := lockUserNSDir(true)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	dir := d.Name()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	var takenU, takenG []IDMap
	owners := map[string]*usernsRecord{}
	for _, n := range names {
		p := filepath.Join(dir, n)
		if strings.HasPrefix(n, ".") {
			os.Remove(p) // a temporary file of a killed create
			continue
		}
		b, err := readFileAt(d, n, maxUserNSRecord)
		if err != nil {
			return nil, err
		}
		var u usernsRecord
		if err := json.Unmarshal(b, &u); err != nil {
			return nil, fmt.Errorf("user namespace record %s: %w", p, err)
		}
		if u.Root == "" {
			u.Root, u.Name = DefaultRoot, n
		}
		if _, err := os.Lstat(filepath.Join(u.Root, u.Name)); errors.Is(err, os.ErrNotExist) {
			os.Remove(p)
			continue
		}
		owners[n] = &u
		takenU, takenG = append(takenU, u.UIDMap...), append(takenG, u.GIDMap...)
	}
	u := &UserNS{UIDMap: c.UIDMap, GIDMap: c.GIDMap}
	if c.UserNS == UserNSAuto {
		pu, err := subIDs(SubIDFiles[0])
		if err != nil {
			return nil, err
		}
		pg, err := subIDs(SubIDFiles[1])
		if err != nil {
			return nil, err
		}
		us, ok1 := allocate(pu, takenU)
		gs, ok2 := allocate(pg, takenG)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("user namespace: no free range of %d IDs left for %s in %s and %s (%d pods hold one)",
				UserNSSize, SubIDUser, SubIDFiles[0], SubIDFiles[1], len(owners))
		}
		u = &UserNS{Auto: true, UIDMap: []IDMap{{HostID: us, Size: UserNSSize}}, GIDMap: []IDMap{{HostID: gs, Size: UserNSSize}}}
	} else {
		for _, o := range owners {
			if hostOverlap(u.UIDMap, o.UIDMap) || hostOverlap(u.GIDMap, o.GIDMap) {
				if o.Root == root {
					return nil, invalidf("user namespace maps overlap those of pod %s", o.Name)
				}
				return nil, invalidf("user namespace maps overlap those of pod %s of state root %s", o.Name, o.Root)
			}
		}
	}
	b, err := json.Marshal(usernsRecord{Root: root, Name: name, UserNS: *u})
	if err != nil {
		return nil, err
	}
	rec := usernsRecordName(root, name)
	// Not writeFileAt: its name.tmp could be another pod's record.
	tmp := "." + rec
	f, err := openAt(d, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(int(d.Fd()), tmp, int(d.Fd()), rec)
	}
	if err != nil {
		unix.Unlinkat(int(d.Fd()), tmp, 0)
		return nil, fmt.Errorf("user namespace record %s: %w", filepath.Join(dir, rec), err)
	}
	return u, nil
}

// releaseUserNS removes the record of pod name's user namespace, if any:
// its IDs are free for another pod. The last one removes the directory.
func releaseUserNS(root, name string) error {
	d, err := lockUserNSDir(false)
	if d == nil || err != nil {
		return err
	}
	defer d.Close()
	if err := os.Remove(filepath.Join(d.Name(), usernsRecordName(root, name))); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if names, _ := d.Readdirnames(1); len(names) == 0 {
		os.Remove(d.Name())
	}
	return nil
}

// lockUserNSDir opens UserNSRecords, made if create (with the default
// state root, checked as a state root is), and locks it. It is nil, with
// no error, if there is none and create is false, or if this podsb is
// rootless (its pods have no record). A directory that the last release
// removed while this one waited for the lock is made again.
func lockUserNSDir(create bool) (*os.File, error) {
	if Rootless() {
		if create {
			return nil, rootlessf("--userns auto, --uidmap and --gidmap need root")
		}
		return nil, nil
	}
	dir := UserNSRecords
	for {
		if create {
			parent, err := makeRoot(filepath.Dir(dir))
			if err != nil {
				return nil, err
			}
			parent.Close()
			if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
				return nil, err
			}
		}
		// Checked as a state root is: root's, writable by no one else.
		d, err := openRoot(dir)
		if errors.Is(err, os.ErrNotExist) {
			if !create {
				return nil, nil
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := flock(d, unix.LOCK_EX); err != nil {
			d.Close()
			return nil, &os.PathError{Op: "flock", Path: dir, Err: err}
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(d.Fd()), &st); err == nil && st.Nlink > 0 {
			return d, nil
		}
		d.Close() // removed meanwhile
		if !create {
			return nil, nil
		}
	}
}

// subIDs reads the ranges of SubIDUser in a subuid or subgid file, or
// DefaultSubIDs if it has none.
func subIDs(path string) ([]IDMap, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return []IDMap{DefaultSubIDs}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := parseSubIDs(f, SubIDUser)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(r) == 0 {
		return []IDMap{DefaultSubIDs}, nil
	}
	return r, nil
}

// sysIDMap converts a map for syscall.SysProcAttr.
func sysIDMap(m []IDMap) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(m))
	for i, e := range m {
		out[i] = syscall.SysProcIDMap{ContainerID: int(e.ContainerID), HostID: int(e.HostID), Size: int(e.Size)}
	}
	return out
}

// podUserNS is a create's pod user namespace: its maps and what the
// init gets of the host.
type podUserNS struct {
	ns  *UserNS
	dir string // the init's working directory: ROOT/NAME/userns

	// What attach mounts, by the launcher, in the init's mount namespace.
	rootfs  string   // a --rootfs directory, or "" for the default root
	etc     string   // ROOT/NAME/etc, for a directory root
	volumes []Volume // in Spec.Staged's order: vol/0, vol/1...
}

// usernsAttach is the directory, in a pod's directory, that the init of a
// pod with a user namespace starts in. The init is the namespace's root,
// which the host's files do not know: the pod's directory (0700) is
// closed to it, but not what it reaches from its working directory
// (0711), which it inherits. Before the init runs its program, the
// launcher mounts there, in the init's mount namespace, the trees the
// init cannot reach: root (the pod's root, with the host's system
// directories for the default root), exits, etc (a directory root's /etc
// files) and vol/N (the volumes' sources).
const usernsAttach = "userns"

// prepareUserNS plans a pod with a user namespace: spec's root is taken
// as mounted at root, its volumes as staged at vol/N, and the init opens
// the exits directory from exits onto setup.ExitsFD first. The returned
// operations are that opening, which replaces initProgram's.
func prepareUserNS(u *podUserNS, spec *rootfs.Spec, dir string) ([]setup.Op, error) {
	u.dir = filepath.Join(dir, usernsAttach)
	u.rootfs, u.volumes = spec.Dir, spec.Volumes
	if err := os.Mkdir(u.dir, 0o711); err != nil {
		return nil, err
	}
	for _, d := range []string{"root", exitsDirName, "etc", "vol"} {
		if err := os.Mkdir(filepath.Join(u.dir, d), 0o711); err != nil {
			return nil, err
		}
	}
	// A volume's staging point: what its source is, a directory or a file.
	for i, v := range spec.Volumes {
		at := filepath.Join(u.dir, "vol", strconv.Itoa(i))
		fi, err := os.Stat(v.Source)
		if err != nil {
			return nil, err
		}
		if fi.IsDir() {
			err = os.Mkdir(at, 0o711)
		} else {
			err = touch(at)
		}
		if err != nil {
			return nil, err
		}
	}
	spec.Target, spec.Attached, spec.HostDirsAttached = "root", true, spec.Dir == ""
	spec.Staged = map[string]string{}
	for i, v := range spec.Volumes {
		spec.Staged[rootfs.VolumeKey(v)] = "vol/" + strconv.Itoa(i)
	}
	if spec.EtcDir != "" {
		u.etc, spec.EtcDir = spec.EtcDir, "etc"
	}
	return []setup.Op{{Code: setup.OpenTree, Num: setup.ExitsFD, Str: []string{exitsDirName}}}, nil
}

// attach mounts, in the mount namespace of the pod's init pid (which has
// not run its program yet), what prepareUserNS planned, made on the host
// as detached mounts: idmapped with the init's user namespace (the pod's
// own), so that their files show their host owners. A failure names the
// tree; nothing is mounted on the host, and the mounts go with the init.
func (u *podUserNS) attach(pid int) error {
	proc := "/proc/" + strconv.Itoa(pid) + "/ns/"
	ns, err := os.Open(proc + "user")
	if err != nil {
		return err
	}
	defer ns.Close()
	nsfd := int(ns.Fd())
	type mnt struct {
		f  *os.File
		at string
	}
	var mnts []mnt
	defer func() {
		for _, m := range mnts {
			m.f.Close()
		}
	}()
	add := func(f *os.File, at string) { mnts = append(mnts, mnt{f, filepath.Join(u.dir, at)}) }
	if u.rootfs == "" {
		uid, _ := u.ns.HostUID(0)
		gid, _ := u.ns.HostGID(0)
		root, err := rootfs.Tmpfs(uid, gid)
		if err != nil {
			return err
		}
		add(root, "root")
		for _, d := range rootfs.HostSystemDirs() {
			f, err := rootfs.IDMapped(d, nsfd, unix.MOUNT_ATTR_RDONLY, true)
			if err != nil {
				return err
			}
			add(f, "root"+d)
		}
	} else {
		root, err := rootfs.IDMapped(u.rootfs, nsfd, 0, true)
		if err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
		add(root, "root")
	}
	exits, err := rootfs.IDMapped(filepath.Join(filepath.Dir(u.dir), exitsDirName), nsfd, unix.MOUNT_ATTR_NOEXEC|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV, false)
	if err != nil {
		return err
	}
	add(exits, exitsDirName)
	if u.etc != "" {
		etc, err := rootfs.IDMapped(u.etc, nsfd, unix.MOUNT_ATTR_RDONLY, false)
		if err != nil {
			return err
		}
		add(etc, "etc")
	}
	for i, v := range u.volumes {
		var f *os.File
		if v.IDMap {
			f, err = rootfs.IDMapped(v.Source, nsfd, 0, true)
		} else {
			f, err = rootfs.Clone(v.Source)
		}
		if err != nil {
			return fmt.Errorf("volume %s: %w", v, err)
		}
		add(f, "vol/"+strconv.Itoa(i))
	}
	h, err := nsenter.Open([]nsenter.Namespace{{Type: unix.CLONE_NEWNS, Path: proc + "mnt"}})
	if err != nil {
		return err
	}
	defer h.Close()
	return h.Do(func() error {
		for _, m := range mnts {
			// A system directory's mount point, in the root's tmpfs.
			if err := os.Mkdir(m.at, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				return err
			}
			if err := unix.MoveMount(int(m.f.Fd()), "", unix.AT_FDCWD, m.at, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
				return &os.PathError{Op: "move_mount", Path: m.at, Err: err}
			}
		}
		return nil
	})
}

// userAttr makes attr start the init in a new user namespace with u's
// maps, as the namespace's root (so that it keeps its capabilities through
// execve). The caller forks from a thread whose working directory is
// u.dir (forkIn): the init could not look it up.
func (u *podUserNS) userAttr(attr *syscall.ProcAttr) {
	attr.Dir = ""
	attr.Sys.Credential = &syscall.Credential{Uid: 0, Gid: 0}
	attr.Sys.Cloneflags |= unix.CLONE_NEWUSER
	attr.Sys.UidMappings = sysIDMap(u.ns.UIDMap)
	attr.Sys.GidMappings = sysIDMap(u.ns.GIDMap)
	attr.Sys.GidMappingsEnableSetgroups = true
}

// hostUserNS is the skip of the create step "user namespace".
func hostUserNS(r *podCreate) bool { return !r.c.ownUserNS() }

// reserveUserNS records the pod's maps; the undo frees them.
func (r *podCreate) reserveUserNS(context.Context) (func(), error) {
	ns, err := reserveUserNS(r.c.Root, r.c.Name, r.c)
	if err != nil {
		return nil, err
	}
	r.userns = &podUserNS{ns: ns}
	return func() { releaseUserNS(r.c.Root, r.c.Name) }, nil
}

// attachUserNS mounts the trees of the pod's root in the init's mount
// namespace (podUserNS.attach).
func (r *podCreate) attachUserNS(context.Context) (func(), error) {
	return nil, r.userns.attach(r.child.pid)
}

// openUserNS opens the pod's pinned user namespace handle if the pod has a
// user namespace of its own (else nil), as openNS opens the others.
func (p *Pod) openUserNS() (*os.File, error) {
	if p.state == nil || p.state.UserNS == nil {
		return nil, nil
	}
	d, err := p.open()
	if err != nil {
		return nil, err
	}
	defer d.Close()
	f, err := openAt(d.dir, "ns/user", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &fs); err != nil || fs.Type != unix.NSFS_MAGIC {
		f.Close()
		return nil, &os.PathError{Op: "open", Path: filepath.Join(d.path, "ns/user"), Err: errors.New("not a namespace handle")}
	}
	return f, nil
}

// joinUserNS makes a command's program join the user namespace at userns
// first, if there is one, and returns the program and the extra files
// that pass the handle. A Go thread cannot join a user namespace (setns(2)
// refuses one to a multi-threaded process), so the single-threaded pause
// run does, before anything else: it then has every capability in the
// namespace and the host's user ID 0, which the namespace does not map,
// until the program's SetIDs makes it the command's user there.
func joinUserNS(ops []setup.Op, userns *os.File) ([]setup.Op, []*os.File) {
	if userns == nil {
		return ops, nil
	}
	return append([]setup.Op{{Code: setup.SetNS, Num: programExtraFD}}, ops...), []*os.File{userns}
}

// hostIDs returns the host's IDs of a user and group of the pod.
func (p *Pod) hostIDs(uid, gid uint32) (uint32, uint32) {
	if p.state == nil || p.state.UserNS == nil {
		return uid, gid
	}
	hu, ok := p.state.UserNS.HostUID(uid)
	if !ok {
		hu = 65534
	}
	hg, ok := p.state.UserNS.HostGID(gid)
	if !ok {
		hg = 65534
	}
	return hu, hg
}

// forkIn runs fork on a fresh thread whose working directory, of its own,
// is dir: a child it forks starts there, with no look-up of the path.
func forkIn(dir string, fork func() error) error {
	h, err := nsenter.Open(nil)
	if err != nil {
		return err
	}
	return h.Do(func() error {
		if err := unix.Chdir(dir); err != nil {
			return &os.PathError{Op: "chdir", Path: dir, Err: err}
		}
		return fork()
	})
}

// checkUserNSCaps refuses a command CAP_SYS_ADMIN (or every capability)
// in a pod with a user namespace of its own, as create refuses it the pod:
// with it, the command could clear the read-only flag of the idmapped
// host directories, through which the pod's root is the host's.
func (p *Pod) checkUserNSCaps(sec Security) error {
	if p.state == nil || p.state.UserNS == nil {
		return nil
	}
	mask, all, err := sec.commandCaps(p.state.Security)
	if err != nil {
		return invalid(err)
	}
	if all || mask&(1<<capSysAdmin) != 0 {
		return invalidf("pod %s has a user namespace of its own: no CAP_SYS_ADMIN (or --privileged) for its commands: they could make the host's directories writable", p.name)
	}
	return nil
}
