// Command gen writes setup.h, the C side of the contract between podsb's Go
// and its freestanding C (reaper/pause/pause.c and fastexec/fastexec.c):
// package setup's operation codes, records, fds and limits, the default
// state root and PATH of package sandbox, and the kernel's system call
// numbers, constants and structs as golang.org/x/sys/unix has them for
// linux/amd64. Run by go generate in internal/setup:
//
//	go run ./gen -o setup.h
//
// Records are the encoding/binary layouts of setup's structs, so their C
// structs are packed; kernel structs have their natural (amd64) layout.
// Every struct's size and every field's offset are checked in the header
// with _Static_assert, so a C compiler that lays one out otherwise fails.
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/setup"
	"github.com/podsb/podsb/sandbox"
)

func main() {
	out := flag.String("o", "setup.h", "the header to write")
	flag.Parse()
	b, err := render()
	if err == nil {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

// ops are setup's operation codes, by their C names.
var ops = []constant{
	{"OP_MOUNT", setup.Mount}, {"OP_MKDIR", setup.Mkdir}, {"OP_MKNOD", setup.Mknod},
	{"OP_SYMLINK", setup.Symlink}, {"OP_WRITE", setup.Write}, {"OP_TOUCH", setup.Touch},
	{"OP_REMOUNT_RO", setup.RemountRO}, {"OP_HOSTNAME", setup.Hostname},
	{"OP_LOOPBACK_UP", setup.LoopbackUp}, {"OP_PIVOT", setup.Pivot},
	{"OP_MOVE_MOUNT", setup.MoveMount}, {"OP_SYNC", setup.Sync}, {"OP_SPAWN", setup.Spawn},
	{"OP_SET_IDS", setup.SetIDs}, {"OP_CHDIR", setup.Chdir}, {"OP_PDEATHSIG", setup.Pdeathsig},
	{"OP_EXEC", setup.Exec}, {"OP_CAPS", setup.Caps}, {"OP_NO_NEW_PRIVS", setup.NoNewPrivs},
	{"OP_CAP_SET", setup.CapSet}, {"OP_SECCOMP", setup.Seccomp}, {"OP_NO_DEV", setup.NoDev},
	{"OP_OPEN_TREE", setup.OpenTree},
	{"OP_SET_NS", setup.SetNS},
}

// contract are setup's other constants, and sandbox's defaults.
var contract = []constant{
	{"OP_OPTIONAL", setup.Optional}, {"OP_RECURSIVE", setup.Recursive},
	{"REPORT_SYNCED", setup.Synced}, {"REPORT_SPAWNED", setup.Spawned}, {"REPORT_SIZE", setup.ReportSize},
	{"MAX_STRINGS", setup.MaxStrings}, {"MAX_PROGRAM", setup.MaxProgram},
	{"PROGRAM_FD", setup.ProgramFD}, {"STATUS_FD", setup.StatusFD}, {"GO_FD", setup.GoFD},
	{"PAUSE_FD", setup.PauseFD}, {"EXTRA_FD", setup.ExtraFD}, {"EXITS_FD", setup.ExitsFD}, {"EXIT_SIZE", setup.ExitSize},
	{"JOIN_FILE", setup.JoinFile}, {"JOIN_MAGIC", setup.JoinMagic},
	{"MAX_JOIN_NS", setup.MaxJoinNS}, {"MAX_JOIN", setup.MaxJoin}, {"JOIN_PROC_NS", setup.JoinProcNS},
	{"DEFAULT_ROOT", sandbox.DefaultRoot}, {"DEFAULT_PATH", sandbox.DefaultPath},
	{"USERNS_FD_ENV", sandbox.UserNSFDEnv + "="}, {"USERNS_WAIT_ENV", sandbox.UserNSWaitEnv + "="},
}

// kernel are the system calls and constants the C programs use.
var kernel = []constant{
	{"SYS_READ", unix.SYS_READ}, {"SYS_WRITE", unix.SYS_WRITE}, {"SYS_CLOSE", unix.SYS_CLOSE},
	{"SYS_FSTAT", unix.SYS_FSTAT}, {"SYS_MMAP", unix.SYS_MMAP}, {"SYS_MUNMAP", unix.SYS_MUNMAP},
	{"SYS_RT_SIGPROCMASK", unix.SYS_RT_SIGPROCMASK}, {"SYS_IOCTL", unix.SYS_IOCTL},
	{"SYS_GETPID", unix.SYS_GETPID}, {"SYS_SOCKET", unix.SYS_SOCKET}, {"SYS_FORK", unix.SYS_FORK}, {"SYS_CLONE", unix.SYS_CLONE},
	{"SYS_EXECVE", unix.SYS_EXECVE}, {"SYS_EXIT_GROUP", unix.SYS_EXIT_GROUP}, {"SYS_WAIT4", unix.SYS_WAIT4},
	{"SYS_KILL", unix.SYS_KILL}, {"SYS_FCNTL", unix.SYS_FCNTL}, {"SYS_CHDIR", unix.SYS_CHDIR},
	{"SYS_FCHDIR", unix.SYS_FCHDIR}, {"SYS_SYMLINK", unix.SYS_SYMLINK}, {"SYS_UMASK", unix.SYS_UMASK},
	{"SYS_GETEUID", unix.SYS_GETEUID}, {"SYS_SETUID", unix.SYS_SETUID}, {"SYS_SETGID", unix.SYS_SETGID},
	{"SYS_SETSID", unix.SYS_SETSID}, {"SYS_SETGROUPS", unix.SYS_SETGROUPS}, {"SYS_CAPSET", unix.SYS_CAPSET},
	{"SYS_RT_SIGTIMEDWAIT", unix.SYS_RT_SIGTIMEDWAIT}, {"SYS_MKNOD", unix.SYS_MKNOD},
	{"SYS_STATFS", unix.SYS_STATFS}, {"SYS_FSTATFS", unix.SYS_FSTATFS}, {"SYS_PRCTL", unix.SYS_PRCTL}, {"SYS_PIVOT_ROOT", unix.SYS_PIVOT_ROOT},
	{"SYS_MOUNT", unix.SYS_MOUNT}, {"SYS_UMOUNT2", unix.SYS_UMOUNT2}, {"SYS_SETHOSTNAME", unix.SYS_SETHOSTNAME},
	{"SYS_OPENAT", unix.SYS_OPENAT}, {"SYS_MKDIRAT", unix.SYS_MKDIRAT}, {"SYS_NEWFSTATAT", unix.SYS_NEWFSTATAT},
	{"SYS_PPOLL", unix.SYS_PPOLL}, {"SYS_SIGNALFD4", unix.SYS_SIGNALFD4}, {"SYS_DUP3", unix.SYS_DUP3},
	{"SYS_PIPE2", unix.SYS_PIPE2}, {"SYS_SETNS", unix.SYS_SETNS}, {"SYS_MEMFD_CREATE", unix.SYS_MEMFD_CREATE},
	{"SYS_EXECVEAT", unix.SYS_EXECVEAT}, {"SYS_MOVE_MOUNT", unix.SYS_MOVE_MOUNT},
	{"SYS_PIDFD_OPEN", unix.SYS_PIDFD_OPEN}, {"SYS_CLOSE_RANGE", unix.SYS_CLOSE_RANGE},
	{"SYS_OPENAT2", unix.SYS_OPENAT2}, {"SYS_MOUNT_SETATTR", unix.SYS_MOUNT_SETATTR},
	{"SYS_WAITID", unix.SYS_WAITID}, {"SYS_UNLINKAT", unix.SYS_UNLINKAT}, {"SYS_OPEN_TREE", unix.SYS_OPEN_TREE},

	{"EPERM", unix.EPERM}, {"ENOENT", unix.ENOENT}, {"EINTR", unix.EINTR}, {"E2BIG", unix.E2BIG},
	{"ENOEXEC", unix.ENOEXEC}, {"ENOMEM", unix.ENOMEM}, {"EACCES", unix.EACCES}, {"EEXIST", unix.EEXIST},
	{"EISDIR", unix.EISDIR}, {"EINVAL", unix.EINVAL}, {"ENOSYS", unix.ENOSYS}, {"EPIPE", unix.EPIPE},

	{"AT_FDCWD", unix.AT_FDCWD}, {"AT_EMPTY_PATH", unix.AT_EMPTY_PATH}, {"AT_RECURSIVE", unix.AT_RECURSIVE},
	{"O_RDONLY", unix.O_RDONLY}, {"O_WRONLY", unix.O_WRONLY}, {"O_RDWR", unix.O_RDWR},
	{"O_CREAT", unix.O_CREAT}, {"O_EXCL", unix.O_EXCL}, {"O_TRUNC", unix.O_TRUNC},
	{"O_DIRECTORY", unix.O_DIRECTORY}, {"O_NOFOLLOW", unix.O_NOFOLLOW}, {"O_CLOEXEC", unix.O_CLOEXEC},
	{"O_PATH", unix.O_PATH}, {"O_APPEND", unix.O_APPEND},
	{"RESOLVE_BENEATH", unix.RESOLVE_BENEATH}, {"RESOLVE_NO_SYMLINKS", unix.RESOLVE_NO_SYMLINKS},
	{"RESOLVE_NO_MAGICLINKS", unix.RESOLVE_NO_MAGICLINKS},
	{"S_IFMT", unix.S_IFMT}, {"S_IFDIR", unix.S_IFDIR}, {"S_IFREG", unix.S_IFREG}, {"S_IFLNK", unix.S_IFLNK},
	{"NSFS_MAGIC", unix.NSFS_MAGIC},
	{"S_IWGRP", unix.S_IWGRP}, {"S_IWOTH", unix.S_IWOTH},
	{"F_SETFD", unix.F_SETFD}, {"F_GETFL", unix.F_GETFL}, {"FD_CLOEXEC", unix.FD_CLOEXEC}, {"F_DUPFD_CLOEXEC", unix.F_DUPFD_CLOEXEC},
	{"F_ADD_SEALS", unix.F_ADD_SEALS}, {"F_GETPIPE_SZ", unix.F_GETPIPE_SZ}, {"F_SEAL_SEAL", unix.F_SEAL_SEAL}, {"F_SEAL_SHRINK", unix.F_SEAL_SHRINK},
	{"F_SEAL_GROW", unix.F_SEAL_GROW}, {"F_SEAL_WRITE", unix.F_SEAL_WRITE},
	{"MFD_CLOEXEC", unix.MFD_CLOEXEC}, {"MFD_ALLOW_SEALING", unix.MFD_ALLOW_SEALING}, {"MFD_EXEC", unix.MFD_EXEC},
	{"CLOSE_RANGE_CLOEXEC", unix.CLOSE_RANGE_CLOEXEC},
	{"SIG_BLOCK", unix.SIG_BLOCK}, {"SIG_SETMASK", unix.SIG_SETMASK},
	{"SIGHUP", int(unix.SIGHUP)}, {"SIGINT", int(unix.SIGINT)}, {"SIGQUIT", int(unix.SIGQUIT)},
	{"SIGKILL", int(unix.SIGKILL)}, {"SIGUSR1", int(unix.SIGUSR1)}, {"SIGUSR2", int(unix.SIGUSR2)},
	{"SIGALRM", int(unix.SIGALRM)}, {"SIGTERM", int(unix.SIGTERM)}, {"SIGCHLD", int(unix.SIGCHLD)},
	{"SIGCONT", int(unix.SIGCONT)}, {"SIGTSTP", int(unix.SIGTSTP)}, {"SIGWINCH", int(unix.SIGWINCH)},
	{"POLLIN", unix.POLLIN}, {"WNOHANG", unix.WNOHANG}, {"WALL", unix.WALL},
	{"WEXITED", unix.WEXITED}, {"WNOWAIT", unix.WNOWAIT}, {"P_ALL", unix.P_ALL}, {"P_PID", unix.P_PID},
	{"CLONE_NEWNS", unix.CLONE_NEWNS}, {"CLONE_NEWUTS", unix.CLONE_NEWUTS}, {"CLONE_NEWIPC", unix.CLONE_NEWIPC},
	{"CLONE_NEWPID", unix.CLONE_NEWPID}, {"CLONE_NEWUSER", unix.CLONE_NEWUSER}, {"CLONE_NEWNET", unix.CLONE_NEWNET},
	{"CLONE_PARENT", unix.CLONE_PARENT},
	{"PR_SET_PDEATHSIG", unix.PR_SET_PDEATHSIG}, {"PR_SET_DUMPABLE", unix.PR_SET_DUMPABLE},
	{"PR_SET_NAME", unix.PR_SET_NAME}, {"PR_SET_SECCOMP", unix.PR_SET_SECCOMP},
	{"PR_CAPBSET_DROP", unix.PR_CAPBSET_DROP}, {"PR_SET_CHILD_SUBREAPER", unix.PR_SET_CHILD_SUBREAPER},
	{"PR_SET_NO_NEW_PRIVS", unix.PR_SET_NO_NEW_PRIVS}, {"PR_CAP_AMBIENT", unix.PR_CAP_AMBIENT},
	{"PR_CAP_AMBIENT_CLEAR_ALL", unix.PR_CAP_AMBIENT_CLEAR_ALL},
	{"SECCOMP_MODE_FILTER", unix.SECCOMP_MODE_FILTER},
	{"LINUX_CAPABILITY_VERSION_3", unix.LINUX_CAPABILITY_VERSION_3},
	{"MOUNT_ATTR_RDONLY", unix.MOUNT_ATTR_RDONLY}, {"MOUNT_ATTR_NODEV", unix.MOUNT_ATTR_NODEV},
	{"MOVE_MOUNT_F_EMPTY_PATH", unix.MOVE_MOUNT_F_EMPTY_PATH}, {"OPEN_TREE_CLONE", unix.OPEN_TREE_CLONE},
	{"MS_RDONLY", unix.MS_RDONLY}, {"MS_NOSUID", unix.MS_NOSUID}, {"MS_NODEV", unix.MS_NODEV},
	{"MS_NOEXEC", unix.MS_NOEXEC}, {"MS_REMOUNT", unix.MS_REMOUNT}, {"MS_BIND", unix.MS_BIND},
	{"MS_REC", unix.MS_REC}, {"MS_SLAVE", unix.MS_SLAVE}, {"MNT_DETACH", unix.MNT_DETACH},
	{"AF_INET", unix.AF_INET}, {"SOCK_DGRAM", unix.SOCK_DGRAM},
	{"SIOCGIFFLAGS", unix.SIOCGIFFLAGS}, {"SIOCSIFFLAGS", unix.SIOCSIFFLAGS}, {"IFF_UP", unix.IFF_UP},
	{"TIOCSCTTY", unix.TIOCSCTTY},
	{"PROT_READ", unix.PROT_READ}, {"PROT_WRITE", unix.PROT_WRITE},
	{"MAP_PRIVATE", unix.MAP_PRIVATE}, {"MAP_ANONYMOUS", unix.MAP_ANONYMOUS},
}

// records are setup's wire structs; kernelStructs the kernel's.
var (
	records = []cstruct{
		{"op_header", setup.OpHeader{}}, {"string_header", setup.StringHeader{}}, {"report", setup.Report{}}, {"join_header", setup.JoinHeader{}},
		{"exit", setup.Exit{}},
	}
	kernelStructs = []cstruct{
		{"k_timespec", unix.Timespec{}}, {"k_stat", unix.Stat_t{}}, {"k_fsid", unix.Fsid{}},
		{"k_statfs", unix.Statfs_t{}}, {"k_open_how", unix.OpenHow{}}, {"k_pollfd", unix.PollFd{}},
		{"k_signalfd_siginfo", unix.SignalfdSiginfo{}}, {"k_mount_attr", unix.MountAttr{}},
		{"k_cap_header", unix.CapUserHeader{}}, {"k_cap_data", unix.CapUserData{}},
		{"k_sock_fprog", unix.SockFprog{}}, {"k_siginfo", setup.Siginfo{}},
	}
)

type constant struct {
	name  string
	value any
}

type cstruct struct {
	name string
	v    any
}

func render() ([]byte, error) {
	if runtime.GOARCH != "amd64" {
		return nil, fmt.Errorf("the header is for linux/amd64, not %s: x/sys's constants are the host's", runtime.GOARCH)
	}
	var b bytes.Buffer
	b.WriteString(`// Code generated by internal/setup/gen (go generate ./internal/setup); DO NOT EDIT.

// setup.h is the contract between podsb's Go and its freestanding C
// (reaper/pause/pause.c, fastexec/fastexec.c), for linux/amd64: package
// setup's operations, records, fds and limits, sandbox's defaults, and the
// kernel's system calls, constants and structs, all from Go.

#ifndef PODSB_SETUP_H
#define PODSB_SETUP_H

`)
	for _, sec := range []struct {
		title string
		cs    []constant
	}{
		{"Operation codes (setup.Code).", ops},
		{"The rest of the contract (package setup), and sandbox's defaults.", contract},
		{"System calls and constants (golang.org/x/sys/unix).", kernel},
	} {
		fmt.Fprintf(&b, "// %s\n", sec.title)
		for _, c := range sec.cs {
			v, err := literal(c.value)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c.name, err)
			}
			fmt.Fprintf(&b, "#define %s %s\n", c.name, v)
		}
		b.WriteString("\n")
	}
	b.WriteString("// Records: the encoding/binary layouts of package setup's structs, so packed.\n\n")
	names := map[reflect.Type]string{}
	for _, s := range records {
		if err := writeStruct(&b, s, true, names); err != nil {
			return nil, err
		}
	}
	b.WriteString("// The kernel's structs (golang.org/x/sys/unix): their natural layout.\n\n")
	for _, s := range kernelStructs {
		if err := writeStruct(&b, s, false, names); err != nil {
			return nil, err
		}
	}
	b.WriteString("#endif\n")
	return b.Bytes(), nil
}

// literal renders a constant as C.
func literal(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v), nil
	case setup.Code:
		return strconv.FormatUint(uint64(v), 10), nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n := rv.Int()
		if n < -1<<31 || n >= 1<<31 {
			return fmt.Sprintf("%#xL", n), nil
		}
		if n < 0 {
			return fmt.Sprintf("(%d)", n), nil
		}
		return number(uint64(n)), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n := rv.Uint()
		if n >= 1<<31 {
			return fmt.Sprintf("%#xUL", n), nil
		}
		return number(n), nil
	}
	return "", fmt.Errorf("constant of type %T", v)
}

// number is decimal when small, else hexadecimal (flags, masks).
func number(n uint64) string {
	if n < 1024 {
		return strconv.FormatUint(n, 10)
	}
	return fmt.Sprintf("%#x", n)
}

// writeStruct writes s as a C struct with its size and offsets checked:
// packed at encoding/binary's offsets, or at Go's own (the amd64 ABI's).
func writeStruct(b *bytes.Buffer, s cstruct, packed bool, names map[reflect.Type]string) error {
	t := reflect.TypeOf(s.v)
	names[t] = "struct " + s.name
	fmt.Fprintf(b, "struct %s {\n", s.name)
	type check struct {
		field string
		off   uintptr
	}
	var checks []check
	var off uintptr
	pad := 0
	for i := range t.NumField() {
		f := t.Field(i)
		name := cName(f.Name)
		if f.Name == "_" {
			name = fmt.Sprintf("_pad%d", pad)
			pad++
		}
		decl, err := cDecl(f.Type, name, names)
		if err != nil {
			return fmt.Errorf("%s.%s: %w", s.name, f.Name, err)
		}
		fmt.Fprintf(b, "\t%s;\n", decl)
		at := f.Offset
		if packed {
			at = off
			off += uintptr(binary.Size(reflect.New(f.Type).Elem().Interface()))
		}
		if f.Name != "_" {
			checks = append(checks, check{name, at})
		}
	}
	size := t.Size()
	attr := ""
	if packed {
		attr = " __attribute__((packed))"
		size = uintptr(binary.Size(s.v))
	}
	fmt.Fprintf(b, "}%s;\n", attr)
	fmt.Fprintf(b, "_Static_assert(sizeof(struct %s) == %d, \"struct %s\");\n", s.name, size, s.name)
	for _, c := range checks {
		fmt.Fprintf(b, "_Static_assert(__builtin_offsetof(struct %s, %s) == %d, \"struct %s\");\n", s.name, c.field, c.off, s.name)
	}
	b.WriteString("\n")
	return nil
}

// cDecl declares a field of type t named name.
func cDecl(t reflect.Type, name string, names map[reflect.Type]string) (string, error) {
	switch t.Kind() {
	case reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return fmt.Sprintf("char %s[%d]", name, t.Len()), nil
		}
		return cDecl(t.Elem(), fmt.Sprintf("%s[%d]", name, t.Len()), names)
	case reflect.Pointer:
		return "const void *" + name, nil
	case reflect.Struct:
		n, ok := names[t]
		if !ok {
			return "", fmt.Errorf("struct %v is not declared before", t)
		}
		return n + " " + name, nil
	}
	c, ok := map[reflect.Kind]string{
		reflect.Int8: "signed char", reflect.Uint8: "unsigned char",
		reflect.Int16: "short", reflect.Uint16: "unsigned short",
		reflect.Int32: "int", reflect.Uint32: "unsigned int",
		reflect.Int64: "long", reflect.Uint64: "unsigned long",
		reflect.Uintptr: "unsigned long",
	}[t.Kind()]
	if !ok {
		return "", fmt.Errorf("type %v has no C type here", t)
	}
	return c + " " + name, nil
}

// keywords are C's, which a field may not be named: Int is int_.
var keywords = map[string]bool{
	"auto": true, "break": true, "case": true, "char": true, "const": true, "continue": true,
	"default": true, "do": true, "double": true, "else": true, "enum": true, "extern": true,
	"float": true, "for": true, "goto": true, "if": true, "inline": true, "int": true, "long": true,
	"register": true, "restrict": true, "return": true, "short": true, "signed": true, "sizeof": true,
	"static": true, "struct": true, "switch": true, "typedef": true, "union": true, "unsigned": true,
	"void": true, "volatile": true, "while": true,
}

// cName turns a Go field name into C's: NSTypes is ns_types, Attr_set is
// attr_set, X__pad0 is _pad0.
func cName(s string) string {
	n := snake(s)
	if keywords[n] {
		n += "_"
	}
	return n
}

func snake(s string) string {
	s = strings.TrimPrefix(s, "X_")
	var b strings.Builder
	r := []rune(s)
	for i, c := range r {
		if unicode.IsUpper(c) && i > 0 && r[i-1] != '_' &&
			(unicode.IsLower(r[i-1]) || i+1 < len(r) && unicode.IsLower(r[i+1])) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(c))
	}
	return b.String()
}
