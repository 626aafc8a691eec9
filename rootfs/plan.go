package rootfs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/setup"
)

// Plan returns the operations that build the root described by s at
// s.Target and switch to it. It runs on the host, before the pod exists:
// it reads what the operations need (the host's layout, the /etc files) so
// that the pod's init only executes them.
//
// The operations must run in a process alone in a new mount namespace and
// inside the pod's PID namespace (for /proc).
func Plan(s *Spec) ([]setup.Op, error) { return plan(OS, s) }

// plan is Plan with the host's file system given: all it reads goes
// through h.
func plan(h Host, s *Spec) ([]setup.Op, error) {
	p := &planner{t: s.Target, host: h}
	// Nothing mounted from here on may propagate back to the host; host
	// unmounts still reach the pod (as runc's default rslave).
	p.mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, "")
	if s.Dir == "" {
		if err := p.defaultRoot(s); err != nil {
			return nil, err
		}
	} else {
		if s.Attached {
			// Attached already, at Target.
		} else if fd, ok := s.Shared["."]; ok {
			// A detached mount (an image's overlay) is the root.
			p.add(setup.Op{Code: setup.MoveMount, Num: uint64(fd), Str: []string{p.t}})
		} else {
			// pivot_root needs the new root to be a mount point.
			p.mount(s.Dir, p.t, "", unix.MS_BIND|unix.MS_REC, "")
		}
		if s.NoDev {
			p.noDev(p.t)
		}
	}
	for _, d := range []string{"proc", "sys", "dev"} {
		p.mkdir(p.path(d), 0o755)
	}
	p.mount("proc", p.path("proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	p.mount("sysfs", p.path("sys"), "sysfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	p.devices(p.path("dev"), s.NoDev, s.OnlyRoot, s.Shared)
	p.tmp(s)
	if s.Mask {
		if err := p.mask(s, func(path string) bool { return !s.ProcLater || !within(path, "/proc") }); err != nil {
			return nil, err
		}
	}
	if err := p.etc(s); err != nil {
		return nil, err
	}
	for _, v := range s.Volumes {
		if err := p.volume(s, v); err != nil {
			return nil, err
		}
	}
	if s.ReadOnly {
		p.add(setup.Op{Code: setup.RemountRO, Str: []string{p.t}})
	}
	p.add(setup.Op{Code: setup.Pivot, Str: []string{p.t}})
	return p.ops, nil
}

// ProcPlan returns, for a Spec with ProcLater, the operations that mount
// the caller's PID namespace's /proc at /proc and mask the paths below it
// (with Mask): they run in the root, after Plan's pivot_root.
func ProcPlan(s *Spec) ([]setup.Op, error) {
	p := &planner{t: "/", host: OS}
	p.mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	if s.Mask {
		if err := p.mask(s, func(path string) bool { return within(path, "/proc") }); err != nil {
			return nil, err
		}
	}
	return p.ops, nil
}

type planner struct {
	t    string // target
	host Host
	ops  []setup.Op
}

func (p *planner) add(op setup.Op) { p.ops = append(p.ops, op) }

// path returns the target path of name, relative to the new root.
func (p *planner) path(name string) string { return filepath.Join(p.t, name) }

func (p *planner) mount(source, target, fstype string, flags uintptr, data string) {
	p.add(setup.Op{Code: setup.Mount, Num: uint64(flags), Str: []string{source, target, fstype, data}})
}

func (p *planner) mkdir(path string, mode uint32) {
	p.add(setup.Op{Code: setup.Mkdir, Num: uint64(mode), Str: []string{path}})
}

// bindReadOnly binds source, with the mounts below it, on target, and makes
// them all read-only. A bind mount takes the source's flags; read-only
// needs a second call.
func (p *planner) bindReadOnly(source, target string) {
	p.mount(source, target, "", unix.MS_BIND|unix.MS_REC, "")
	p.add(setup.Op{Code: setup.RemountRO, Num: setup.Recursive, Str: []string{target}})
}

// noDev makes the mount at target, and those below it, nodev.
func (p *planner) noDev(target string) {
	p.add(setup.Op{Code: setup.NoDev, Str: []string{target}})
}

// defaultRoot mounts a tmpfs with read-only binds of the host's system
// directories and a private /etc.
func (p *planner) defaultRoot(s *Spec) error {
	if fd, ok := s.Shared["."]; ok && !s.Attached {
		// Made on the host (DefaultRoot).
		p.add(setup.Op{Code: setup.MoveMount, Num: uint64(fd), Str: []string{p.t}})
	} else if !s.Attached {
		p.mount("tmpfs", p.t, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755")
	}
	for _, d := range hostSystemDirs {
		fi, err := p.host.Lstat(d)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			link, err := p.host.Readlink(d)
			if err != nil {
				return err
			}
			p.add(setup.Op{Code: setup.Symlink, Str: []string{link, p.path(d)}})
		case fi.IsDir() && !s.HostDirsAttached:
			p.mkdir(p.path(d), 0o755)
			if fd, ok := s.Shared[strings.TrimPrefix(d, "/")]; ok {
				// Opened on the host, read-only (an idmapped clone).
				p.add(setup.Op{Code: setup.MoveMount, Num: uint64(fd), Str: []string{p.path(d)}})
				break
			}
			p.bindReadOnly(d, p.path(d))
		}
	}
	for _, d := range []struct {
		name string
		mode uint32
	}{{"etc", 0o755}, {"root", 0o700}, {"run", 0o755}, {"var", 0o755}, {"var/tmp", 0o1777}, {"home", 0o755}} {
		p.mkdir(p.path(d.name), d.mode)
	}
	for _, f := range hostEtcFiles {
		src, dst := filepath.Join("/etc", f), p.path("etc/"+f)
		if s.EtcCopies {
			b, err := p.host.ReadFile(src)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return err
			}
			p.add(setup.Op{Code: setup.Write, Num: 0o644, Str: []string{dst, string(b)}})
			continue
		}
		// The host's own file, read-only: one copy for every pod (a copy
		// in the pod's tmpfs would cost each pod a page).
		fi, err := p.host.Stat(src)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return invalidf("host file %s: not a regular file", src)
		}
		p.add(setup.Op{Code: setup.Touch, Num: 0o644, Str: []string{dst}})
		p.bindReadOnly(src, dst)
	}
	return nil
}

// tmp makes the root's /tmp, writable by everyone with the sticky bit. The
// default root's is a directory of the root's own tmpfs, bound onto
// itself: a mount of its own, as a tmpfs would be (it stays writable in a
// read-only root, and a rename between it and the root is across mounts),
// without a superblock of its own (about 6 KiB of kernel memory a pod). A
// directory root's /tmp is a tmpfs, so that nothing is written into the
// directory.
func (p *planner) tmp(s *Spec) {
	tmp := p.path("tmp")
	if s.Dir != "" {
		p.mkdir(tmp, 0o755)
		p.mount("tmpfs", tmp, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777")
		return
	}
	p.mkdir(tmp, 0o1777)
	p.mount(tmp, tmp, "", unix.MS_BIND, "")
}

// mask hides MaskedPaths and makes ReadOnlyPaths read-only (or the spec's
// own lists), those of them (clean) that keep allows. What the host's
// kernel does not have is skipped (the pod's /proc and /sys are of the
// same kernel), as is a path the root lacks.
func (p *planner) mask(s *Spec, keep func(clean string) bool) error {
	masked, readOnly := MaskedPaths, ReadOnlyPaths
	if s.MaskPaths != nil {
		masked = s.MaskPaths
	}
	if s.ReadOnlyPaths != nil {
		readOnly = s.ReadOnlyPaths
	}
	// One empty tmpfs serves every masked directory: the first gets it,
	// the others a bind of it, which keeps its flags (read-only, nosuid,
	// nodev, noexec). A superblock per directory would cost each pod
	// about 4 KiB more of kernel memory.
	empty := ""
	for _, m := range masked {
		if !keep(filepath.Clean(m)) {
			continue
		}
		target, fi, err := p.maskTarget(s, m)
		if err != nil {
			return err
		}
		switch {
		case fi == nil:
		case fi.IsDir() && empty == "":
			p.mount("tmpfs", target, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
			empty = target
		case fi.IsDir():
			p.mount(empty, target, "", unix.MS_BIND, "")
		default:
			p.mount("/dev/null", target, "", unix.MS_BIND, "")
		}
	}
	for _, r := range readOnly {
		if !keep(filepath.Clean(r)) {
			continue
		}
		target, fi, err := p.maskTarget(s, r)
		if err != nil {
			return err
		}
		if fi != nil {
			p.mount(target, target, "", unix.MS_BIND|unix.MS_REC, "")
			p.add(setup.Op{Code: setup.RemountRO, Num: setup.Recursive, Str: []string{target}})
		}
	}
	return nil
}

// maskTarget is where a masked or read-only path is in the target, and
// what it is; a nil FileInfo for a path that does not exist. The plan's
// own mounts (/proc, /sys, /dev, /tmp) are the kernel's or made here;
// other paths are resolved in the root directory, never leaving it.
func (p *planner) maskTarget(s *Spec, path string) (string, os.FileInfo, error) {
	clean := filepath.Clean(path)
	if !filepath.IsAbs(path) || clean == "/" {
		return "", nil, invalidf("masked or read-only path %q: not an absolute path below /", path)
	}
	switch {
	case within(clean, "/proc"), within(clean, "/sys"):
		fi, err := p.host.Stat(clean)
		if err != nil {
			return "", nil, nil
		}
		return p.path(clean), fi, nil
	case clean == "/tmp", clean == "/dev":
		return p.path(clean), dirInfo{}, nil
	case within(clean, "/dev"), within(clean, "/tmp"):
		return "", nil, invalidf("masked or read-only path %q: below the pod's /dev or /tmp, which podsb makes", path)
	}
	dir := s.Dir
	if dir == "" {
		dir = "/" // the default root's system directories are the host's
	}
	resolved, err := securejoin.SecureJoinVFS(dir, clean, p.host)
	if err != nil {
		return "", nil, nil
	}
	fi, err := p.host.Lstat(resolved)
	if err != nil {
		return "", nil, nil
	}
	rel, err := filepath.Rel(dir, resolved)
	if err != nil {
		return "", nil, nil
	}
	return p.path(rel), fi, nil
}

// dirInfo is the FileInfo of a directory the plan makes.
type dirInfo struct{ os.FileInfo }

func (dirInfo) IsDir() bool { return true }

// devNodes are the character devices every pod gets, as runc gives them.
var devNodes = []struct {
	name         string
	major, minor uint32
}{
	{"null", 1, 3},
	{"zero", 1, 5},
	{"full", 1, 7},
	{"random", 1, 8},
	{"urandom", 1, 9},
	{"tty", 5, 0},
}

var devLinks = [][2]string{
	{"pts/ptmx", "ptmx"},
	{"/proc/self/fd", "fd"},
	{"/proc/self/fd/0", "stdin"},
	{"/proc/self/fd/1", "stdout"},
	{"/proc/self/fd/2", "stderr"},
}

// devices mounts a small tmpfs at dev with the pod's device nodes, a private
// devpts instance (so the pod's ptys are its own), /dev/shm, and the
// message-queue filesystem of the pod's IPC namespace. With noDev the tmpfs
// is nodev, and the nodes are the host's, bind-mounted (a bind mount keeps
// the flags of the host's /dev): a node made later in /dev cannot be
// opened.
//
// The devpts instance gives its terminals to group 5 (tty), unless onlyRoot
// (a user namespace that maps no group 5, where the option fails).
func (p *planner) devices(dev string, noDev, onlyRoot bool, shared map[string]int) {
	if noDev {
		p.mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size=65536k")
		for _, n := range devNodes {
			node := filepath.Join(dev, n.name)
			p.add(setup.Op{Code: setup.Touch, Num: 0o666, Str: []string{node}})
			p.mount(filepath.Join("/dev", n.name), node, "", unix.MS_BIND, "")
		}
	} else {
		p.mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID, "mode=0755,size=65536k")
		for _, n := range devNodes {
			mode := uint64(unix.S_IFCHR | 0o666)
			p.add(setup.Op{Code: setup.Mknod, Num: mode | uint64(unix.Mkdev(n.major, n.minor))<<32, Str: []string{filepath.Join(dev, n.name)}})
		}
	}
	for _, l := range devLinks {
		p.add(setup.Op{Code: setup.Symlink, Str: []string{l[0], filepath.Join(dev, l[1])}})
	}
	for _, d := range []string{"pts", "shm", "mqueue"} {
		p.mkdir(filepath.Join(dev, d), 0o755)
	}
	if fd, ok := shared["dev/pts"]; ok {
		p.add(setup.Op{Code: setup.MoveMount, Num: uint64(fd), Str: []string{filepath.Join(dev, "pts")}})
	} else {
		opts := "newinstance,ptmxmode=0666,mode=0620,gid=5"
		if onlyRoot {
			opts = "newinstance,ptmxmode=0666,mode=0620"
		}
		p.mount("devpts", filepath.Join(dev, "pts"), "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, opts)
	}
	if fd, ok := shared["dev/shm"]; ok {
		p.add(setup.Op{Code: setup.MoveMount, Num: uint64(fd), Str: []string{filepath.Join(dev, "shm")}})
	} else {
		p.mount("shm", filepath.Join(dev, "shm"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777,size=65536k")
	}
	p.mount("mqueue", filepath.Join(dev, "mqueue"), "mqueue", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
}

// etc gives the root the pod's hostname, hosts and resolv.conf: copies in
// the default root's private /etc; bind mounts from s.EtcDir over the
// entries of a directory root, whose own files stay untouched.
func (p *planner) etc(s *Spec) error {
	if s.Dir == "" {
		for _, f := range EtcFiles {
			p.add(setup.Op{Code: setup.Write, Num: 0o644, Str: []string{p.path("etc/" + f), s.Etc[f]}})
		}
		return nil
	}
	etc, err := securejoin.SecureJoinVFS(s.Dir, "etc", p.host)
	if err != nil {
		return nil // a root without /etc gets none
	}
	if fi, err := p.host.Stat(etc); err != nil || !fi.IsDir() {
		return nil // a root without /etc gets none
	}
	for _, f := range EtcFiles {
		fi, err := p.host.Lstat(filepath.Join(etc, f))
		if err == nil && !fi.Mode().IsRegular() {
			// A symlink (resolv.conf often is one) would be followed in
			// the host's tree by mount(2): leave it as the root has it.
			continue
		}
		dst := p.path(strings.TrimPrefix(filepath.Join(etc, f), s.Dir))
		if err != nil {
			// Missing: make a mount point if the root is writable, or
			// leave the root without the file.
			if !p.host.Writable(etc) {
				continue
			}
			p.add(setup.Op{Code: setup.Touch, Num: 0o644, Str: []string{dst}})
		}
		src := filepath.Join(s.EtcDir, f)
		if s.ReadOnly {
			p.bindReadOnly(src, dst)
		} else {
			p.mount(src, dst, "", unix.MS_BIND, "")
		}
	}
	return nil
}

// volume binds v.Source at v.Destination. In a directory root the
// destination is resolved inside the root, so a symlink in it cannot send
// the mount outside.
func (p *planner) volume(s *Spec, v Volume) error {
	dst := p.path(v.Destination)
	if s.Dir != "" {
		real, err := securejoin.SecureJoinVFS(s.Dir, v.Destination, p.host)
		if err != nil {
			return err
		}
		rel := "/" + strings.TrimPrefix(strings.TrimPrefix(real, s.Dir), "/")
		if err := checkDestination(v, rel); err != nil {
			return err
		}
		dst = p.path(rel)
	}
	isDir := true
	if v.Image != nil {
		// The host opened the image's tree (OpenImageVolume) and told
		// whether it is a file.
		if _, ok := s.Shared[VolumeKey(v)]; !ok {
			return invalidf("volume %s: an image volume needs its tree opened on the host", v)
		}
		isDir = !s.SharedFiles[VolumeKey(v)]
	} else {
		fi, err := p.host.Stat(v.Source)
		if err != nil {
			return err
		}
		isDir = fi.IsDir()
	}
	dir := dst
	if !isDir {
		dir = filepath.Dir(dst)
	}
	// mkdir -p, inside the target.
	rel := strings.TrimPrefix(dir, p.t)
	cur := p.t
	for _, part := range strings.Split(strings.Trim(rel, "/"), "/") {
		if part == "" {
			continue
		}
		cur = filepath.Join(cur, part)
		p.mkdir(cur, 0o755)
	}
	if !isDir {
		p.add(setup.Op{Code: setup.Touch, Num: 0o644, Str: []string{dst}})
	}
	if src, ok := s.Staged[VolumeKey(v)]; ok {
		p.mount(src, dst, "", unix.MS_BIND|unix.MS_REC, "")
	} else if fd, ok := s.Shared[VolumeKey(v)]; ok {
		// A detached clone of the source's tree, made on the host: it
		// keeps the peer group of the source's mount.
		p.add(setup.Op{Code: setup.MoveMount, Num: uint64(fd), Str: []string{dst}})
	} else if v.Propagation == PropagationShared {
		return invalidf("volume %s: propagation %s needs the source's tree opened on the host", v, v.Propagation)
	} else {
		p.mount(v.Source, dst, "", unix.MS_BIND|unix.MS_REC, "")
	}
	switch v.Propagation {
	case PropagationPrivate:
		p.mount("", dst, "", unix.MS_REC|unix.MS_PRIVATE, "")
	case PropagationSlave:
		p.mount("", dst, "", unix.MS_REC|unix.MS_SLAVE, "")
	}
	if v.ReadOnly {
		op := setup.Op{Code: setup.RemountRO, Num: setup.Recursive, Str: []string{dst}}
		if v.NonRecursive {
			op.Num = 0
		}
		p.add(op)
	}
	if s.NoDev {
		p.noDev(dst)
	}
	return nil
}
