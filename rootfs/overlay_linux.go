package rootfs

import (
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// MountOverlay makes an overlayfs of layers (lowest first) under upper,
// with work as its work directory, and returns it as a detached mount: an
// fd that move_mount(2) attaches anywhere, in any mount namespace. Nothing
// is mounted in the caller's tree, so nothing is left there if the caller
// dies; the overlay goes when the fd and every mount of it are gone.
//
// It uses the new mount API: each layer is its own fsconfig(2) call
// ("lowerdir+", Linux 6.8), so the number of layers is not bounded by the
// page that mount(2)'s option string must fit in. upper and work must be
// empty directories of one file system.
//
// Needs CAP_SYS_ADMIN.
func MountOverlay(layers []string, upper, work string) (*os.File, error) {
	fs, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("fsopen overlay", err)
	}
	defer unix.Close(fs)
	set := func(key, value string) error {
		if err := unix.FsconfigSetString(fs, key, value); err != nil {
			return &overlayError{op: "fsconfig " + key + "=" + value, err: err, log: fsLog(fs)}
		}
		return nil
	}
	// The first lowerdir+ is the top one.
	for i := len(layers) - 1; i >= 0; i-- {
		if err := set("lowerdir+", layers[i]); err != nil {
			return nil, err
		}
	}
	if err := set("upperdir", upper); err != nil {
		return nil, err
	}
	if err := set("workdir", work); err != nil {
		return nil, err
	}
	// Not the host's module default: the inodes index records origins in
	// the layers' and upper's xattrs and ties an upper to its lowers.
	if err := set("index", "off"); err != nil {
		return nil, err
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return nil, &overlayError{op: "create overlay", err: err, log: fsLog(fs)}
	}
	m, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return nil, &overlayError{op: "fsmount overlay", err: err, log: fsLog(fs)}
	}
	return os.NewFile(uintptr(m), "overlay:"+upper), nil
}

// overlayError is a failed step of MountOverlay, with what the kernel
// logged about it in the file system context.
type overlayError struct {
	op  string
	err error
	log string
}

func (e *overlayError) Error() string {
	s := e.op + ": " + e.err.Error()
	if e.log != "" {
		s += " (" + e.log + ")"
	}
	return s
}

func (e *overlayError) Unwrap() error { return e.err }

// fsLog reads the messages the kernel left in the file system context fs
// ("e overlayfs: ..." lines), joined with "; ".
func fsLog(fs int) string {
	var msgs []string
	buf := make([]byte, 1024)
	for range 16 {
		n, err := unix.Read(fs, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	return strings.Join(msgs, "; ")
}
