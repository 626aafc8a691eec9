package setup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// JoinFile is the join record's name in a pod's state directory.
const JoinFile = "join"

// JoinMagic starts a join record; its last digit is the format's version.
const JoinMagic = "podsbJ4\n"

// MaxJoinNS is the most namespaces a join record lists.
const MaxJoinNS = 8

// MaxJoin is the largest join record the fast path reads, in bytes.
const MaxJoin = 1 << 15

// Join is the join record, ROOT/NAME/join: everything the fast path
// (package fastexec) needs to run a command in a running pod as Go would
// with the default ExecConfig, decided by Go when the pod's pause started.
// The fast path only fills in the command: it appends an Exec operation
// with the command line to Program and runs it with Env in Dir.
type Join struct {
	// Name is the pod's name. The fast path uses the record only for the
	// pod of that name.
	Name string
	// PID and Start are pause's host PID and start time (field 22 of
	// /proc/PID/stat), BootID the boot they belong to.
	PID, Start uint64
	BootID     string
	// Namespaces are the handles to join, in order, by path relative to
	// the pod's state directory (ns/pid), the mount namespace last. A
	// user namespace (CLONE_NEWUSER) is not joined with setns by the fast
	// path, which would lose its capabilities at the execve of pause run:
	// it passes the handle to pause run at ExtraFD, and Program begins
	// with the SetNS operation that joins it.
	Namespaces []JoinNS
	// ProcNS says the handles are pause's own namespace files: each Path
	// is a name below /proc/PID/ns, and the fast path uses it only if it
	// has the recorded Inode. A rootless pod's: nothing is pinned for it
	// (it is joined from inside the pod's user namespace, which the
	// binary's entry point joined first).
	ProcNS bool
	// Env is the command's whole environment; Dir its working directory.
	Env []string
	Dir string
	// Program is the operations before the command's Exec.
	Program []Op
}

// JoinNS is a namespace handle to join.
type JoinNS struct {
	Type  uint32 // a CLONE_NEW* flag
	Path  string
	Inode uint64 // with ProcNS: the namespace's inode
}

// JoinProcNS is JoinHeader.Flags' bit of Join.ProcNS.
const JoinProcNS = 1

// JoinHeader starts a join record on the wire. The strings follow, in the
// order of their lengths here: Name, BootID, the namespaces' paths, Env,
// Dir, then the encoded Program. Every string but Name and BootID ends in a
// NUL that its length counts; Paths and Env are such strings one after the
// other.
type JoinHeader struct {
	Magic   [8]byte
	PID     uint64
	Start   uint64
	NNS     uint32
	NSTypes [MaxJoinNS]uint32
	NEnv    uint32
	Ops     uint32 // operations in Program: the index of the appended Exec
	NameLen uint32
	BootLen uint32
	PathLen uint32
	EnvLen  uint32
	DirLen  uint32
	ProgLen uint32
	Flags   uint32 // JoinProcNS
	// NSInodes are the namespaces' inodes, with JoinProcNS.
	NSInodes [MaxJoinNS]uint64
}

// Encode returns j on the wire.
func (j *Join) Encode() ([]byte, error) {
	if len(j.Namespaces) > MaxJoinNS {
		return nil, fmt.Errorf("join record: %d namespaces, at most %d", len(j.Namespaces), MaxJoinNS)
	}
	var paths []string
	for _, ns := range j.Namespaces {
		paths = append(paths, ns.Path)
	}
	for _, s := range append(append([]string{j.Name, j.BootID, j.Dir}, paths...), j.Env...) {
		if strings.IndexByte(s, 0) >= 0 {
			return nil, fmt.Errorf("join record: %q holds a NUL", s)
		}
	}
	h := JoinHeader{
		PID: j.PID, Start: j.Start, NNS: uint32(len(j.Namespaces)), NEnv: uint32(len(j.Env)),
		Ops: uint32(len(j.Program)),
	}
	copy(h.Magic[:], JoinMagic)
	for i, ns := range j.Namespaces {
		h.NSTypes[i], h.NSInodes[i] = ns.Type, ns.Inode
	}
	if j.ProcNS {
		h.Flags |= JoinProcNS
	}
	prog := Encode(j.Program)
	strs := [][]byte{[]byte(j.Name), []byte(j.BootID), nulList(paths), nulList(j.Env), nulList([]string{j.Dir}), prog}
	lens := []*uint32{&h.NameLen, &h.BootLen, &h.PathLen, &h.EnvLen, &h.DirLen, &h.ProgLen}
	for i, s := range strs {
		*lens[i] = uint32(len(s))
	}
	b := appendStruct(nil, &h)
	for _, s := range strs {
		b = append(b, s...)
	}
	if len(b) > MaxJoin {
		return nil, fmt.Errorf("join record: %d bytes, at most %d", len(b), MaxJoin)
	}
	return b, nil
}

func nulList(ss []string) []byte {
	var b []byte
	for _, s := range ss {
		b = append(append(b, s...), 0)
	}
	return b
}

// errJoin is a record that does not parse.
var errJoin = errors.New("malformed join record")

// DecodeJoin parses a join record.
func DecodeJoin(b []byte) (*Join, error) {
	var h JoinHeader
	n, err := binary.Decode(b, binary.LittleEndian, &h)
	if err != nil || string(h.Magic[:]) != JoinMagic || h.NNS > MaxJoinNS {
		return nil, errJoin
	}
	b = b[n:]
	var strs [6][]byte
	for i, l := range []uint32{h.NameLen, h.BootLen, h.PathLen, h.EnvLen, h.DirLen, h.ProgLen} {
		if uint64(l) > uint64(len(b)) {
			return nil, errJoin
		}
		strs[i], b = b[:l], b[l:]
	}
	paths, env, dir := splitNul(strs[2]), splitNul(strs[3]), splitNul(strs[4])
	if len(b) != 0 || len(paths) != int(h.NNS) || len(env) != int(h.NEnv) || len(dir) != 1 {
		return nil, errJoin
	}
	prog, err := Decode(strs[5])
	if err != nil || len(prog) != int(h.Ops) {
		return nil, errJoin
	}
	j := &Join{Name: string(strs[0]), PID: h.PID, Start: h.Start, BootID: string(strs[1]), Env: env, Dir: dir[0], Program: prog,
		ProcNS: h.Flags&JoinProcNS != 0}
	for i, p := range paths {
		j.Namespaces = append(j.Namespaces, JoinNS{Type: h.NSTypes[i], Path: p, Inode: h.NSInodes[i]})
	}
	return j, nil
}

// splitNul splits NUL-terminated strings; nil if b does not end in a NUL.
func splitNul(b []byte) []string {
	if len(b) == 0 {
		return []string{}
	}
	if b[len(b)-1] != 0 {
		return nil
	}
	return strings.Split(string(b[:len(b)-1]), "\x00")
}
