// Package setup is the program a pod's init runs before it becomes pause:
// a list of operations (mounts, directories, device nodes, files, hostname,
// loopback, pivot_root) that podsb plans in Go on the host and the
// freestanding init in reaper/pause/pause.c executes, in order, inside the
// pod's new namespaces.
//
// Planning in Go and executing in a few hundred bytes of C keeps every
// decision in Go while no Go runtime ever starts inside a pod: creating a
// pod costs one exec of a tiny static program instead of a second Go
// process.
//
// Wire format (little-endian), one record per operation: an OpHeader
//
//	u32 op | u32 flags | u64 num | u32 nstr
//
// then nstr strings, each u32 len | len bytes. Each string ends in a NUL
// that len counts; an empty string (len 1) stands for a NULL pointer where
// the system call takes one. On failure the init writes a Report (u32
// index | i32 errno) to its status pipe and exits 1.
//
// This package is also the rest of the contract between podsb's Go and its
// C (reaper/pause/pause.c and the fast path, package fastexec): the fds of
// pause's modes, the limits, and the join record (Join). Every record is the
// encoding/binary little-endian layout of a Go struct here; setup.h, which
// both C programs include, is generated from this package by go generate
// (gen/main.go) and declares the same structs, packed, with their sizes and
// offsets checked by the compiler. TestHeaderUpToDate fails when setup.h is
// stale.
package setup

//go:generate go run ./gen -o setup.h

import (
	"encoding/binary"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Code is an operation's code. The values are shared with pause.c (setup.h
// names them OP_ and the name in upper case with underscores: OP_REMOUNT_RO).
type Code uint32

const (
	Mount      Code = 1 // mount(Str[0], Str[1], Str[2], Num, Str[3])
	Mkdir      Code = 2 // mkdir(Str[0], Num); an existing directory is fine
	Mknod      Code = 3 // mknod(Str[0], Num&0xffffffff, Num>>32)
	Symlink    Code = 4 // symlink(Str[0], Str[1])
	Write      Code = 5 // write Str[1] to a new or truncated Str[0], mode Num
	Touch      Code = 6 // create Str[0] if missing, mode Num
	RemountRO  Code = 7 // make the mount at Str[0] read-only; with Num Recursive, the mounts below too
	Hostname   Code = 8 // sethostname(Str[0])
	LoopbackUp Code = 9 // bring up "lo"
	Pivot      Code = 10
	// Pivot makes Str[0] the root: pivot_root(".", ".") in it, then the
	// old root, made a recursive slave, is detached.

	// The operations of a container's init ("pause run"), whose fds are:
	// 3 the program, 4 the status pipe, 5 the go-ahead pipe, and the
	// detached mount trees that MoveMount attaches.
	MoveMount Code = 11 // attach the detached mount tree at fd Num on Str[0]
	Sync      Code = 12 // report Synced, then wait for the go-ahead: one byte on fd 5 (end of file without it fails with EPIPE: podsb died)
	Spawn     Code = 13 // fork (clone with the CLONE_NEW* flags of Num above bit 0): the parent reports Spawned with the child's PID and exits; the child goes on in a new session, with bit 0 of Num taking the terminal at fd 0 as its controlling terminal
	SetIDs    Code = 14 // setgroups(Str as numbers), setgid(Num>>32), setuid(Num&0xffffffff)
	Chdir     Code = 15 // chdir(Str[0])
	Pdeathsig Code = 16 // SIGKILL when the parent thread dies
	Exec      Code = 17 // execute Str[0] (PATH lookup unless it holds a slash) with argv Str[1:]; the status fd closes on success

	Caps       Code = 18 // keep only the capabilities in the mask Num in the bounding set; clear the ambient set
	NoNewPrivs Code = 19 // prctl(PR_SET_NO_NEW_PRIVS)
	CapSet     Code = 20 // capset: effective, permitted and inheritable become the mask Num
	Seccomp    Code = 21 // install the seccomp filter Str[0] (raw sock_filter instructions); needs no_new_privs first
	NoDev      Code = 22 // make the mount at Str[0], and the mounts below it, nodev
	// OpenTree makes a detached bind mount of the directory Str[0]
	// (open_tree OPEN_TREE_CLONE, close-on-exec) and puts its fd at Num.
	// The fd reaches that directory and what is below it, nothing else:
	// ".." of a detached mount's root is itself. Before Pivot, Str[0] is
	// a host path: a pod's init opens its exits directory onto ExitsFD so.
	OpenTree Code = 23
	// SetNS joins the namespace of the fd Num (setns with type 0). A
	// command of a pod with a user namespace joins it so, from the
	// single-threaded pause run: a Go thread cannot (setns(2) refuses a
	// user namespace to a multi-threaded process).
	SetNS Code = 24
)

// Records on the status pipe that are not failures: the first word.
const (
	Synced  uint32 = 0xffffffff // set up, waiting for the go-ahead
	Spawned uint32 = 0xfffffffe // the second word is the spawned PID
)

// MaxStrings is the most strings an operation may have (an Exec's argv
// with the program, a SetIDs's groups).
const MaxStrings = 64

// MaxProgram is the largest program, in bytes, that pause reads.
const MaxProgram = 1 << 20

// Optional marks an operation whose failure is ignored.
const Optional uint32 = 1

// Recursive is RemountRO's Num for a whole tree of mounts.
const Recursive uint64 = 1

// Op is one operation.
type Op struct {
	Code  Code
	Flags uint32
	Num   uint64
	Str   []string
}

// OpHeader is an operation's fixed part on the wire; its strings follow.
type OpHeader struct {
	Code  uint32
	Flags uint32
	Num   uint64
	NStr  uint32
}

// StringHeader is the length before each of an operation's strings, which
// counts the string's NUL.
type StringHeader struct {
	Len uint32
}

// Report is a record on the status pipe: a failed operation's index and
// errno, or a record that is not a failure (Synced, Spawned and its PID).
type Report struct {
	Index uint32
	Errno int32
}

// ReportSize is a Report's size on the wire.
const ReportSize = 8

// Encode serializes ops for the init.
func Encode(ops []Op) []byte {
	var b []byte
	for _, op := range ops {
		b = appendOp(b, op)
	}
	return b
}

func appendOp(b []byte, op Op) []byte {
	h := OpHeader{Code: uint32(op.Code), Flags: op.Flags, Num: op.Num, NStr: uint32(len(op.Str))}
	b = appendStruct(b, &h)
	for _, s := range op.Str {
		b = appendStruct(b, &StringHeader{Len: uint32(len(s) + 1)})
		b = append(b, s...)
		b = append(b, 0)
	}
	return b
}

// Decode parses a program as Encode writes it, and as pause reads it.
func Decode(b []byte) ([]Op, error) {
	var ops []Op
	for len(b) > 0 {
		var h OpHeader
		n, err := binary.Decode(b, binary.LittleEndian, &h)
		if err != nil || h.NStr > MaxStrings {
			return nil, fmt.Errorf("operation %d: malformed", len(ops))
		}
		b = b[n:]
		op := Op{Code: Code(h.Code), Flags: h.Flags, Num: h.Num}
		for range h.NStr {
			var sh StringHeader
			n, err := binary.Decode(b, binary.LittleEndian, &sh)
			if err != nil {
				return nil, fmt.Errorf("operation %d: malformed", len(ops))
			}
			l := sh.Len
			b = b[n:]
			if l == 0 || uint64(l) > uint64(len(b)) || b[l-1] != 0 {
				return nil, fmt.Errorf("operation %d: malformed string", len(ops))
			}
			op.Str = append(op.Str, string(b[:l-1]))
			b = b[l:]
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// appendStruct appends v, a pointer to a struct of fixed-size fields, in
// its wire layout (encoding/binary, little-endian, no padding).
func appendStruct(b []byte, v any) []byte {
	b, err := binary.Append(b, binary.LittleEndian, v)
	if err != nil {
		panic(err) // only fixed-size structs of this package come here
	}
	return b
}

// Failure decodes the init's report of a failed operation: index and errno.
// It returns an error that names the operation and unwraps to the errno.
func Failure(ops []Op, report []byte) error {
	var r Report
	if len(report) != ReportSize {
		return fmt.Errorf("malformed report %q", report)
	}
	if _, err := binary.Decode(report, binary.LittleEndian, &r); err != nil {
		return fmt.Errorf("malformed report %q", report)
	}
	errno := unix.Errno(r.Errno)
	if int64(r.Index) >= int64(len(ops)) {
		return fmt.Errorf("operation %d: %w", r.Index, errno)
	}
	return &OpError{Op: ops[r.Index], Err: errno}
}

// OpError is an operation that failed inside the pod.
type OpError struct {
	Op  Op
	Err error
}

func (e *OpError) Error() string { return e.Op.String() + ": " + e.Err.Error() }
func (e *OpError) Unwrap() error { return e.Err }

// String describes op as a command would: "mount proc on /proc type proc
// (nosuid,nodev,noexec)".
func (op Op) String() string {
	s := func(i int) string {
		if i < len(op.Str) {
			return op.Str[i]
		}
		return ""
	}
	switch op.Code {
	case Mount:
		var b strings.Builder
		b.WriteString("mount ")
		if s(0) != "" {
			b.WriteString(s(0) + " ")
		}
		b.WriteString("on " + s(1))
		if s(2) != "" {
			b.WriteString(" type " + s(2))
		}
		if f := MountFlagNames(uintptr(op.Num)); f != "" {
			b.WriteString(" (" + f + ")")
		}
		if s(3) != "" {
			b.WriteString(" [" + s(3) + "]")
		}
		return b.String()
	case Mkdir:
		return "mkdir " + s(0)
	case Mknod:
		return "mknod " + s(0)
	case Symlink:
		return "symlink " + s(1) + " -> " + s(0)
	case Write:
		return "write " + s(0)
	case Touch:
		return "create " + s(0)
	case RemountRO:
		return "remount " + s(0) + " read-only"
	case NoDev:
		return "remount " + s(0) + " nodev"
	case Hostname:
		return "sethostname " + s(0)
	case OpenTree:
		return fmt.Sprintf("open a detached mount of %s on fd %d", s(0), op.Num)
	case LoopbackUp:
		return "bring up loopback"
	case Pivot:
		return "pivot_root to " + s(0)
	case MoveMount:
		return "attach a mount on " + s(0)
	case SetNS:
		return fmt.Sprintf("join the namespace of fd %d", op.Num)
	case Sync:
		return "wait for the go-ahead"
	case Spawn:
		return "fork"
	case SetIDs:
		return fmt.Sprintf("become user %d group %d", op.Num&0xffffffff, op.Num>>32)
	case Chdir:
		return "chdir " + s(0)
	case Pdeathsig:
		return "set the parent-death signal"
	case Exec:
		return "execute " + s(0)
	case Caps:
		return fmt.Sprintf("bound capabilities to %#x", op.Num)
	case CapSet:
		return fmt.Sprintf("set capabilities %#x", op.Num)
	case NoNewPrivs:
		return "set no_new_privs"
	case Seccomp:
		return "install the seccomp filter"
	}
	return fmt.Sprintf("operation %d", op.Code)
}

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

// MountFlagNames names mount flags: "bind,rec".
func MountFlagNames(flags uintptr) string {
	var names []string
	for _, f := range mountFlagNames {
		if flags&f.flag != 0 {
			names = append(names, f.name)
		}
	}
	return strings.Join(names, ",")
}
