package rootfs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/errclass"
)

// Spec describes a pod's root filesystem.
type Spec struct {
	// Dir is the host directory used as the root. Empty means the default
	// root: a tmpfs with read-only binds of the host's system directories.
	Dir string `json:"dir,omitempty"`
	// Target is an empty directory where the root is assembled before
	// pivot_root. It must exist.
	Target string `json:"target"`
	// ReadOnly makes the root read-only (/tmp, /dev/shm and volumes keep their
	// own mode).
	ReadOnly bool `json:"readOnly,omitempty"`
	// Etc holds the contents of the pod's hostname, hosts and resolv.conf
	// (EtcFiles).
	Etc map[string]string `json:"etc,omitempty"`
	// EtcDir is a host directory holding the same files, for a directory
	// root: they are bound over its /etc entries. The default root gets
	// copies in its private /etc instead.
	EtcDir string `json:"etcDir,omitempty"`
	// EtcCopies gives the default root's /etc copies of the host's passwd,
	// group and nsswitch.conf, in place of read-only binds of the host's
	// files: for a root in a user namespace of its own, which would show
	// the host's files as owned by nobody. A copy costs each pod a page of
	// memory; a bind, a mount.
	EtcCopies bool `json:"etcCopies,omitempty"`
	// Volumes are host paths bound into the root.
	Volumes []Volume `json:"volumes,omitempty"`
	// Mask hides the sensitive parts of /proc and /sys (MaskedPaths) and
	// makes others read-only (ReadOnlyPaths), as runc does by default.
	Mask bool `json:"mask,omitempty"`
	// MaskPaths and ReadOnlyPaths, when not nil, replace MaskedPaths and
	// ReadOnlyPaths for Mask: absolute paths in the root. One under /proc
	// or /sys is the kernel's; another is looked up in Dir, without
	// leaving it (a symbolic link resolves inside the root). A path that
	// does not exist is skipped.
	MaskPaths     []string `json:"maskPaths,omitempty"`
	ReadOnlyPaths []string `json:"readOnlyPaths,omitempty"`
	// NoDev lets device nodes work only where the plan puts them, in /dev:
	// the root (a directory root's bind), the volumes and /dev itself are
	// nodev, and /dev's nodes are bind mounts of the host's. Without it a
	// process with CAP_MKNOD could make and open any device of the host.
	NoDev bool `json:"noDev,omitempty"`
	// Shared are mounts taken from elsewhere (a pod's /dev/shm and
	// /dev/pts, for a container): destination relative to the root, such
	// as "dev/shm", to the number of the fd, in the process that executes
	// the plan, of a detached mount tree (open_tree OPEN_TREE_CLONE).
	// "." is the root itself (an image's overlay, from fsmount), in
	// place of a bind of Dir; Dir is then where the host reads the same
	// mount (its fd's path in /proc/self/fd). Without Dir, "." is the
	// default root's tmpfs (DefaultRoot), and the host's system
	// directories may come as read-only clones too, keyed "usr" and so
	// on, in place of binds.
	Shared map[string]int `json:"-"`
	// SharedFiles are the keys of Shared whose tree is a file (an image
	// volume's sub path): its mount point is a file.
	SharedFiles map[string]bool `json:"-"`

	// Attached says the root is mounted at Target already: the plan
	// neither mounts a tmpfs nor binds Dir there. With HostDirsAttached,
	// the default root's host system directories are also mounted in it
	// already, read-only. Staged are volumes' sources mounted elsewhere
	// already, by VolumeKey: the paths the plan binds them from. A pod
	// with a user namespace gets its root so (package doc).
	Attached, HostDirsAttached bool              `json:"-"`
	Staged                     map[string]string `json:"-"`
	// ProcLater leaves the masking of /proc's paths out of the plan.
	// ProcPlan gives the mount of another /proc over it, masked, to run
	// in the root after the plan's pivot_root by a process of another
	// PID namespace (a container with a PID namespace of its own in a
	// pod with a user namespace, whose namespace is made after the root).
	// The kernel lets a user namespace's root mount proc only where a
	// proc that nothing covers is mounted already: the plan's.
	ProcLater bool `json:"-"`
	// OnlyRoot says the pod's user namespace maps its IDs 0 and no
	// other (a rootless pod's): its devpts gets no tty group.
	OnlyRoot bool `json:"-"`
}

// Volume is a bind mount of a host path into the pod, or (Image set) a
// read-only mount of an image's layers.
type Volume struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	ReadOnly    bool   `json:"readOnly,omitempty"`
	// KernelFS allows a source on the host's proc or sysfs (the volume
	// option kernelfs). Without it such a source is refused: a pod's root
	// could write the host's sysctls through it.
	KernelFS bool `json:"kernelFS,omitempty"`
	// NonRecursive, with ReadOnly, makes only the volume's own mount
	// read-only: the mounts below the source keep their mode (the CRI's
	// readonly without recursive_read_only). Without it a read-only
	// volume is read-only all the way down.
	NonRecursive bool `json:"nonRecursive,omitempty"`
	// Propagation is how mounts travel between the source's mount on the
	// host and the volume (PropagationPrivate, PropagationSlave,
	// PropagationShared). Empty is the plan's default: the volume is a
	// slave of the host's mount if that is shared, as rslave.
	Propagation string `json:"propagation,omitempty"`
	// Image makes the volume an image volume: the image's layers,
	// read-only (OpenImageVolume opens them on the host; Spec.Shared
	// brings them); Source is unused.
	Image *ImageRoot `json:"image,omitempty"`
	// SubPath is the directory or file of an image volume's image that
	// the volume shows, relative to the image's root; all of it if empty.
	SubPath string `json:"subPath,omitempty"`

	// IDMap (the volume option idmap), in a pod with a user namespace of
	// its own, mounts the source idmapped with the pod's maps: its files
	// show their host owners inside, and the pod's root writes as the
	// host's (security.md). Without it the pod sees the host's IDs that
	// it does not map as nobody, and writes as its mapped IDs.
	IDMap bool `json:"idmap,omitempty"`
}

// The propagations of a volume (mount(8)'s names).
const (
	// PropagationPrivate: no mount travels either way.
	PropagationPrivate = "rprivate"
	// PropagationSlave: mounts made on the host below the source appear
	// in the volume; none travels back. The source's mount must be
	// shared or a slave.
	PropagationSlave = "rslave"
	// PropagationShared: mounts travel both ways; the volume joins the
	// peer group of the source's mount, which must be shared. The plan
	// cannot make it (the container's namespace is a slave of the
	// host's): the volume comes as a detached clone of the source's tree
	// in Spec.Shared under VolumeKey.
	PropagationShared = "rshared"
)

// VolumeKey is the key in Spec.Shared of a volume whose mount comes as a
// detached tree: its destination relative to the root.
func VolumeKey(v Volume) string {
	return strings.TrimPrefix(filepath.Clean(v.Destination), "/")
}

// kernelDirs are the pod's own proc, sysfs and /dev: no volume may be
// mounted at or under them.
var kernelDirs = []string{"/proc", "/sys", "/dev"}

// within reports whether path is dir or under it; both are clean.
func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// checkDestination refuses a volume over the pod's root, or at or under
// its /proc, /sys or /dev: the pod's own mounts there are what exec and
// the masking rely on.
func checkDestination(v Volume, dst string) error {
	if dst == "/" {
		return invalidf("volume %s: cannot mount over the pod's root", v)
	}
	for _, d := range kernelDirs {
		if within(dst, d) {
			return invalidf("volume %s: cannot mount at or under the pod's %s", v, d)
		}
	}
	return nil
}

// EtcFiles are the files of EtcDir bound into every pod's /etc.
var EtcFiles = []string{"hostname", "hosts", "resolv.conf"}

// hostSystemDirs are the host directories the default root exposes read-only.
// Merged-/usr symlinks (/bin -> usr/bin) are recreated as symlinks.
var hostSystemDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}

// MaskedPaths are hidden in every pod (unless privileged): files under
// /dev/null, directories under an empty read-only tmpfs. The list of runc's
// and Docker's default configuration.
var MaskedPaths = []string{
	"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
	"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
	"/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
}

// ReadOnlyPaths are read-only in every pod (unless privileged).
var ReadOnlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}

// hostEtcFiles are the host's /etc files the default root's /etc shows,
// read-only (or copies of them: Spec.EtcCopies). Nothing secret (shadow,
// gshadow, keys) is ever among them.
var hostEtcFiles = []string{"passwd", "group", "nsswitch.conf"}

// ErrInvalid marks a spec that cannot work: a missing or unusable root, a bad
// volume.
var ErrInvalid = errors.New("invalid root filesystem")

func invalidf(format string, args ...any) error {
	return errclass.New(ErrInvalid, format, args...)
}

// ParseVolume parses SRC:DST[:OPTS], OPTS comma-separated: ro or rw, and
// kernelfs. SRC and DST must be absolute.
func ParseVolume(s string) (Volume, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return Volume{}, invalidf("volume %q: want SRC:DST[:ro]", s)
	}
	v := Volume{Source: parts[0], Destination: parts[1]}
	if len(parts) == 3 {
		for _, o := range strings.Split(parts[2], ",") {
			switch o {
			case "ro":
				v.ReadOnly = true
			case "rw":
			case "kernelfs":
				v.KernelFS = true
			case "idmap":
				v.IDMap = true
			default:
				return Volume{}, invalidf("volume %q: option %q is not ro, rw, kernelfs or idmap", s, o)
			}
		}
	}
	if !filepath.IsAbs(v.Source) || !filepath.IsAbs(v.Destination) {
		return Volume{}, invalidf("volume %q: source and destination must be absolute paths", s)
	}
	v.Source = filepath.Clean(v.Source)
	v.Destination = filepath.Clean(v.Destination)
	if v.Destination == "/" {
		return Volume{}, invalidf("volume %q: cannot mount over the pod's root", s)
	}
	if err := checkDestination(v, v.Destination); err != nil {
		return Volume{}, err
	}
	return v, nil
}

// String formats v as ParseVolume reads it.
func (v Volume) String() string {
	src := v.Source
	if v.Image != nil {
		src = "image " + v.Image.ID
		if v.SubPath != "" {
			src += " " + v.SubPath
		}
	}
	var opts []string
	if v.ReadOnly {
		opts = append(opts, "ro")
	}
	if v.KernelFS {
		opts = append(opts, "kernelfs")
	}
	if v.IDMap {
		opts = append(opts, "idmap")
	}
	s := src + ":" + v.Destination
	if len(opts) > 0 {
		s += ":" + strings.Join(opts, ",")
	}
	return s
}

// Check validates the spec from the host, before any namespace exists, so
// that bad input fails fast with nothing made.
func (s *Spec) Check() error {
	if s.Dir != "" {
		if err := checkDir(s.Dir); err != nil {
			return err
		}
	}
	for _, v := range s.Volumes {
		if v.Image != nil {
			if err := checkImageVolume(v); err != nil {
				return err
			}
			continue
		}
		if !filepath.IsAbs(v.Source) || !filepath.IsAbs(v.Destination) {
			return invalidf("volume %s: source and destination must be absolute paths", v)
		}
		if err := checkDestination(v, filepath.Clean(v.Destination)); err != nil {
			return err
		}
		if _, err := os.Stat(v.Source); err != nil {
			return invalidf("volume source %s: %w", v.Source, errors.Unwrap(err))
		}
		if err := checkSource(v); err != nil {
			return err
		}
		if err := checkVolumeModes(v); err != nil {
			return err
		}
		if err := checkPropagation(v); err != nil {
			return err
		}
	}
	return nil
}

// checkImageVolume validates an image volume: read-only, a private
// propagation, a sub path within the image.
func checkImageVolume(v Volume) error {
	if !filepath.IsAbs(v.Destination) {
		return invalidf("volume %s: destination must be an absolute path", v)
	}
	if err := checkDestination(v, filepath.Clean(v.Destination)); err != nil {
		return err
	}
	if !v.ReadOnly {
		return invalidf("volume %s: an image volume is read-only", v)
	}
	if v.Propagation != "" && v.Propagation != PropagationPrivate {
		return invalidf("volume %s: an image volume's propagation is %s", v, PropagationPrivate)
	}
	if v.SubPath != "" && (filepath.IsAbs(v.SubPath) || !filepath.IsLocal(v.SubPath)) {
		return invalidf("volume %s: sub path %q is not a relative path inside the image", v, v.SubPath)
	}
	return v.Image.Check()
}

// checkVolumeModes refuses a propagation podsb does not know, and the
// combinations that cannot hold: a recursively read-only volume that
// receives mounts from the host would have writable mounts below it.
func checkVolumeModes(v Volume) error {
	switch v.Propagation {
	case "", PropagationPrivate, PropagationSlave, PropagationShared:
	default:
		return invalidf("volume %s: propagation %q is not %s, %s or %s", v, v.Propagation, PropagationPrivate, PropagationSlave, PropagationShared)
	}
	if v.NonRecursive && !v.ReadOnly {
		return invalidf("volume %s: non-recursive without read-only", v)
	}
	if v.ReadOnly && !v.NonRecursive && (v.Propagation == PropagationSlave || v.Propagation == PropagationShared) {
		return invalidf("volume %s: recursively read-only with propagation %s: mounts from the host below it would be writable", v, v.Propagation)
	}
	return nil
}

// checkSource refuses, unless v.KernelFS, a source on the host's proc or
// sysfs, by path (after symbolic links) or by file system type (a proc
// mounted elsewhere): through it, a pod's root could write the host's
// sysctls or reach its devices and kernel interfaces.
func checkSource(v Volume) error {
	if v.KernelFS {
		return nil
	}
	real, err := filepath.EvalSymlinks(v.Source)
	if err != nil {
		return invalidf("volume source %s: %w", v.Source, errors.Unwrap(err))
	}
	fs := ""
	for _, d := range []string{"/proc", "/sys"} {
		if within(real, d) {
			fs = d
		}
	}
	var st unix.Statfs_t
	if err := unix.Statfs(real, &st); err == nil {
		switch st.Type {
		case unix.PROC_SUPER_MAGIC:
			fs = "proc"
		case unix.SYSFS_MAGIC:
			fs = "sysfs"
		}
	}
	if fs != "" {
		return invalidf("volume source %s: the host's %s: add the volume option kernelfs to allow it", v.Source, strings.TrimPrefix(fs, "/"))
	}
	return nil
}

// checkDir accepts a directory that looks like a root filesystem: it has a
// place for programs (bin or usr/bin) and its mount points, if present, are
// directories.
func checkDir(dir string) error {
	if !filepath.IsAbs(dir) {
		return invalidf("rootfs %s: not an absolute path", dir)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return invalidf("rootfs %s: %w", dir, errors.Unwrap(err))
	}
	if !fi.IsDir() {
		return invalidf("rootfs %s: not a directory", dir)
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil && real == "/" {
		return invalidf("rootfs %s: the host's root cannot be a pod's root", dir)
	}
	if !isDir(filepath.Join(dir, "bin")) && !isDir(filepath.Join(dir, "usr/bin")) {
		return invalidf("rootfs %s: no bin or usr/bin directory: not a root filesystem", dir)
	}
	for _, m := range []string{"proc", "sys", "dev", "tmp", "etc"} {
		fi, err := os.Lstat(filepath.Join(dir, m))
		if err == nil && !fi.IsDir() {
			return invalidf("rootfs %s: /%s is not a directory", dir, m)
		}
	}
	return nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
