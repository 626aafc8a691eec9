package rootfs

import (
	"errors"
	"io/fs"
	"path"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/setup"
)

// fakeHost is a Host made of an fstest.MapFS (paths without the leading
// slash) and a set of writable directories.
type fakeHost struct {
	fs       fstest.MapFS
	writable map[string]bool
}

func rel(p string) string { return strings.TrimPrefix(path.Clean(p), "/") }

func (h fakeHost) Lstat(p string) (fs.FileInfo, error) { return h.fs.Lstat(rel(p)) }
func (h fakeHost) Stat(p string) (fs.FileInfo, error)  { return fs.Stat(h.fs, rel(p)) }
func (h fakeHost) Readlink(p string) (string, error)   { return h.fs.ReadLink(rel(p)) }
func (h fakeHost) ReadFile(p string) ([]byte, error)   { return fs.ReadFile(h.fs, rel(p)) }
func (h fakeHost) Writable(p string) bool              { return h.writable[p] }

func dir() *fstest.MapFile          { return &fstest.MapFile{Mode: fs.ModeDir | 0o755} }
func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s), Mode: 0o644} }
func link(to string) *fstest.MapFile {
	return &fstest.MapFile{Data: []byte(to), Mode: fs.ModeSymlink | 0o777}
}

// merged is a host with a merged /usr, as Debian's.
func merged() fakeHost {
	return fakeHost{fs: fstest.MapFS{
		"usr":                      dir(),
		"usr/bin":                  dir(),
		"usr/lib":                  dir(),
		"bin":                      link("usr/bin"),
		"lib":                      link("usr/lib"),
		"sbin":                     dir(),
		"etc/passwd":               file("root:x:0:0::/root:/bin/sh\n"),
		"etc/group":                file("root:x:0:\n"),
		"etc/shadow":               file("root:secret:::::::\n"),
		"proc/keys":                file(""),
		"proc/acpi":                dir(),
		"sys/firmware":             dir(),
		"proc/sys":                 dir(),
		"srv/data":                 dir(),
		"srv/conf.txt":             file("x"),
		"srv/root/bin":             dir(),
		"srv/root/etc":             dir(),
		"srv/root/etc/hosts":       file("127.0.0.1 localhost\n"),
		"srv/root/etc/resolv.conf": link("../run/resolv.conf"),
		"srv/root/evil":            link("/srv/outside"),
		"srv/outside":              dir(),
	}}
}

// find returns the operations with code c whose first string is s0 (any
// when empty).
func find(ops []setup.Op, c setup.Code, s0 string) []setup.Op {
	var out []setup.Op
	for _, op := range ops {
		if op.Code == c && (s0 == "" || (len(op.Str) > 0 && op.Str[0] == s0)) {
			out = append(out, op)
		}
	}
	return out
}

// mountsAt returns the Mount operations whose target is t.
func mountsAt(ops []setup.Op, t string) []setup.Op {
	var out []setup.Op
	for _, op := range ops {
		if op.Code == setup.Mount && op.Str[1] == t {
			out = append(out, op)
		}
	}
	return out
}

func TestPlanDefaultRoot(t *testing.T) {
	s := &Spec{Target: "/t", Mask: true, Etc: map[string]string{"hostname": "pod\n", "hosts": "h\n", "resolv.conf": "r\n"}}
	ops, err := plan(merged(), s)
	if err != nil {
		t.Fatal(err)
	}
	if first := ops[0]; first.Code != setup.Mount || first.Num != unix.MS_REC|unix.MS_SLAVE || first.Str[1] != "/" {
		t.Errorf("first op %+v: want the rslave of /", first)
	}
	if last := ops[len(ops)-1]; last.Code != setup.Pivot || last.Str[0] != "/t" {
		t.Errorf("last op %+v: want pivot to /t", last)
	}
	if m := mountsAt(ops, "/t"); len(m) != 1 || m[0].Str[2] != "tmpfs" {
		t.Errorf("root mounts %+v: want one tmpfs", m)
	}
	// Real directories are bound read-only; symlinks are recreated; what
	// the host lacks is left out.
	if m := mountsAt(ops, "/t/usr"); len(m) != 1 || m[0].Str[0] != "/usr" || m[0].Num&unix.MS_BIND == 0 {
		t.Errorf("/usr mounts %+v: want a bind of the host's /usr", m)
	}
	if ro := find(ops, setup.RemountRO, "/t/usr"); len(ro) != 1 || ro[0].Num != setup.Recursive {
		t.Errorf("/usr read-only ops %+v: want one recursive", ro)
	}
	if l := find(ops, setup.Symlink, "usr/bin"); len(l) != 1 || l[0].Str[1] != "/t/bin" {
		t.Errorf("/bin symlink ops %+v", l)
	}
	if m := mountsAt(ops, "/t/lib32"); len(m) != 0 {
		t.Errorf("/lib32 is not on the host, but %+v", m)
	}
	// /etc: the host's passwd and group bound read-only on mount points,
	// never shadow, nsswitch.conf skipped (the host lacks it); the pod's
	// own files written.
	for _, f := range []string{"passwd", "group"} {
		dst := "/t/etc/" + f
		if tc := find(ops, setup.Touch, dst); len(tc) != 1 {
			t.Errorf("%s touch ops %+v", dst, tc)
		}
		if m := mountsAt(ops, dst); len(m) != 1 || m[0].Str[0] != "/etc/"+f || m[0].Num&unix.MS_BIND == 0 {
			t.Errorf("%s mounts %+v: want a bind of the host's", dst, m)
		}
		if ro := find(ops, setup.RemountRO, dst); len(ro) != 1 {
			t.Errorf("%s read-only ops %+v", dst, ro)
		}
	}
	for _, f := range []string{"shadow", "nsswitch.conf"} {
		if m := mountsAt(ops, "/t/etc/"+f); len(m) != 0 || len(find(ops, setup.Write, "/t/etc/"+f)) != 0 {
			t.Errorf("%s in the pod: %+v", f, m)
		}
	}
	writes := map[string]string{}
	for _, op := range find(ops, setup.Write, "") {
		writes[op.Str[0]] = op.Str[1]
	}
	if len(writes) != 3 || writes["/t/etc/hostname"] != "pod\n" || writes["/t/etc/resolv.conf"] != "r\n" {
		t.Errorf("etc files: %q", writes)
	}
	// Masking: a file under /dev/null, a directory under an empty tmpfs,
	// paths the host lacks skipped, read-only paths bound onto themselves.
	if m := mountsAt(ops, "/t/proc/keys"); len(m) != 1 || m[0].Str[0] != "/dev/null" {
		t.Errorf("/proc/keys mounts %+v", m)
	}
	if m := mountsAt(ops, "/t/proc/acpi"); len(m) != 1 || m[0].Str[2] != "tmpfs" || m[0].Num&unix.MS_RDONLY == 0 {
		t.Errorf("/proc/acpi mounts %+v", m)
	}
	// Further masked directories share that tmpfs: a bind of it.
	if m := mountsAt(ops, "/t/sys/firmware"); len(m) != 1 || m[0].Str[0] != "/t/proc/acpi" || m[0].Num != unix.MS_BIND {
		t.Errorf("/sys/firmware mounts %+v", m)
	}
	if m := mountsAt(ops, "/t/proc/kcore"); len(m) != 0 {
		t.Errorf("/proc/kcore is not on the host, but %+v", m)
	}
	if ro := find(ops, setup.RemountRO, "/t/proc/sys"); len(ro) != 1 {
		t.Errorf("/proc/sys read-only ops %+v", ro)
	}
	// The pseudo file systems.
	for target, fstype := range map[string]string{"/t/proc": "proc", "/t/sys": "sysfs", "/t/dev": "tmpfs", "/t/dev/pts": "devpts"} {
		if m := mountsAt(ops, target); len(m) != 1 || m[0].Str[2] != fstype {
			t.Errorf("%s mounts %+v: want %s", target, m, fstype)
		}
	}
	if m := mountsAt(ops, "/t/sys"); m[0].Num&unix.MS_RDONLY == 0 {
		t.Error("/sys is not read-only")
	}
	// /tmp: a directory of the root's tmpfs, 1777, bound onto itself (a
	// mount of its own, without a superblock of its own).
	if mk := find(ops, setup.Mkdir, "/t/tmp"); len(mk) != 1 || mk[0].Num != 0o1777 {
		t.Errorf("/tmp mkdir ops %+v: want one, 01777", mk)
	}
	if m := mountsAt(ops, "/t/tmp"); len(m) != 1 || m[0].Str[0] != "/t/tmp" || m[0].Num != unix.MS_BIND {
		t.Errorf("/tmp mounts %+v: want a bind of itself", m)
	}
}

// EtcCopies (a root in a user namespace of its own): copies of the host's
// passwd and group, never shadow, and no bind of them.
func TestPlanEtcCopies(t *testing.T) {
	ops, err := plan(merged(), &Spec{Target: "/t", EtcCopies: true, Etc: map[string]string{"hostname": "pod\n"}})
	if err != nil {
		t.Fatal(err)
	}
	writes := map[string]string{}
	for _, op := range find(ops, setup.Write, "") {
		writes[op.Str[0]] = op.Str[1]
	}
	if writes["/t/etc/passwd"] != "root:x:0:0::/root:/bin/sh\n" || writes["/t/etc/group"] != "root:x:0:\n" {
		t.Errorf("etc copies: %q", writes)
	}
	if _, ok := writes["/t/etc/shadow"]; ok {
		t.Error("shadow copied into the pod")
	}
	for _, f := range []string{"passwd", "group"} {
		if m := mountsAt(ops, "/t/etc/"+f); len(m) != 0 {
			t.Errorf("/etc/%s mounts %+v: want none", f, m)
		}
	}
}

// A host /etc file that is not a regular file is refused, not bound.
func TestPlanEtcNotRegular(t *testing.T) {
	h := merged()
	h.fs["etc/group"] = dir()
	if _, err := plan(h, &Spec{Target: "/t"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("plan with a directory /etc/group: %v, want ErrInvalid", err)
	}
}

// A read-only default root keeps a writable /tmp: its bind is made before
// the root is made read-only, which the bind does not follow.
func TestPlanReadOnlyDefaultRootTmp(t *testing.T) {
	ops, err := plan(merged(), &Spec{Target: "/t", ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	bind := slices.IndexFunc(ops, func(op setup.Op) bool { return op.Code == setup.Mount && op.Str[1] == "/t/tmp" })
	ro := slices.IndexFunc(ops, func(op setup.Op) bool { return op.Code == setup.RemountRO && op.Str[0] == "/t" })
	if bind < 0 || ro < 0 || bind > ro || ops[ro].Num != 0 {
		t.Errorf("/tmp bind at op %d, read-only root at op %d (%+v)", bind, ro, ops)
	}
	if ro := find(ops, setup.RemountRO, "/t/tmp"); len(ro) != 0 {
		t.Errorf("/tmp made read-only: %+v", ro)
	}
}

func TestPlanUnmasked(t *testing.T) {
	ops, err := plan(merged(), &Spec{Target: "/t"})
	if err != nil {
		t.Fatal(err)
	}
	if m := mountsAt(ops, "/t/proc/keys"); len(m) != 0 {
		t.Errorf("unmasked plan masks /proc/keys: %+v", m)
	}
}

func TestPlanDeviceNodes(t *testing.T) {
	for _, noDev := range []bool{false, true} {
		ops, err := plan(merged(), &Spec{Target: "/t", NoDev: noDev})
		if err != nil {
			t.Fatal(err)
		}
		dev := mountsAt(ops, "/t/dev")[0]
		if got := dev.Num&unix.MS_NODEV != 0; got != noDev {
			t.Errorf("NoDev %v: /dev nodev %v", noDev, got)
		}
		binds, nodes := len(mountsAt(ops, "/t/dev/null")), len(find(ops, setup.Mknod, "/t/dev/null"))
		if noDev && (binds != 1 || nodes != 0) || !noDev && (binds != 0 || nodes != 1) {
			t.Errorf("NoDev %v: /dev/null: %d binds, %d mknods", noDev, binds, nodes)
		}
	}
}

func TestPlanDirectoryRoot(t *testing.T) {
	h := merged()
	h.writable = map[string]bool{"/srv/root/etc": true}
	s := &Spec{
		Dir: "/srv/root", Target: "/t", EtcDir: "/state/etc", ReadOnly: true, NoDev: true,
		Volumes: []Volume{
			{Source: "/srv/data", Destination: "/evil/mnt"},
			{Source: "/srv/conf.txt", Destination: "/etc/app/conf.txt", ReadOnly: true},
		},
	}
	ops, err := plan(h, s)
	if err != nil {
		t.Fatal(err)
	}
	if m := mountsAt(ops, "/t"); len(m) != 1 || m[0].Str[0] != "/srv/root" || m[0].Num != unix.MS_BIND|unix.MS_REC {
		t.Errorf("root mounts %+v: want a recursive bind of /srv/root", m)
	}
	if nd := find(ops, setup.NoDev, "/t"); len(nd) != 1 {
		t.Errorf("root nodev ops %+v", nd)
	}
	// A directory root's /tmp is a tmpfs: nothing is written into the
	// directory.
	if m := mountsAt(ops, "/t/tmp"); len(m) != 1 || m[0].Str[2] != "tmpfs" {
		t.Errorf("/tmp mounts %+v: want a tmpfs", m)
	}
	// hosts is a regular file: bound read-only from EtcDir. resolv.conf is
	// a symlink: left alone. hostname is missing in a writable /etc: made.
	if m := mountsAt(ops, "/t/etc/hosts"); len(m) != 1 || m[0].Str[0] != "/state/etc/hosts" {
		t.Errorf("/etc/hosts mounts %+v", m)
	}
	if m := mountsAt(ops, "/t/etc/resolv.conf"); len(m) != 0 {
		t.Errorf("a symlinked resolv.conf got %+v", m)
	}
	if tc := find(ops, setup.Touch, "/t/etc/hostname"); len(tc) != 1 {
		t.Errorf("/etc/hostname touch ops %+v", tc)
	}
	// A symlink in the root cannot send a volume outside: /evil -> /srv/outside
	// resolves inside the root.
	if m := mountsAt(ops, "/t/srv/outside/mnt"); len(m) != 1 || m[0].Str[0] != "/srv/data" {
		t.Errorf("volume through a symlink: %+v (ops %v)", m, ops)
	}
	for _, op := range ops {
		if op.Code == setup.Mount && len(op.Str) > 1 && !strings.HasPrefix(op.Str[1], "/t") && op.Str[1] != "/" {
			t.Errorf("mount outside the target: %+v", op)
		}
	}
	// A file volume gets its parent directories and a mount point; ro.
	if tc := find(ops, setup.Touch, "/t/etc/app/conf.txt"); len(tc) != 1 {
		t.Errorf("file volume touch ops %+v", tc)
	}
	if ro := find(ops, setup.RemountRO, "/t/etc/app/conf.txt"); len(ro) != 1 {
		t.Errorf("read-only volume ops %+v", ro)
	}
	// The read-only root comes after the volumes, right before the pivot.
	i := slices.IndexFunc(ops, func(op setup.Op) bool { return op.Code == setup.RemountRO && op.Str[0] == "/t" && op.Num == 0 })
	if i != len(ops)-2 {
		t.Errorf("read-only root at op %d of %d", i, len(ops))
	}
}

func TestPlanErrors(t *testing.T) {
	if _, err := plan(merged(), &Spec{Target: "/t", Volumes: []Volume{{Source: "/nonexistent", Destination: "/x"}}}); err == nil {
		t.Error("volume with a missing source planned")
	}
}

// TestPlanVolumeIntoKernelDirs checks that a symlink in a directory root
// cannot send a volume into the pod's /proc, /sys or /dev (issue 11), nor
// over the root itself.
func TestPlanVolumeIntoKernelDirs(t *testing.T) {
	for _, target := range []string{"/proc", "/sys/kernel", "dev", "../../dev", "/"} {
		h := merged()
		h.fs["srv/root/sneaky"] = link(target)
		dst := "/sneaky/x"
		if target == "/" {
			dst = "/sneaky"
		}
		_, err := plan(h, &Spec{Dir: "/srv/root", Target: "/t", Volumes: []Volume{{Source: "/srv/data", Destination: dst}}})
		if err == nil || !strings.Contains(err.Error(), "cannot mount") {
			t.Errorf("sneaky -> %s: %v", target, err)
		}
	}
}

// TestPlanMaskLists checks a spec's own masked and read-only paths: they
// replace the default lists; a path in the root resolves inside it (a
// symbolic link never leaves it); /tmp is the plan's own; a missing path
// is skipped; a relative one, or one under /dev, refused.
func TestPlanMaskLists(t *testing.T) {
	h := merged()
	h.fs["srv/root/bin/ls"] = file("elf")
	h.fs["srv/root/bin/evil"] = link("/srv/conf.txt")
	h.fs["srv/root/bin/up"] = link("../../../srv/conf.txt")
	h.fs["srv/root/srv"] = dir()
	h.fs["srv/root/srv/conf.txt"] = file("inside")
	s := &Spec{Target: "/t", Dir: "/srv/root", Mask: true,
		MaskPaths: []string{"/bin/ls", "/bin/evil", "/bin/up", "/nonexistent", "/proc/acpi"}, ReadOnlyPaths: []string{"/tmp", "/etc"}}
	ops, err := plan(h, s)
	if err != nil {
		t.Fatal(err)
	}
	if m := mountsAt(ops, "/t/bin/ls"); len(m) != 1 || m[0].Str[0] != "/dev/null" {
		t.Errorf("/bin/ls mounts %+v", m)
	}
	if m := mountsAt(ops, "/t/proc/acpi"); len(m) != 1 || m[0].Str[2] != "tmpfs" {
		t.Errorf("/proc/acpi mounts %+v", m)
	}
	// Both links resolve inside the root, to its /srv/conf.txt.
	if m := mountsAt(ops, "/t/srv/conf.txt"); len(m) != 2 {
		t.Errorf("links resolved in the root: /t/srv/conf.txt mounts %+v", m)
	}
	if m := mountsAt(ops, "/t/proc/keys"); len(m) != 0 {
		t.Errorf("the spec's list replaces the default, but /proc/keys mounts %+v", m)
	}
	for _, o := range ops {
		if o.Code == setup.Mount && o.Str[1] != "/" && (!strings.HasPrefix(o.Str[1], "/t") || strings.Contains(o.Str[1], "nonexistent")) {
			t.Errorf("mount outside the root or of a missing path: %+v", o)
		}
	}
	for _, p := range []string{"/t/tmp", "/t/etc"} {
		if ro := find(ops, setup.RemountRO, p); len(ro) != 1 {
			t.Errorf("%s read-only ops %+v", p, ro)
		}
	}
	if ro := find(ops, setup.RemountRO, "/t/proc/sys"); len(ro) != 0 {
		t.Errorf("the spec's read-only list replaces the default, but /proc/sys: %+v", ro)
	}
	for _, bad := range []string{"bin/ls", "/", "/dev/shm"} {
		s := &Spec{Target: "/t", Dir: "/srv/root", Mask: true, MaskPaths: []string{bad}}
		if _, err := plan(h, s); !errors.Is(err, ErrInvalid) {
			t.Errorf("masked path %q: %v", bad, err)
		}
	}
}

// A default root made on the host (a container of a pod with a user
// namespace): its tmpfs is attached, and a host directory that Shared
// brings (an idmapped clone) is attached in place of a read-only bind.
func TestPlanDefaultRootShared(t *testing.T) {
	s := &Spec{Target: "/t", Shared: map[string]int{".": 8, "sbin": 9}}
	ops, err := plan(merged(), s)
	if err != nil {
		t.Fatal(err)
	}
	var tmpfs, moved, bound bool
	for _, o := range ops {
		switch {
		case o.Code == setup.Mount && len(o.Str) > 3 && o.Str[1] == "/t" && o.Str[2] == "tmpfs":
			t.Errorf("a tmpfs mounted at the root: %v", o)
		case o.Code == setup.MoveMount && o.Num == 8 && o.Str[0] == "/t":
			tmpfs = true
		case o.Code == setup.MoveMount && o.Num == 9 && o.Str[0] == "/t/sbin":
			moved = true
		case o.Code == setup.Mount && o.Str[0] == "/sbin":
			bound = true
		}
	}
	if !tmpfs || !moved || bound {
		t.Errorf("root attached %v, /sbin attached %v, bound %v: %v", tmpfs, moved, bound, ops)
	}
}

// ProcLater: the plan mounts /proc but masks nothing below it (it masks
// the rest); ProcPlan mounts /proc again and masks it, in the root.
func TestPlanProcLater(t *testing.T) {
	s := &Spec{Target: "/t", Mask: true, ProcLater: true, MaskPaths: []string{"/proc/keys", "/sys/firmware"}, ReadOnlyPaths: []string{"/proc/sys"}}
	h := merged()
	h.fs["sys/firmware"] = dir()
	ops, err := plan(h, s)
	if err != nil {
		t.Fatal(err)
	}
	var proc, sys bool
	for _, o := range ops {
		switch {
		case o.Code == setup.Mount && o.Str[2] == "proc":
			proc = true
		case o.Code == setup.Mount && o.Str[1] == "/t/sys/firmware":
			sys = true
		case len(o.Str) > 1 && strings.HasPrefix(o.Str[1], "/t/proc/"), o.Code == setup.RemountRO && strings.HasPrefix(o.Str[0], "/t/proc/"):
			t.Errorf("a /proc path masked by the plan: %v", o)
		}
	}
	if !proc || !sys {
		t.Errorf("proc mounted %v, /sys/firmware masked %v: %v", proc, sys, ops)
	}
}
