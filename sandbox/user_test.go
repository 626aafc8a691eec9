package sandbox

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const testPasswd = `root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
# a comment
alice:x:1000:1000:Alice:/home/alice:/bin/sh
`

const testGroup = `root:x:0:
daemon:x:1:
alice:x:1000:
wheel:x:10:alice,bob
audio:x:29:bob
`

func TestResolveUser(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want execUser
		err  bool
	}{
		{"", execUser{uid: 0, gid: 0, home: "/root"}, false},
		{"0", execUser{uid: 0, gid: 0, home: "/root"}, false},
		{"alice", execUser{uid: 1000, gid: 1000, home: "/home/alice", groups: []uint32{10}}, false},
		{"1000", execUser{uid: 1000, gid: 1000, home: "/home/alice", groups: []uint32{10}}, false},
		{"alice:audio", execUser{uid: 1000, gid: 29, home: "/home/alice", groups: []uint32{10}}, false},
		{"1000:7", execUser{uid: 1000, gid: 7, home: "/home/alice", groups: []uint32{10}}, false},
		{"4242", execUser{uid: 4242, gid: 0, home: "/"}, false},
		{"4242:4242", execUser{uid: 4242, gid: 4242, home: "/"}, false},
		{"nobody-here", execUser{}, true},
		{"alice:nogroup", execUser{}, true},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			got, err := resolveUser(tc.spec, strings.NewReader(testPasswd), strings.NewReader(testGroup))
			if tc.err {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("err %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v %v, want %+v", got, err, tc.want)
			}
		})
	}
}

func TestResolveUserTooManyGroups(t *testing.T) {
	var group strings.Builder
	for i := range 66 { // 65 supplementary: g0 is the primary group
		fmt.Fprintf(&group, "g%d:x:%d:alice\n", i, 1000+i)
	}
	_, err := resolveUser("alice", strings.NewReader("alice:x:1000:1000::/home/alice:/bin/sh\n"), strings.NewReader(group.String()))
	if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "in 65 groups") {
		t.Fatalf("65 groups: %v", err)
	}
}

func TestNames(t *testing.T) {
	for _, n := range []string{"web", "a1", "5a"} {
		if err := validateContainerName(n); err != nil {
			t.Errorf("container name %q: %v", n, err)
		}
	}
	for _, n := range []string{"5", "0123", "", "-x", "a/b"} {
		if err := validateContainerName(n); err == nil {
			t.Errorf("container name %q accepted", n)
		}
	}
	if err := validateContainerName("x y"); err == nil || !strings.Contains(err.Error(), "container name") {
		t.Errorf("container name error: %v", err)
	}
	for range 2000 {
		if id := NewName(); isNumber(id) || validateContainerName(id) != nil {
			t.Fatalf("generated name %q", id)
		}
	}
}

// TestAddGroups checks the supplementary groups of a CRI container: the
// image's and the config's (Merge), or the config's alone (Strict), never
// the primary group twice.
func TestAddGroups(t *testing.T) {
	for _, tc := range []struct {
		name   string
		extra  []uint32
		strict bool
		want   []uint32
		ids    []uint32
	}{
		{"merge", []uint32{1234, 50000}, false, []uint32{50000, 1234}, []uint32{1000, 1234, 50000}},
		{"strict", []uint32{1234, 1000}, true, []uint32{1234}, []uint32{1000, 1234}},
		{"none", nil, false, []uint32{50000}, []uint32{1000, 50000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := resolveUser("1000", strings.NewReader("u:x:1000:1000::/home:/bin/sh\n"), strings.NewReader("u:x:1000:\ng:x:50000:u\n"))
			if err != nil {
				t.Fatal(err)
			}
			if err := u.addGroups(tc.extra, tc.strict); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(u.groups, tc.want) {
				t.Errorf("groups %v, want %v", u.groups, tc.want)
			}
			if id := u.identity(); id.UID != 1000 || id.GID != 1000 || !slices.Equal(id.Groups, tc.ids) {
				t.Errorf("identity %+v, want groups %v", id, tc.ids)
			}
		})
	}
	u := execUser{}
	if err := u.addGroups(make([]uint32, 100), false); err != nil {
		t.Errorf("a group repeated: %v", err)
	}
	many := make([]uint32, 70)
	for i := range many {
		many[i] = uint32(i + 1)
	}
	if err := u.addGroups(many, false); !errors.Is(err, ErrInvalid) {
		t.Errorf("70 groups: %v", err)
	}
}
