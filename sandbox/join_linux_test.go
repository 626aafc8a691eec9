package sandbox

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/setup"
)

// TestJoinRecord checks what writeJoin records for the fast path: the
// pod's name, pause, the handles in Pod.Exec's order by path in the pod's
// directory, and the environment, directory and program that Pod.Exec
// gives a command run with the default ExecConfig, but for the command's
// Exec, which the fast path appends.
func TestJoinRecord(t *testing.T) {
	dir := t.TempDir()
	st := &State{StartTime: 77, BootID: "boot", Hostname: "host"}
	st.ID, st.Pid = "web", 1234
	for _, typ := range NamespaceTypes {
		st.Namespaces = append(st.Namespaces, Namespace{Type: typ, Path: filepath.Join(dir, "ns", procName(typ))})
	}
	if err := writeJoin(dir, st); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, setup.JoinFile))
	if err != nil {
		t.Fatal(err)
	}
	j, err := setup.DecodeJoin(b)
	if err != nil {
		t.Fatal(err)
	}
	wantNS := []setup.JoinNS{
		{Type: unix.CLONE_NEWPID, Path: "ns/pid"}, {Type: unix.CLONE_NEWUTS, Path: "ns/uts"},
		{Type: unix.CLONE_NEWIPC, Path: "ns/ipc"}, {Type: unix.CLONE_NEWNET, Path: "ns/net"},
		{Type: unix.CLONE_NEWNS, Path: "ns/mnt"},
	}
	if j.Name != "web" || j.PID != 1234 || j.Start != 77 || j.BootID != "boot" || !reflect.DeepEqual(j.Namespaces, wantNS) {
		t.Errorf("record %+v", j)
	}
	root := execUser{home: "/root"}
	env, wd := commandEnv(ExecConfig{}, root, "host")
	if !reflect.DeepEqual(j.Env, env) || j.Dir != wd {
		t.Errorf("environment %q in %q, want %q in %q", j.Env, j.Dir, env, wd)
	}
	// With the command's Exec appended: Pod.Exec's program.
	args := []string{"echo", "hi"}
	want, err := commandOps(Security{}, Security{}, root, false, "echo", args)
	if err != nil {
		t.Fatal(err)
	}
	got := append(j.Program, setup.Op{Code: setup.Exec, Str: append([]string{"echo"}, args...)})
	if !reflect.DeepEqual(setup.Encode(got), setup.Encode(want)) {
		t.Errorf("program + Exec:\n%v\nwant\n%v", got, want)
	}

	// A pod created with changed capabilities: its commands' program has
	// them, as Pod.Exec's has (issue 11: the fast path must not give back
	// what create dropped).
	st.Security = Security{CapDrop: []string{"net_raw"}, Privileged: true}
	if err := writeJoin(dir, st); err != nil {
		t.Fatal(err)
	}
	if b, err = os.ReadFile(filepath.Join(dir, setup.JoinFile)); err != nil {
		t.Fatal(err)
	}
	if j, err = setup.DecodeJoin(b); err != nil {
		t.Fatal(err)
	}
	if want, err = commandOps(Security{}, st.Security, root, false, "echo", args); err != nil {
		t.Fatal(err)
	}
	got = append(j.Program, setup.Op{Code: setup.Exec, Str: append([]string{"echo"}, args...)})
	if !reflect.DeepEqual(setup.Encode(got), setup.Encode(want)) {
		t.Errorf("program + Exec of a pod without NET_RAW:\n%v\nwant\n%v", got, want)
	}
	var caps uint64
	for _, op := range j.Program {
		if op.Code == setup.Caps {
			caps = op.Num
		}
	}
	if caps != defaultMask()&^(1<<unix.CAP_NET_RAW) {
		t.Errorf("the program of a pod without NET_RAW keeps %#x", caps)
	}

	// A pod with a cgroup has none.
	st.Cgroup = "/podsb-x"
	if err := writeJoin(dir, st); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, setup.JoinFile)); !os.IsNotExist(err) {
		t.Errorf("join record of a pod with a cgroup: %v", err)
	}
}

// TestJoinRecordRootless: a rootless pod's record names pause's own
// /proc/PID/ns files with their inodes, not its user namespace (the exec
// joined it first), and, with the single-ID map, its program has no
// SetIDs (setgroups is denied there).
func TestJoinRecordRootless(t *testing.T) {
	dir := t.TempDir()
	st := &State{StartTime: 77, BootID: "boot", Hostname: "host", Rootless: rootlessMaps()}
	st.ID, st.Pid = "web", 1234
	for i, typ := range NamespaceTypes {
		st.Namespaces = append(st.Namespaces, Namespace{Type: typ, Path: filepath.Join(dir, "ns", procName(typ)), Inode: uint64(100 + i)})
	}
	if err := writeJoin(dir, st); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, setup.JoinFile))
	if err != nil {
		t.Fatal(err)
	}
	j, err := setup.DecodeJoin(b)
	if err != nil {
		t.Fatal(err)
	}
	if !j.ProcNS {
		t.Errorf("record without ProcNS: %+v", j)
	}
	inode := map[string]uint64{}
	for _, ns := range st.Namespaces {
		inode[filepath.Base(ns.Path)] = ns.Inode
	}
	var names []string
	for _, ns := range j.Namespaces {
		names = append(names, ns.Path)
		if ns.Inode != inode[ns.Path] || ns.Type == unix.CLONE_NEWUSER {
			t.Errorf("handle %+v, want inode %d", ns, inode[ns.Path])
		}
	}
	if !reflect.DeepEqual(names, []string{"pid", "uts", "ipc", "net", "mnt"}) {
		t.Errorf("handles %q", names)
	}
	for _, op := range j.Program {
		if op.Code == setup.SetIDs {
			t.Errorf("a single-ID rootless pod's program has SetIDs: %v", j.Program)
		}
	}
}
