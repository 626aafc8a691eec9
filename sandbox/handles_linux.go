package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
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
func pinNamespaces(pid int, nsDir string) ([]Namespace, error) {
	if err := mount(nsDir, nsDir, "", unix.MS_BIND, ""); err != nil {
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

// registerNetNS binds the pinned network namespace handle at
// /run/netns/NAME, where ip netns finds it, as ip netns add does.
func registerNetNS(name, handle string) (string, error) {
	if err := sharedNetNSDir(); err != nil {
		return "", err
	}
	p := filepath.Join(NetNSDir, name)
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o444)
	if errors.Is(err, unix.EEXIST) {
		return "", fmt.Errorf("network namespace %q: %w in %s", name, ErrExists, NetNSDir)
	}
	if err != nil {
		return "", &os.PathError{Op: "create", Path: p, Err: err}
	}
	unix.Close(fd)
	if err := mount(handle, p, "", unix.MS_BIND, ""); err != nil {
		os.Remove(p)
		return "", err
	}
	return p, nil
}

// sharedNetNSDir makes /run/netns a shared mount, as iproute2 does, so an
// unmount of a handle there reaches every mount namespace that has a copy
// and the network namespace is freed at once. The first caller makes the
// directory a mount point; a lock keeps parallel callers from stacking
// binds.
func sharedNetNSDir() error {
	if err := unix.Mount("", NetNSDir, "none", unix.MS_SHARED|unix.MS_REC, ""); err == nil {
		return nil
	}
	if err := os.MkdirAll(NetNSDir, 0o755); err != nil {
		return err
	}
	f, err := os.Open(NetNSDir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return &os.PathError{Op: "flock", Path: NetNSDir, Err: err}
	}
	if err := unix.Mount("", NetNSDir, "none", unix.MS_SHARED|unix.MS_REC, ""); err == nil {
		return nil
	} else if !errors.Is(err, unix.EINVAL) {
		return &mountError{target: NetNSDir, flags: unix.MS_SHARED | unix.MS_REC, err: err}
	}
	if err := mount(NetNSDir, NetNSDir, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	return mount("", NetNSDir, "none", unix.MS_SHARED|unix.MS_REC, "")
}

// teardown removes everything a pod has on the host: its ip netns entry (if
// it is the pod's), its namespace handles and its state directory. It works
// on a pod in any state, a half-made one included, and is idempotent.
func teardown(dir, name string) error {
	nsDir := filepath.Join(dir, "ns")
	var errs []error
	if same, _ := sameFile(filepath.Join(nsDir, "net"), filepath.Join(NetNSDir, name)); same {
		if err := unmountRemove(filepath.Join(NetNSDir, name)); err != nil {
			errs = append(errs, err)
		}
	}
	for _, t := range NamespaceTypes {
		if err := unmount(filepath.Join(nsDir, procName(t))); err != nil {
			errs = append(errs, err)
		}
	}
	if err := unmount(nsDir); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		// Something else is mounted below dir (a crash between two
		// steps): find it in mountinfo and try once more.
		if uerr := unmountBelow(dir); uerr != nil {
			errs = append(errs, uerr)
		}
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// sameFile tells whether a and b are the same nsfs inode.
func sameFile(a, b string) (bool, error) {
	var sa, sb unix.Stat_t
	if err := unix.Stat(a, &sa); err != nil {
		return false, err
	}
	if err := unix.Stat(b, &sb); err != nil {
		return false, err
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino, nil
}

// unmount unmounts p. Not mounted or missing is success. A busy mount is
// detached lazily instead.
func unmount(p string) error {
	err := unix.Unmount(p, 0)
	switch {
	case err == nil, errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
		return nil
	case errors.Is(err, unix.EBUSY):
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			return &os.PathError{Op: "umount", Path: p, Err: err}
		}
		return nil
	}
	return &os.PathError{Op: "umount", Path: p, Err: err}
}

// unmountRemove unmounts and unlinks a handle file, retrying the unlink
// while a lazy unmount still holds it busy.
func unmountRemove(p string) error {
	if err := unmount(p); err != nil {
		return err
	}
	var err error
	for i := 0; i < 50; i++ {
		err = os.Remove(p)
		if err == nil || isNotExist(err) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			return err
		}
		time.Sleep(time.Millisecond)
	}
	return err
}

// unmountBelow unmounts every mount at or below dir, deepest first.
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
		if err := unix.Unmount(targets[i], unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, &os.PathError{Op: "umount", Path: targets[i], Err: err})
		}
	}
	return errors.Join(errs...)
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
