package sandbox

import (
	"errors"
	"fmt"
	"reflect"
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
