package sandbox

import (
	"errors"
	"strings"
	"testing"
)

func TestParseIDMap(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want IDMap
		err  string
	}{
		{"0:100000:65536", IDMap{ContainerID: 0, HostID: 100000, Size: 65536}, ""},
		{"1000:2000:1", IDMap{ContainerID: 1000, HostID: 2000, Size: 1}, ""},
		{"0:100000", IDMap{}, "want CONTAINER:HOST:SIZE"},
		{"0:100000:65536:1", IDMap{}, "want CONTAINER:HOST:SIZE"},
		{"0:-1:5", IDMap{}, `"-1" is not a number`},
		{"0:x:5", IDMap{}, `"x" is not a number`},
		{"0:1:4294967296", IDMap{}, "is not a number"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			m, err := ParseIDMap(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("error %v, want ErrInvalid with %q", err, tc.err)
				}
				return
			}
			if err != nil || m != tc.want {
				t.Fatalf("got %+v, %v; want %+v", m, err, tc.want)
			}
		})
	}
}

func TestCheckUserNS(t *testing.T) {
	m := func(s ...string) []IDMap {
		var out []IDMap
		for _, x := range s {
			e, err := ParseIDMap(x)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, e)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		c    Config
		err  string
	}{
		{"host", Config{UserNS: "host"}, ""},
		{"auto", Config{UserNS: "auto"}, ""},
		{"unknown word", Config{UserNS: "private"}, `user namespace "private": want host or auto`},
		{"maps", Config{UIDMap: m("0:100000:65536")}, ""},
		{"two lines", Config{UIDMap: m("0:100000:1000", "1000:300000:1000")}, ""},
		{"auto and maps", Config{UserNS: "auto", UIDMap: m("0:100000:65536")}, "give one or the other"},
		{"overlapping inside", Config{UIDMap: m("0:100000:1000", "500:300000:10")}, "overlaps 0:100000:1000"},
		{"overlapping outside", Config{UIDMap: m("0:100000:1000", "2000:100500:10")}, "overlaps 0:100000:1000"},
		{"no root", Config{UIDMap: m("1:100000:10")}, "ID 0 of the pod is not mapped"},
		{"host root", Config{UIDMap: m("0:0:10")}, "maps the host's root"},
		{"size 0", Config{UIDMap: m("0:100000:0")}, "a size of at least 1"},
		{"past the last ID", Config{UIDMap: m("0:4294967290:100")}, "ranges below"},
		{"bad gid map", Config{UIDMap: m("0:100000:10"), GIDMap: m("5:100000:10")}, "gid map: ID 0 of the pod is not mapped"},
		{"host network", Config{UserNS: "auto", HostNetwork: true}, "host's network"},
		{"host IPC", Config{UserNS: "auto", HostIPC: true}, "host's IPC"},
		{"privileged", Config{UserNS: "auto", Security: Security{Privileged: true}}, "--privileged"},
		{"sys_admin", Config{UserNS: "auto", Security: Security{CapAdd: []string{"sys_admin"}}}, "CAP_SYS_ADMIN"},
		{"all", Config{UserNS: "auto", Security: Security{CapAdd: []string{"ALL"}}}, "CAP_SYS_ADMIN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			err := c.checkUserNS()
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v, want ErrInvalid with %q", err, tc.err)
			}
		})
	}
	c := Config{UIDMap: []IDMap{{HostID: 100000, Size: 10}}}
	if err := c.checkUserNS(); err != nil || len(c.GIDMap) != 1 || c.GIDMap[0] != c.UIDMap[0] {
		t.Fatalf("gid map %v (%v), want the uid map", c.GIDMap, err)
	}
}

func TestParseSubIDs(t *testing.T) {
	in := "root:100000:65536\n# comment\ncontainers:200000:131072\ncontainers:bad:1\ncontainers:500000:0\n\ncontainers:1000000:65536\n"
	got, err := parseSubIDs(strings.NewReader(in), "containers")
	if err != nil {
		t.Fatal(err)
	}
	want := []IDMap{{HostID: 200000, Size: 131072}, {HostID: 1000000, Size: 65536}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestAllocate(t *testing.T) {
	parent := []IDMap{{HostID: 100000, Size: 3 * UserNSSize}, {HostID: 1000000, Size: UserNSSize}}
	for _, tc := range []struct {
		name  string
		taken []IDMap
		want  uint32
		ok    bool
	}{
		{"empty", nil, 100000, true},
		{"first taken", []IDMap{{HostID: 100000, Size: UserNSSize}}, 100000 + UserNSSize, true},
		{"a gap", []IDMap{{HostID: 100000, Size: UserNSSize}, {HostID: 100000 + 2*UserNSSize, Size: UserNSSize}}, 100000 + UserNSSize, true},
		{"an explicit map across blocks", []IDMap{{HostID: 100010, Size: UserNSSize}}, 100000 + 2*UserNSSize, true},
		{"next parent line", []IDMap{{HostID: 100000, Size: 3 * UserNSSize}}, 1000000, true},
		{"exhausted", []IDMap{{HostID: 100000, Size: 3 * UserNSSize}, {HostID: 1000000, Size: 1}}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := allocate(parent, tc.taken)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("got %d, %v; want %d, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestHostID(t *testing.T) {
	u := &UserNS{UIDMap: []IDMap{{ContainerID: 0, HostID: 100000, Size: 1000}, {ContainerID: 1000, HostID: 5000, Size: 10}}}
	for _, tc := range []struct {
		in, want uint32
		ok       bool
	}{{0, 100000, true}, {999, 100999, true}, {1005, 5005, true}, {1010, 0, false}} {
		if got, ok := u.HostUID(tc.in); got != tc.want || ok != tc.ok {
			t.Errorf("HostUID(%d) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
