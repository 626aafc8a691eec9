package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/setup"
	"github.com/podsb/podsb/nsenter"
)

// The template mount namespace of a state root.
//
// clone(CLONE_NEWNS) copies every mount of the caller's namespace, and the
// pod's init then makes them all slaves and detaches them again: three
// passes over the host's mount table per create. Every pod adds its
// namespace handles (bind mounts) to that table, so cloning pods from the
// host's namespace makes the n-th create cost O(n). Instead a pod's init
// is cloned from a template: a copy of the host's namespace, made once per
// state root, without any namespace handle (nsfs mount) or podsb ns
// directory in it. Its size does not grow with the number of pods.
//
// The template is pinned at ROOT/.template/mnt (a private mount of its
// own, as a pod's ns directory), made and dropped under an exclusive
// flock(2) of the state root's directory. It is dropped with the root's
// last pod (teardown) and by gc; the next create makes it again.
//
// A template sees the host as it was when it was made. Before each clone
// the create compares every host path the pod's plan binds from (and the
// pod's own directory and /proc) in the template and on the host, by
// device and inode; if one differs, a mount came or went there since, and
// the template is made again. The first pod of a root is cloned from the
// host (a template is made for the second). Pods whose plan binds
// directories that may hold mounts made below them later (volumes, a
// directory root) are cloned from the host's namespace, as before.
const templateDir = ".template"

// errStaleTemplate means a path a pod needs differs between the template
// and the host.
var errStaleTemplate = errors.New("template mount namespace is stale")

// useTemplate tells whether a pod with this config may be cloned from the
// template: its plan binds no directory of the host that may have mounts
// below it made after the template (volumes, a directory root).
func useTemplate(c Config) bool {
	return len(c.Volumes) == 0 && c.Rootfs == ""
}

// forkFromTemplate runs fork, which clones the pod's init, on a thread in
// the template mount namespace of the state root (root, open as rf),
// making or remaking it if it is missing or stale for ops, the program of
// the init of the pod in podDir.
func forkFromTemplate(rf *os.File, root, podDir string, ops []setup.Op, fork func() error) error {
	paths := templatePaths(ops, podDir)
	want := make([]devIno, len(paths))
	for i, p := range paths {
		var err error
		if want[i], err = statDevIno(p); err != nil {
			return err
		}
	}
	pin := filepath.Join(root, templateDir, "mnt")
	// Making a template copies the host's table once, as a clone from it
	// does: worth it only when another pod will use it. A pod alone in
	// its root (one created and removed at a time) clones from the host.
	if !isNSFS(pin) && !hasPods(root, 2) {
		return fork()
	}
	if err := flock(rf, unix.LOCK_EX); err != nil {
		return &os.PathError{Op: "flock", Path: root, Err: err}
	}
	defer unix.Flock(int(rf.Fd()), unix.LOCK_UN)
	for attempt := 0; ; attempt++ {
		err := errStaleTemplate
		if h, oerr := openTemplate(pin); oerr == nil {
			err = h.Do(func() error {
				for i, p := range paths {
					if got, err := statDevIno(p); err != nil || got != want[i] {
						return errStaleTemplate
					}
				}
				return fork()
			})
			h.Close()
		}
		if !errors.Is(err, errStaleTemplate) || attempt == 1 {
			return err
		}
		if err := makeTemplate(root); err != nil {
			return fmt.Errorf("template mount namespace: %w", err)
		}
	}
}

// openTemplate opens the pinned template, if there is one.
func openTemplate(pin string) (*nsenter.Handles, error) {
	if !isNSFS(pin) {
		return nil, errStaleTemplate
	}
	return nsenter.Open([]nsenter.Namespace{{Type: unix.CLONE_NEWNS, Path: pin}})
}

// isNSFS tells whether p is a namespace file (a pinned handle).
func isNSFS(p string) bool {
	var fs unix.Statfs_t
	return unix.Statfs(p, &fs) == nil && fs.Type == unix.NSFS_MAGIC
}

// templatePaths lists the host paths the init of the pod in podDir uses
// before it leaves the host's tree: the pod's directory, /proc, and the
// sources of its bind mounts outside the pod's directory.
func templatePaths(ops []setup.Op, podDir string) []string {
	paths := []string{podDir, "/proc"}
	for _, op := range ops {
		if op.Code == setup.Pivot {
			break
		}
		if op.Code != setup.Mount || op.Num&unix.MS_BIND == 0 || len(op.Str) == 0 {
			continue
		}
		src := op.Str[0]
		if filepath.IsAbs(src) && src != podDir && !strings.HasPrefix(src, podDir+"/") {
			paths = append(paths, src)
		}
	}
	return paths
}

type devIno struct{ dev, ino uint64 }

func statDevIno(p string) (devIno, error) {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return devIno{}, &os.PathError{Op: "stat", Path: p, Err: err}
	}
	return devIno{dev: st.Dev, ino: st.Ino}, nil
}

// makeTemplate makes the state root's template mount namespace, replacing
// the one pinned, if any. The caller holds the root's lock.
//
// A fresh thread unshares a copy of the host's namespace, makes it a
// recursive slave (host mounts and unmounts of shared mounts still reach
// it; nothing made in it reaches the host), and unmounts in it every
// namespace handle and every directory that holds them; this thread then
// pins it.
func makeTemplate(root string) error {
	dir := filepath.Join(root, templateDir)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	if isNSFS(filepath.Join(dir, "mnt")) {
		if err := unmount(filepath.Join(dir, "mnt")); err != nil {
			return err
		}
	} else if !isMountPoint(dir) {
		// Private, so that the pin does not propagate, not even into
		// the template itself (the kernel refuses such a loop).
		if err := mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
			return err
		}
		if err := mount("", dir, "", unix.MS_PRIVATE, ""); err != nil {
			return err
		}
	}
	pin := filepath.Join(dir, "mnt")
	if err := touch(pin); err != nil {
		return err
	}
	tid := make(chan int, 1)
	pinned := make(chan error, 1)
	done := make(chan error, 1)
	h := &nsenter.Handles{}
	h.Go(func(err error) {
		if err == nil {
			err = unshareTemplate()
		}
		if err != nil {
			done <- err
			return
		}
		tid <- unix.Gettid()
		done <- <-pinned
	})
	select {
	case t := <-tid:
		err := mount("/proc/self/task/"+strconv.Itoa(t)+"/ns/mnt", pin, "", unix.MS_BIND, "")
		pinned <- err
		<-done
		return err
	case err := <-done:
		return err
	}
}

// unshareTemplate turns the calling thread's mount namespace into a new
// template. Preconditions: the thread is locked, and never unlocked.
func unshareTemplate() error {
	if err := unix.Unshare(unix.CLONE_FS | unix.CLONE_NEWNS); err != nil {
		return os.NewSyscallError("unshare", err)
	}
	if err := mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return err
	}
	f, err := os.Open("/proc/thread-self/mountinfo")
	if err != nil {
		return err
	}
	targets, err := handleMounts(f)
	f.Close()
	if err != nil {
		return err
	}
	for _, t := range targets {
		if err := unix.Unmount(t, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return &os.PathError{Op: "umount", Path: t, Err: err}
		}
	}
	return nil
}

// handleMounts reads a mountinfo table and returns what a template drops:
// the mount points of namespace handles (nsfs), and of the directories
// named ns that hold them (podsb's ns directories), the directories
// first.
func handleMounts(r io.Reader) ([]string, error) {
	type entry struct {
		id, parent string
		target     string
	}
	var all []entry
	holders := map[string]bool{}
	var handles []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		m, ok := parseMountinfo(line)
		f := strings.Fields(line)
		if !ok || len(f) < 2 {
			continue
		}
		all = append(all, entry{id: f[0], parent: f[1], target: m.target})
		if m.fstype == "nsfs" {
			holders[f[1]] = true
			handles = append(handles, m.target)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	var out []string
	for _, e := range all {
		if holders[e.id] && filepath.Base(e.target) == "ns" {
			out = append(out, e.target)
		}
	}
	return append(out, handles...), nil
}

// isMountPoint tells whether p is the root of a mount.
func isMountPoint(p string) bool {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, 0, &stx); err != nil {
		return false
	}
	return stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 && stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0
}

// dropTemplate removes the state root's template if the root holds no pod
// any more, or always with force (gc: the next create makes a fresh one).
// A create that has the template open keeps its copy until it is done.
func dropTemplate(rf *os.File, root string, force bool) error {
	dir := filepath.Join(root, templateDir)
	if _, err := os.Lstat(dir); err != nil {
		return nil
	}
	if err := flock(rf, unix.LOCK_EX); err != nil {
		return &os.PathError{Op: "flock", Path: root, Err: err}
	}
	defer unix.Flock(int(rf.Fd()), unix.LOCK_UN)
	if !force && hasPods(root, 1) {
		return nil
	}
	var errs []error
	for _, p := range []string{filepath.Join(dir, "mnt"), dir} {
		if err := unmount(p); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// hasPods tells whether the state root holds at least k entries that may
// be pods: whose names do not start with a dot. It stops at the k-th.
func hasPods(root string, k int) bool {
	f, err := os.Open(root)
	if err != nil {
		return true
	}
	defer f.Close()
	for {
		names, err := f.Readdirnames(64)
		for _, n := range names {
			if !strings.HasPrefix(n, ".") {
				if k--; k == 0 {
					return true
				}
			}
		}
		if err != nil {
			return false
		}
	}
}
