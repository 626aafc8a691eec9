package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/podsb/podsb/sandbox"
)

// TestRootlessSubIDsBad: a rootless create with subordinate IDs that
// newuidmap or newgidmap cannot or should not write fails with one line
// that says why, exit 125, and leaves nothing: no state root entry, no
// process of the podsb binary (the create re-executed in its user
// namespace is killed and reaped), no range record. The ranges are
// podsb's view ($PODSB_SUBUID, $PODSB_SUBGID), the programs
// $PODSB_NEWUIDMAP and $PODSB_NEWGIDMAP: no system file changes. Where a
// program runs, it is the real one against the real /etc/subuid, which
// gives the user none of the ranges asked for (a range far from any other
// test's).
func TestRootlessSubIDsBad(t *testing.T) {
	e := newRootlessEnv(t)
	const good = "nobody:3000000000:65536\n"
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(e.dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	orig, err := os.ReadFile(sandbox.NewIDMapPrograms[0])
	if err != nil {
		t.Fatal(err)
	}
	copied := write("newuidmap-copy", string(orig), 0o755) // not setuid
	usersOwn := write("newuidmap-users", string(orig), 0o755)
	if err := os.Chown(usersOwn, rootlessUID, rootlessGID); err != nil {
		t.Fatal(err)
	}
	os.Chmod(usersOwn, os.ModeSetuid|0o755) // setuid, but the user's
	failing := write("newidmap-fails", "#!/bin/sh\necho \"$0: no luck\" >&2\necho 'on two lines' >&2\nexit 3\n", os.ModeSetuid|0o755)
	missing := filepath.Join(e.dir, "nosuch")
	for _, tc := range []struct {
		name           string
		subuid, subgid string
		env            []string
		want           string
	}{
		{"newuidmap missing", good, good, []string{"PODSB_NEWUIDMAP=" + missing}, "name subordinate IDs of user 65534, but " + missing + " is missing (Debian package uidmap)"},
		{"newgidmap missing", good, good, []string{"PODSB_NEWGIDMAP=" + missing}, "but " + missing + " is missing (Debian package uidmap)"},
		{"newuidmap a directory", good, good, []string{"PODSB_NEWUIDMAP=" + e.dir}, e.dir + ": not an executable file"},
		{"newuidmap not setuid", good, good, []string{"PODSB_NEWUIDMAP=" + copied}, copied + " is neither setuid root nor given file capabilities, so it cannot write subordinate IDs"},
		{"newgidmap setuid to the user", good, good, []string{"PODSB_NEWGIDMAP=" + usersOwn}, usersOwn + " is neither setuid root nor given file capabilities"},
		{"newuidmap fails", good, good, []string{"PODSB_NEWUIDMAP=" + failing}, "rootless: " + failing + " could not write the subordinate IDs of " + filepath.Join(e.dir, "subuid") + " into the pod's user namespace (exit status 3): " + failing + ": no luck on two lines"},
		{"newuidmap refuses", good, good, nil, "rootless: /usr/bin/newuidmap could not write the subordinate IDs of " + filepath.Join(e.dir, "subuid") + " into the pod's user namespace (exit status 1): newuidmap: uid range [1-65537) -> [3000000000-3000065536) not allowed"},
		{"malformed", "# ok\nnobody:3000000000\n", good, nil, `subuid line 2 "nobody:3000000000": want USER:START:COUNT, with a COUNT of at least 1`},
		{"not a number", "65534:3e9:65536\n", good, nil, `subuid line 1 "65534:3e9:65536": want USER:START:COUNT`},
		{"empty range", good, "nobody:3000000000:0\n", nil, `subgid line 1 "nobody:3000000000:0": want USER:START:COUNT, with a COUNT of at least 1`},
		{"past the last ID", "nobody:4294967000:65536\n", good, nil, `subuid line 1 "nobody:4294967000:65536": want USER:START:COUNT, with a COUNT of at least 1 and IDs below 4294967295`},
		{"own uid", "nobody:60000:10000\n", good, nil, `subuid line 1 "nobody:60000:10000": holds your own ID 65534, which a rootless pod maps to 0 already`},
		{"own gid", good, "65534:65534:1\n", nil, `subgid line 1 "65534:65534:1": holds your own ID 65534`},
		{"root's", "nobody:0:1000\n", good, nil, `subuid line 1 "nobody:0:1000": holds ID 0, root's`},
		{"another user's", "containers:3000001000:65536\n" + good, good, nil, `subuid line 2 "nobody:3000000000:65536": overlaps line 1 "containers:3000001000:65536" of user containers: subordinate IDs must be yours alone`},
		{"by name and number, overlapping", "65534:3000000000:100\nnobody:3000000050:100\n", good, nil, `subuid line 2 "nobody:3000000050:100": overlaps line 1 "65534:3000000000:100"`},
		{"no gids", good, "", nil, "subuid names subordinate IDs of user nobody and " + filepath.Join(e.dir, "subgid") + " none: give both or neither"},
		{"only another user's gids", good, "daemon:3000000000:65536\n", nil, "subuid names subordinate IDs of user nobody and " + filepath.Join(e.dir, "subgid") + " none"},
		{"no uids", "daemon:3000000000:65536\n", good, nil, "subgid names subordinate IDs of user nobody and " + filepath.Join(e.dir, "subuid") + " none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := append([]string{
				"PODSB_SUBUID=" + write("subuid", tc.subuid, 0o644),
				"PODSB_SUBGID=" + write("subgid", tc.subgid, 0o644),
			}, tc.env...)
			name := e.name()
			cmd := e.cmd("create", "--network", "none", name)
			cmd.Env = append(cmd.Env, env...)
			wantFailure(t, runResult(t, cmd), tc.want)
			if ents := stateEntries(e.root); len(ents) != 0 {
				t.Errorf("state root after the failed create: %v", ents)
			}
			if pids := processesOf(t, e.bin); len(pids) != 0 {
				t.Errorf("processes of %s after the failed create: %v", e.bin, pids)
			}
			if recs, _ := filepath.Glob(filepath.Join(sandbox.UserNSRecords, name+"@*")); len(recs) != 0 {
				t.Errorf("range records after the failed create: %v", recs)
			}
		})
	}
	// The same files, a good range and the single-ID map still work.
	name := e.name()
	e.must("create", "--network", "none", name)
	e.must("rm", name)
}

// TestRootlessSubIDsSmall: subordinate ranges smaller than the IDs a
// command asks for (nobody:START:100 in the real /etc/subuid and
// /etc/subgid, restored byte for byte): the pod maps 0 and 1-100; exec as
// user 100 works, as user 1000 or with group 1000 is refused with one line
// naming the maps, exit 125, and runs nothing.
func TestRootlessSubIDsSmall(t *testing.T) {
	const start = 610000000
	e := newRootlessEnv(t)
	withSubIDRange(t, start, 100)
	name := e.name()
	e.must("create", "--network", "none", name)
	d := e.inspect(name)
	want := []sandbox.IDMap{{ContainerID: 0, HostID: rootlessUID, Size: 1}, {ContainerID: 1, HostID: start, Size: 100}}
	if d.Rootless == nil || !slices.Equal(d.Rootless.UIDMap, want) {
		t.Fatalf("inspect: rootless maps %+v, want uids %v", d.Rootless, want)
	}
	if out := e.must("exec", "-u", "100:100", name, "--", "sh", "-c", "id -u; id -g"); out != "100\n100\n" {
		t.Errorf("exec -u 100:100: %q", out)
	}
	marker := "/tmp/ran"
	for _, tc := range []struct{ user, want string }{
		{"1000", "rootless: pod " + name + " maps uids 0-0,1-100 (your subordinate IDs): no user 1000 in it"},
		{"101:0", "no user 101 in it"},
		{"0:1000", "rootless: pod " + name + " maps gids 0-0,1-100 (your subordinate IDs): no group 1000 in it"},
	} {
		wantFailure(t, e.run("exec", "-u", tc.user, name, "--", "touch", marker), tc.want)
		wantFailure(t, e.run("exec", "-d", "-u", tc.user, name, "--", "touch", marker), tc.want)
	}
	if r := e.run("exec", name, "--", "test", "-e", marker); r.code != 1 {
		t.Errorf("a refused exec ran: test -e %s: exit %d %q", marker, r.code, r.stderr)
	}
	e.must("rm", name)
}

// withSubIDRange is withSubIDs with a range of size IDs.
func withSubIDRange(t testing.TB, start, size uint32) {
	t.Helper()
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		orig, err := os.ReadFile(f)
		existed := err == nil
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		fi, _ := os.Stat(f)
		t.Cleanup(func() {
			if !existed {
				os.Remove(f)
				return
			}
			if err := os.WriteFile(f, orig, fi.Mode().Perm()); err != nil {
				t.Errorf("restore %s: %v", f, err)
			}
		})
		add := orig
		if len(add) > 0 && add[len(add)-1] != '\n' {
			add = append(add, '\n')
		}
		add = append(add, fmt.Sprintf("%d:%d:%d\n", rootlessUID, start, size)...)
		if err := os.WriteFile(f, add, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// processesOf lists the live processes that execute bin.
func processesOf(t testing.TB, bin string) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, en := range ents {
		exe, err := os.Readlink("/proc/" + en.Name() + "/exe")
		if err == nil && strings.TrimSuffix(exe, " (deleted)") == bin {
			if st, err := os.ReadFile("/proc/" + en.Name() + "/stat"); err == nil && !strings.Contains(string(st), ") Z ") {
				cmdline, _ := os.ReadFile("/proc/" + en.Name() + "/cmdline")
				out = append(out, en.Name()+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
			}
		}
	}
	return out
}
