package rootfs

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// mountError is a failed mount(2), printed with its flags by name so that a
// failure says what was attempted; it unwraps to the errno.
type mountError struct {
	op     string
	source string
	target string
	fstype string
	flags  uintptr
	data   string
	err    error
}

func (e *mountError) Error() string {
	var b strings.Builder
	b.WriteString(e.op)
	if e.source != "" {
		b.WriteString(" " + e.source)
	}
	b.WriteString(" on " + e.target)
	if e.fstype != "" {
		b.WriteString(" type " + e.fstype)
	}
	if f := flagNames(e.flags); f != "" {
		b.WriteString(" (" + f + ")")
	}
	if e.data != "" {
		b.WriteString(" [" + e.data + "]")
	}
	return b.String() + ": " + e.err.Error()
}

func (e *mountError) Unwrap() error { return e.err }

var mountFlagNames = []struct {
	flag uintptr
	name string
}{
	{unix.MS_RDONLY, "ro"},
	{unix.MS_NOSUID, "nosuid"},
	{unix.MS_NODEV, "nodev"},
	{unix.MS_NOEXEC, "noexec"},
	{unix.MS_REMOUNT, "remount"},
	{unix.MS_BIND, "bind"},
	{unix.MS_MOVE, "move"},
	{unix.MS_REC, "rec"},
	{unix.MS_PRIVATE, "private"},
	{unix.MS_SLAVE, "slave"},
	{unix.MS_SHARED, "shared"},
}

func flagNames(flags uintptr) string {
	var names []string
	for _, f := range mountFlagNames {
		if flags&f.flag != 0 {
			names = append(names, f.name)
		}
	}
	return strings.Join(names, ",")
}

func mount(source, target, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return &mountError{op: "mount", source: source, target: target, fstype: fstype, flags: flags, data: data, err: err}
	}
	return nil
}

// bindReadOnly binds source on target and makes the new mount read-only. A
// bind mount takes the source's flags; read-only needs a second, remounting
// call that keeps nosuid/nodev/noexec as they were.
func bindReadOnly(source, target string, extra uintptr) error {
	if err := mount(source, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	return remountReadOnly(target, extra)
}

func remountReadOnly(target string, extra uintptr) error {
	var st unix.Statfs_t
	if err := unix.Statfs(target, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", target, err)
	}
	keep := uintptr(st.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	return mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|keep|extra, "")
}
