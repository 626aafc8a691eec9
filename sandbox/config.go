package sandbox

import (
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/rootfs"
)

// Volume is a bind mount of a host path into a pod.
type Volume = rootfs.Volume

// ParseSignal reads a signal as a number from 1 to 64, or a name with or
// without SIG, in any case (rootfs.ParseSignal, which reads images'
// StopSignal).
func ParseSignal(s string) (unix.Signal, error) { return rootfs.ParseSignal(s) }

// ParseVolume parses SRC:DST[:OPTS], OPTS comma-separated: ro or rw, and
// kernelfs (rootfs.ParseVolume).
func ParseVolume(s string) (Volume, error) {
	v, err := rootfs.ParseVolume(s)
	if err != nil {
		return v, invalid(err)
	}
	return v, nil
}

// Config describes a pod to create.
type Config struct {
	// Root is the state root; DefaultRoot if empty.
	Root string
	// Name is the pod's name; a random 12-hex-digit ID if empty.
	Name string
	// Hostname is the pod's hostname; the name if empty.
	Hostname string
	// Rootfs is a host directory to use as the pod's root. Empty means the
	// default root: a fresh tmpfs with read-only binds of the host's /usr,
	// /bin, /sbin and /lib* and a pod-private /etc.
	Rootfs string
	// ReadOnly makes the pod's root read-only.
	ReadOnly bool
	// Volumes are host paths bound into the pod.
	Volumes []Volume
	// Network connects the pod to the state root's bridge network; nil
	// leaves it loopback only.
	Network *NetworkConfig
	// HostNetwork puts the pod in the host's network and UTS namespaces
	// instead of new ones: no bridge (Network must be nil), the host's
	// hostname (Hostname is ignored). HostIPC puts it in the host's IPC
	// namespace. Removing the pod only drops its handles of them.
	HostNetwork, HostIPC bool
	// HostPID lets the pod's containers run in the host's PID namespace
	// (PIDMode.Host). pause keeps a PID namespace of its own, so the pod's
	// life is unchanged; its removal kills such containers, which pause's
	// exit does not.
	HostPID bool
	// Sysctls are set in the pod's own namespaces when it is created
	// (sysctlPaths says which may be).
	Sysctls []Sysctl
	// Limits are the pod's resource limits (a cgroup); none if zero.
	Limits Limits
	// CgroupParent, if set, is an existing cgroup (a path below the
	// cgroup root, as kubelet's cgroupfs driver names them) that the
	// pod's cgroup is made in; the pod then always has a cgroup, which
	// holds pause. Empty: the pod's cgroup, if any, is at the top.
	CgroupParent string
	// ResolvConf is the content of the pod's /etc/resolv.conf; empty: the
	// host's, without loopback name servers.
	ResolvConf string
	// Security sets pause's capabilities and privileges and, unless
	// Privileged, masks the sensitive parts of /proc and /sys. Its
	// capabilities are also the default of the pod's execs and runs.
	Security Security
	// UserNS is the pod's user namespace: UserNSHost (or empty), the
	// host's; UserNSAuto, one of its own mapping its IDs 0 to 65,535 to
	// host IDs no other pod of the state root has. UIDMap and GIDMap give
	// one of its own with these maps instead (a missing one is the other);
	// they overlap no other pod's either. Its own user namespace owns the
	// pod's other namespaces, and its root is nobody on the host
	// (docs/security.md).
	UserNS         string
	UIDMap, GIDMap []IDMap
	// Trace, if set, is called after each step of Create with the step's
	// name and duration: a profile of where the time goes.
	Trace func(step string, d time.Duration)
}

// tracer returns a function that reports the time since its last call to
// c.Trace, or does nothing without one.
func (c Config) tracer() func(step string) { return traceFunc(c.Trace) }

// traceFunc returns a function that reports a step and the time since its
// last call to trace, or does nothing if trace is nil.
func traceFunc(trace func(step string, d time.Duration)) func(step string) {
	if trace == nil {
		return func(string) {}
	}
	last := time.Now()
	return func(step string) {
		now := time.Now()
		trace(step, now.Sub(last))
		last = now
	}
}

// withDefaults returns c with defaults filled in, validated.
func (c Config) withDefaults() (Config, error) {
	if c.Root == "" {
		c.Root = DefaultRoot
	}
	if !filepath.IsAbs(c.Root) {
		abs, err := filepath.Abs(c.Root)
		if err != nil {
			return c, err
		}
		c.Root = abs
	}
	if c.Name == "" {
		c.Name = newID()
	}
	if err := ValidateName(c.Name); err != nil {
		return c, err
	}
	if c.HostNetwork {
		if c.Network != nil {
			return c, invalidf("pod %s: host network and a bridge network", c.Name)
		}
		h, err := os.Hostname()
		if err != nil {
			return c, err
		}
		c.Hostname = h
	}
	if c.Hostname == "" {
		c.Hostname = c.Name
	}
	if _, err := sysctlPaths(c.Sysctls, c.HostNetwork, c.HostIPC); err != nil {
		return c, err
	}
	if err := c.checkUserNS(); err != nil {
		return c, err
	}
	if err := validateHostname(c.Hostname); err != nil {
		return c, err
	}
	if c.Rootfs != "" {
		c.Rootfs = filepath.Clean(c.Rootfs)
	}
	if err := c.Limits.check(); err != nil {
		return c, err
	}
	if p := c.CgroupParent; p != "" && (!filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/") {
		return c, invalidf("cgroup parent %q: want a clean absolute path below the cgroup root", p)
	}
	spec := rootfs.Spec{Dir: c.Rootfs, Volumes: c.Volumes}
	if err := spec.Check(); err != nil {
		return c, invalid(err)
	}
	if err := checkExposures(c.Root, c.Rootfs, c.Volumes); err != nil {
		return c, err
	}
	return c, nil
}

// checkExposures is checkExposure for the pod's state root and, if that is
// another, the default one, whose pods are root's too.
func checkExposures(root, dir string, vols []Volume) error {
	if err := checkExposure(root, dir, vols); err != nil {
		return err
	}
	if root != DefaultRoot {
		return checkExposure(DefaultRoot, dir, vols)
	}
	return nil
}

// checkExposure refuses a volume source (or a directory root) that is the
// state root, is under it, or holds it, found by device and inode so that
// another path to the same directory (a symbolic link, a bind mount) is
// caught too: through it a pod could plant records that podsb, as root,
// later acts on. The state root need not exist yet: then its nearest
// existing parent counts.
func checkExposure(root, dir string, vols []Volume) error {
	type id struct{ dev, ino uint64 }
	idOf := func(path string) (id, bool) {
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			return id{}, false
		}
		return id{uint64(st.Dev), uint64(st.Ino)}, true
	}
	// The root and every directory above it.
	holds := map[id]bool{}
	rootID, rootExists := idOf(root)
	for p := filepath.Clean(root); ; p = filepath.Dir(p) {
		if i, ok := idOf(p); ok {
			holds[i] = true
		}
		if p == "/" {
			break
		}
	}
	check := func(what, src string) error {
		real, err := filepath.EvalSymlinks(src)
		if err != nil || !filepath.IsAbs(real) {
			// Spec.Check reports it. (The walk up below would never
			// reach "/" from a relative path: "" went round "." for
			// ever, and an image volume, which has no source, hung
			// its container's start.)
			return nil
		}
		if i, ok := idOf(real); ok && holds[i] {
			return invalidf("%s %s holds the state root %s: a pod could plant records in it", what, src, root)
		}
		if !rootExists {
			return nil
		}
		for p := real; p != "/"; p = filepath.Dir(p) {
			if i, ok := idOf(p); ok && i == rootID {
				return invalidf("%s %s is inside the state root %s: a pod could plant records in it", what, src, root)
			}
		}
		return nil
	}
	if dir != "" {
		if err := check("rootfs", dir); err != nil {
			return err
		}
	}
	for _, v := range vols {
		if v.Image != nil {
			continue // the image store's layers, read-only
		}
		if err := check("volume source", v.Source); err != nil {
			return err
		}
	}
	return nil
}
