package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/nsenter"
)

// NetNSDir is where ip netns finds named network namespaces.
const NetNSDir = "/run/netns"

// pinNamespaces binds /proc/PID/ns/* of pid at nsDir/*, so that the
// namespaces live as long as the bind mounts do.
//
// nsDir is first made a private mount of its own. A mount-namespace file
// cannot be bound where the bind would propagate into that namespace (the
// kernel refuses the loop with EINVAL, which bites when /run is shared, as
// under systemd), and private handles are not copied into peer namespaces.
//
// The mount is a small tmpfs, not a bind of nsDir to itself: a bind walks
// every mount below the one it copies from (the file system of the state
// root, where each pod's nsDir is one), which made each create O(pods).
// The handle files vanish with it at teardown.
func pinNamespaces(pid int, nsDir string) ([]Namespace, error) {
	if err := mount("podsb-ns", nsDir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0700,size=4k"); err != nil {
		return nil, err
	}
	if err := mount("", nsDir, "", unix.MS_PRIVATE, ""); err != nil {
		return nil, err
	}
	proc := "/proc/" + strconv.Itoa(pid) + "/ns/"
	nss := make([]Namespace, 0, len(NamespaceTypes))
	for _, t := range NamespaceTypes {
		name := procName(t)
		dst := filepath.Join(nsDir, name)
		if err := touch(dst); err != nil {
			return nil, err
		}
		if err := mount(proc+name, dst, "", unix.MS_BIND, ""); err != nil {
			return nil, err
		}
		ino, err := nsInode(dst)
		if err != nil {
			return nil, err
		}
		nss = append(nss, Namespace{Type: t, Path: dst, Inode: ino})
	}
	return nss, nil
}

// registerNetNS makes the pinned network namespace handle visible to ip
// netns as /run/netns/NAME: a symbolic link to the handle. iproute2 opens,
// stats and unlinks the entries there, all of which follow or remove a
// link, so no bind mount is needed: the host's mount table (copied into
// every new pod) stays one mount smaller per pod, and /run/netns need not
// become a shared mount point.
func registerNetNS(name, handle string) (string, error) {
	if err := os.MkdirAll(NetNSDir, 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(NetNSDir, name)
	if err := os.Symlink(handle, p); err != nil {
		if errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("network namespace %q: %w in %s", name, ErrExists, NetNSDir)
		}
		return "", err
	}
	return p, nil
}

// teardown removes everything a pod has on the host: its ip netns entry (if
// it is the pod's), its namespace handles and its state directory d, whose
// lock the caller holds. It works on a pod in any state, a half-made one
// included, and is idempotent. Every path is taken below d, through no
// symbolic link.
//
// The directory first leaves its name for the work directory, and its
// files are removed there: a crash from then on leaves ROOT/.tmp/rm-ID,
// which gc removes, and never a directory without its marker at the pod's
// name.
func teardown(d *podDir) error {
	var errs []error
	// The ip netns entry, if it is ours: a link to our handle.
	entry := filepath.Join(NetNSDir, d.name)
	if target, err := os.Readlink(entry); err == nil && target == filepath.Join(d.path, "ns", "net") {
		if err := os.Remove(entry); err != nil && !isNotExist(err) {
			errs = append(errs, err)
		}
	}
	// The pod's handles and its containers' (mnt-NAME). A rootless
	// podsb mounted none: its handles are links.
	if !Rootless() {
		errs = append(errs, unmountHandles(d)...)
	}
	// Upper directories of image roots made outside the pod's directory.
	if err := removeUppers(d.dir); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// Its user namespace's IDs (userns_linux.go), once nothing of it runs.
	if err := releaseUserNS(filepath.Dir(d.path), d.name); err != nil {
		return err
	}
	defer doneWork(d.root)
	for range 100 {
		work, err := openWork(d.root)
		if err != nil {
			return err
		}
		tomb := "rm-" + newID()
		err = unix.Renameat(int(d.root.Fd()), d.name, int(work.Fd()), tomb)
		if err == nil {
			err = removeTree(work, tomb, d.dir)
			// And what a killed create or rm left there.
			sweepWork(work)
			work.Close()
			// The root's template goes with its last pod.
			if terr := dropTemplate(d.root, filepath.Dir(d.path), false); err == nil {
				err = terr
			}
			return err
		}
		// ENOENT: the work directory was removed under us (by another's
		// doneWork), or the pod's directory is no longer at its name.
		retry := errors.Is(err, unix.ENOENT) && !sameEntry(d.root, workDir, work) && sameEntry(d.root, d.name, d.dir)
		work.Close()
		if !retry {
			return &os.LinkError{Op: "rename", Old: d.path, New: filepath.Join(d.root.Name(), workDir, tomb), Err: err}
		}
	}
	return fmt.Errorf("cannot move %s to %s", d.path, filepath.Join(d.root.Name(), workDir))
}

// unmountHandles unmounts the pod's handles and its ns directory: the
// directory's mount with every handle on it, in one lazy unmount of the
// tree. Each unmount call waits for an RCU grace period, and a pod has
// seven or more handles; nothing else of the pod is mounted below ns, so
// detaching the tree cannot leave something of the pod's running. If ns
// is not a mount (a create that died before it made it, or a handle that
// is), the handles are unmounted one at a time.
func unmountHandles(d *podDir) []error {
	err := unix.Unmount(fdPath(d.dir)+"/ns", unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT):
		return []error{&os.PathError{Op: "umount", Path: filepath.Join(d.path, "ns"), Err: err}}
	}
	var errs []error
	if ns, err := openAt(d.dir, "ns", unix.O_RDONLY|unix.O_DIRECTORY, 0); err == nil {
		names, _ := ns.Readdirnames(-1)
		for _, n := range names {
			if err := unmountAt(ns, n); err != nil {
				errs = append(errs, err)
			}
		}
		ns.Close()
	}
	if err := unmountAt(d.dir, "ns"); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// removeTree removes the directory name of parent, open as dir, and
// everything below it: what is mounted below it too (a crash between two
// steps of create or rm may leave such a mount).
func removeTree(parent *os.File, name string, dir *os.File) error {
	if err := removeEntries(dir); err != nil {
		real, rerr := os.Readlink(fdPath(dir))
		if rerr != nil {
			return err
		}
		if err := unmountBelow(real); err != nil {
			return err
		}
		if err := removeEntries(dir); err != nil {
			return err
		}
	}
	if err := unix.Unlinkat(int(parent.Fd()), name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return &os.PathError{Op: "remove", Path: filepath.Join(parent.Name(), name), Err: err}
	}
	return nil
}

// removeEntries removes everything in the directory dir. os.RemoveAll
// follows no symbolic link below the path it is given, here the directory
// itself through /proc/self/fd.
func removeEntries(dir *os.File) error {
	f, err := os.Open(fdPath(dir))
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		if err := os.RemoveAll(fdPath(dir) + "/" + n); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// unmountAt unmounts name in the directory dir, not following a symbolic
// link in its place.
func unmountAt(dir *os.File, name string) error {
	err := unmount(fdPath(dir) + "/" + name)
	var pe *os.PathError
	if errors.As(err, &pe) {
		pe.Path = filepath.Join(dir.Name(), name)
	}
	return err
}

// unmount unmounts p; a symbolic link at p is not followed (and not a
// mount). Not mounted or missing is success. A busy mount is detached
// lazily instead.
func unmount(p string) error {
	err := unix.Unmount(p, unix.UMOUNT_NOFOLLOW)
	switch {
	case err == nil, errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
		return nil
	case errors.Is(err, unix.EBUSY):
		if err := unix.Unmount(p, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil && !errors.Is(err, unix.EINVAL) {
			return &os.PathError{Op: "umount", Path: p, Err: err}
		}
		return nil
	}
	return &os.PathError{Op: "umount", Path: p, Err: err}
}

// unmountBelow unmounts every mount at or below dir (a path with no
// symbolic link, as the mount table gives), deepest first.
func unmountBelow(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var targets []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m, ok := parseMountinfo(sc.Text()); ok && (m.target == dir || strings.HasPrefix(m.target, dir+"/")) {
			targets = append(targets, m.target)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	var errs []error
	for i := len(targets) - 1; i >= 0; i-- {
		if err := unix.Unmount(targets[i], unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, &os.PathError{Op: "umount", Path: targets[i], Err: err})
		}
	}
	return errors.Join(errs...)
}

// openNS opens the pod's namespace handles nss, in order (paths in the
// pod's directory, as NamespacePath gives them), as nsenter.Open does, but
// through no symbolic link, and only namespace files.
func (p *Pod) openNS(nss []nsenter.Namespace) (*nsenter.Handles, error) {
	if p.state != nil && p.state.Rootless != nil {
		return p.openRootlessNS(nss)
	}
	d, err := p.open()
	if err != nil {
		return nil, err
	}
	defer d.Close()
	safe := make([]nsenter.Namespace, len(nss))
	for i, ns := range nss {
		rel, err := filepath.Rel(d.path, ns.Path)
		if err != nil || !filepath.IsLocal(rel) {
			return nil, fmt.Errorf("namespace handle %s: not in the pod's directory", ns.Path)
		}
		f, err := openAt(d.dir, rel, unix.O_RDONLY|unix.O_NONBLOCK, 0)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		var fs unix.Statfs_t
		if err := unix.Fstatfs(int(f.Fd()), &fs); err != nil || fs.Type != unix.NSFS_MAGIC {
			return nil, &os.PathError{Op: "open", Path: ns.Path, Err: errors.New("not a namespace handle")}
		}
		safe[i] = nsenter.Namespace{Type: ns.Type, Path: fdPath(f)}
	}
	return nsenter.Open(safe)
}

func touch(p string) error {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o444)
	if err != nil {
		return &os.PathError{Op: "create", Path: p, Err: err}
	}
	return unix.Close(fd)
}

// mountError is a failed mount(2) with what was attempted.
type mountError struct {
	source, target string
	flags          uintptr
	err            error
}

func (e *mountError) Error() string {
	return fmt.Sprintf("mount %s on %s (flags %#x): %v", e.source, e.target, e.flags, e.err)
}

func (e *mountError) Unwrap() error { return e.err }

func mount(source, target, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return &mountError{source: source, target: target, flags: flags, err: err}
	}
	return nil
}
