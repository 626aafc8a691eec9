package sandbox

import (
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"podsb/internal/setup"
	"podsb/rootfs"
)

// templateFile is ROOT/.create: Go's plan of a default pod (default root,
// loopback only, no limits, default privileges, hostname = name), made for
// the name templateName, for the C part of podsb create
// (nsenter/fastexec/fastexec.c), which runs before the Go runtime starts.
// That part makes such a pod itself by putting the real name where
// templateName is, but only while the record still holds: the same boot,
// the same podsb binary, and every host file and path the plan read
// unchanged. Anything else, and it leaves the create to Go, which writes
// the record again.
//
// Little-endian:
//
//	"podsbC1\n" | u32 n, boot ID | u32 n, OCI version | u32 n, state root |
//	fingerprint of /proc/self/exe |
//	u32 inputs | inputs × (u32 kind | u32 n, path | fingerprint) |
//	u32 n, templateName | u32 n, the init's program |
//	u32 ops | u32 n, the program of a default exec without its Exec (join)
//
// A fingerprint is 9 u64: exists, file type, then by kind (fpType: none;
// fpIdentity, with lstat: device, inode; fpContent, with stat: device,
// inode, size, mtime s and ns, ctime s and ns).
const templateFile = ".create"

// templateName stands for the pod's name in the template; it appears in no
// host file.
const templateName = "podsb-template-7f3a9c1e0b2d4e8f"

// Fingerprint kinds.
const (
	fpType     = 1
	fpIdentity = 2
	fpContent  = 3
)

// PrepareFastCreate writes ROOT/.create, the record the podsb binary's C
// create reads (see templateFile), if c (with its defaults) is the pod it
// describes: default root, no volumes, no network, no limits, default
// privileges, hostname = name. The podsb CLI calls it after a create in
// Go; the record names the calling program, so only the program that
// wrote it uses it.
func PrepareFastCreate(c Config) error {
	c, err := c.withDefaults()
	if err != nil || !templateFor(c) {
		return err
	}
	return writeTemplate(c.Root)
}

// templateFor tells whether c is the default pod the template describes.
func templateFor(c Config) bool {
	sec := c.Security
	return c.Rootfs == "" && !c.ReadOnly && len(c.Volumes) == 0 && c.Network == nil && c.Limits.none() &&
		len(sec.CapAdd) == 0 && len(sec.CapDrop) == 0 && !sec.Privileged && !sec.Unconfined &&
		c.Hostname == c.Name
}

// writeTemplate writes ROOT/.create for c's state root, atomically.
func writeTemplate(root string) error {
	exe, err := fingerprint("/proc/self/exe", fpContent)
	if err != nil {
		return err
	}
	// The inputs are read before the plan: a change in between makes the
	// record stale, never wrong.
	type input struct {
		kind uint32
		path string
		fp   []byte
	}
	var inputs []input
	add := func(kind uint32, paths ...string) error {
		for _, p := range paths {
			fp, err := fingerprint(p, kind)
			if err != nil {
				return err
			}
			inputs = append(inputs, input{kind, p, fp})
		}
		return nil
	}
	in := rootfs.DefaultRootInputs()
	if err := add(fpIdentity, in.Layout...); err != nil {
		return err
	}
	if err := add(fpContent, append(in.Copied, "/etc/resolv.conf")...); err != nil {
		return err
	}
	if err := add(fpIdentity, "/etc/resolv.conf"); err != nil {
		return err
	}
	if err := add(fpType, in.Probed...); err != nil {
		return err
	}
	spec := rootfs.Spec{
		Target: filepath.Join(root, templateName, "rootfs"),
		Etc:    etcFiles(templateName, netip.Addr{}),
		Mask:   true,
		NoDev:  true,
	}
	ops, err := initProgram(&spec, templateName, Security{}, true)
	if err != nil {
		return err
	}
	exec, err := defaultExec()
	if err != nil {
		return err
	}
	for _, op := range ops {
		for _, s := range op.Str {
			if strings.Contains(s, templateName) && !strings.Contains(s, filepath.Join(root, templateName)+"/") &&
				op.Code != setup.Hostname && op.Code != setup.Write {
				// Only paths under the pod's directory, the hostname and
				// the /etc files name the pod.
				return os.ErrInvalid
			}
		}
	}
	le := binary.LittleEndian
	str := func(b []byte, s string) []byte { return append(le.AppendUint32(b, uint32(len(s))), s...) }
	b := append([]byte{}, "podsbC1\n"...)
	b = str(b, bootID())
	b = str(b, specs.Version)
	b = str(b, root)
	b = append(b, exe...)
	b = le.AppendUint32(b, uint32(len(inputs)))
	for _, in := range inputs {
		b = le.AppendUint32(b, in.kind)
		b = str(b, in.path)
		b = append(b, in.fp...)
	}
	b = str(b, templateName)
	b = str(b, string(setup.Encode(ops)))
	b = le.AppendUint32(b, exec.ops)
	b = str(b, exec.program)
	return writeFileAtomic(filepath.Join(root, templateFile), b)
}

// fingerprint is what the C part compares (see templateFile).
func fingerprint(path string, kind uint32) ([]byte, error) {
	var st unix.Stat_t
	var err error
	if kind == fpIdentity {
		err = unix.Lstat(path, &st)
	} else {
		err = unix.Stat(path, &st)
	}
	v := make([]uint64, 9)
	switch {
	case err == nil:
		v[0], v[1] = 1, uint64(st.Mode&unix.S_IFMT)
		if kind >= fpIdentity {
			v[2], v[3] = st.Dev, st.Ino
		}
		if kind == fpContent {
			v[4] = uint64(st.Size)
			v[5], v[6] = uint64(st.Mtim.Sec), uint64(st.Mtim.Nsec)
			v[7], v[8] = uint64(st.Ctim.Sec), uint64(st.Ctim.Nsec)
		}
	case os.IsNotExist(err):
	default:
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	b := make([]byte, 0, 72)
	for _, x := range v {
		b = binary.LittleEndian.AppendUint64(b, x)
	}
	return b, nil
}
