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
// it is the pod's), its namespace handles and its state directory. It works
// on a pod in any state, a half-made one included, and is idempotent.
func teardown(dir, name string) error {
	nsDir := filepath.Join(dir, "ns")
	var errs []error
	// The ip netns entry, if it is ours: a link to our handle.
	entry := filepath.Join(NetNSDir, name)
	if target, err := os.Readlink(entry); err == nil && target == filepath.Join(nsDir, "net") {
		if err := os.Remove(entry); err != nil && !isNotExist(err) {
			errs = append(errs, err)
		}
	}
	// The pod's handles and its containers' (mnt-NAME).
	ents, _ := os.ReadDir(nsDir)
	for _, e := range ents {
		if err := unmount(filepath.Join(nsDir, e.Name())); err != nil {
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
