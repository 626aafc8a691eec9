package sandbox

import (
	"errors"
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
