package setup

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// h turns a spaced hex dump, with // comments, into bytes.
func h(t *testing.T, s string) []byte {
	t.Helper()
	var digits []string
	for _, line := range strings.Split(s, "\n") {
		line, _, _ = strings.Cut(line, "//")
		digits = append(digits, strings.Fields(line)...)
	}
	b, err := hex.DecodeString(strings.Join(digits, ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEncodeGolden pins the wire format that pause.c reads: op, flags, num,
// nstr, then each string's length (with its NUL) and bytes.
func TestEncodeGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  []Op
		want string
	}{
		{"no strings", []Op{{Code: LoopbackUp}}, `
			09000000 00000000 0000000000000000 00000000`},
		{"flags and num", []Op{{Code: Mkdir, Flags: Optional, Num: 0o755, Str: []string{"/dev"}}}, `
			02000000 01000000 ed01000000000000 01000000
			05000000 2f64657600`},
		{"64-bit num", []Op{{Code: Caps, Num: 0x1122334455667788}}, `
			12000000 00000000 8877665544332211 00000000`},
		{"empty string is a NUL", []Op{{Code: Mount, Str: []string{"", "/proc", "proc", ""}}}, `
			01000000 00000000 0000000000000000 04000000
			01000000 00
			06000000 2f70726f6300
			05000000 70726f6300
			01000000 00`},
		{"two ops", []Op{{Code: Pdeathsig}, {Code: Exec, Str: []string{"true", "true"}}}, `
			10000000 00000000 0000000000000000 00000000
			11000000 00000000 0000000000000000 02000000
			05000000 7472756500
			05000000 7472756500`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := h(t, tc.want)
			got := Encode(tc.ops)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Encode = %x\nwant     %x", got, want)
			}
			back, err := Decode(got)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, tc.ops) {
				t.Errorf("Decode = %+v, want %+v", back, tc.ops)
			}
		})
	}
}

func TestDecodeMalformed(t *testing.T) {
	good := Encode([]Op{{Code: Exec, Str: []string{"sh", "sh"}}})
	for name, b := range map[string][]byte{
		"short header": good[:10],
		"short string": good[:len(good)-1],
		"no NUL":       append(append([]byte{}, good[:len(good)-1]...), 'x'),
		"too many":     Encode([]Op{{Code: SetIDs, Str: make([]string, MaxStrings+1)}}),
		"zero length":  h(t, "11000000 00000000 0000000000000000 01000000 00000000"),
	} {
		if _, err := Decode(b); err == nil {
			t.Errorf("%s: Decode(%x) succeeded", name, b)
		}
	}
}

// TestFailure pins the status pipe's failure report: u32 index, i32 errno.
func TestFailure(t *testing.T) {
	ops := []Op{{Code: Mkdir, Str: []string{"/x"}}, {Code: Exec, Str: []string{"nope", "nope"}}}
	err := Failure(ops, h(t, "01000000 02000000"))
	var oe *OpError
	if !errors.As(err, &oe) || oe.Op.Code != Exec || !errors.Is(err, unix.ENOENT) {
		t.Fatalf("Failure = %v", err)
	}
	if got := err.Error(); got != "execute nope: no such file or directory" {
		t.Errorf("Failure = %q", got)
	}
	if err := Failure(ops, h(t, "07000000 16000000")); !errors.Is(err, unix.EINVAL) || errors.As(err, &oe) {
		t.Errorf("an index past the program: %v", err)
	}
	if err := Failure(ops, []byte{1, 2, 3}); err == nil || errors.As(err, &oe) {
		t.Errorf("a short report: %v", err)
	}
}

// testJoin is a join record as sandbox writes one.
var testJoin = Join{
	Name: "web", PID: 0x1234, Start: 0x56789a, BootID: "b00d",
	Namespaces: []JoinNS{{Type: unix.CLONE_NEWPID, Path: "ns/pid"}, {Type: unix.CLONE_NEWNS, Path: "ns/mnt"}},
	Env:        []string{"PATH=/bin", "HOME=/root"},
	Dir:        "/",
	Program:    []Op{{Code: NoNewPrivs}},
}

// TestJoinGolden pins the join record that fastexec.c reads: JoinHeader,
// then the name, boot ID, paths, environment, directory and program.
func TestJoinGolden(t *testing.T) {
	want := h(t, `
		706f6473624a340a                            // magic "podsbJ4\n"
		3412000000000000 9a78560000000000           // PID, start
		02000000                                    // namespaces
		00000020 00000200 00000000 00000000         // their types: CLONE_NEWPID, CLONE_NEWNS
		00000000 00000000 00000000 00000000
		02000000 01000000                           // environment entries, ops
		03000000 04000000 0e000000 15000000         // lengths: name, boot ID, paths, environment,
		02000000 14000000                           // directory, program
		00000000                                    // flags
		0000000000000000 0000000000000000           // the namespaces' inodes
		0000000000000000 0000000000000000
		0000000000000000 0000000000000000
		0000000000000000 0000000000000000
		776562 62303064                             // "web" "b00d"
		6e732f70696400 6e732f6d6e7400               // "ns/pid\0ns/mnt\0"
		504154483d2f62696e00 484f4d453d2f726f6f7400 // "PATH=/bin\0HOME=/root\0"
		2f00                                        // "/\0"
		13000000 00000000 0000000000000000 00000000 // no_new_privs`)
	got, err := testJoin.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Encode = %x\nwant     %x", got, want)
	}
	back, err := DecodeJoin(got)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*back, testJoin) {
		t.Errorf("DecodeJoin = %+v, want %+v", *back, testJoin)
	}
}

func TestJoinRefused(t *testing.T) {
	nul := testJoin
	nul.Env = []string{"A=\x00"}
	many := testJoin
	many.Namespaces = make([]JoinNS, MaxJoinNS+1)
	big := testJoin
	big.Env = []string{"A=" + strings.Repeat("x", MaxJoin)}
	for name, j := range map[string]Join{"a NUL": nul, "too many namespaces": many, "too big": big} {
		if _, err := j.Encode(); err == nil {
			t.Errorf("%s: Encode succeeded", name)
		}
	}
	good, _ := testJoin.Encode()
	for name, b := range map[string][]byte{
		"short":     good[:len(good)-1],
		"long":      append(append([]byte{}, good...), 0),
		"old magic": append([]byte("podsbJ2\n"), good[8:]...),
	} {
		if _, err := DecodeJoin(b); err == nil {
			t.Errorf("%s: DecodeJoin succeeded", name)
		}
	}
}

// The exit record and the part of siginfo_t pause reads have the sizes
// the C side is built with.
func TestExitLayout(t *testing.T) {
	if n := binary.Size(Exit{}); n != ExitSize {
		t.Errorf("Exit is %d bytes, ExitSize %d", n, ExitSize)
	}
	if n := binary.Size(Siginfo{}); n != 128 {
		t.Errorf("Siginfo is %d bytes, want 128 (siginfo_t)", n)
	}
	if ExitsFD != ProgramFD || ExitsFD >= StatusFD {
		t.Errorf("ExitsFD %d: pause takes the program's fd %d for it and closes from %d on", ExitsFD, ProgramFD, ExitsFD+1)
	}
}
