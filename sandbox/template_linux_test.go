package sandbox

import (
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/setup"
)

func TestHandleMounts(t *testing.T) {
	table := `26 1 254:0 / / rw,relatime - ext4 /dev/vda rw
21 26 0:20 / /proc rw,relatime - proc proc rw
170 26 254:0 /run/netns /run/netns rw,relatime shared:1 - ext4 /dev/vda rw
171 170 0:4 net:[4026532300] /run/netns/x rw - nsfs nsfs rw
200 26 0:40 /podsb/a/ns /run/podsb/a/ns rw - tmpfs tmpfs rw
201 200 0:4 pid:[4026532301] /run/podsb/a/ns/pid rw - nsfs nsfs rw
202 200 0:4 net:[4026532302] /run/podsb/a/ns/net rw - nsfs nsfs rw
203 26 0:40 /podsb/b/ns /run/podsb/b/ns rw - tmpfs tmpfs rw
204 26 0:41 / /srv/ns rw - tmpfs tmpfs rw
`
	got, err := handleMounts(strings.NewReader(table))
	if err != nil {
		t.Fatal(err)
	}
	// The ns directory that holds handles goes first; one without handles
	// (a pod half-made, b) and a mount that only is named ns stay; so
	// does /run/netns, which is not named ns (its handles go).
	want := []string{"/run/podsb/a/ns", "/run/netns/x", "/run/podsb/a/ns/pid", "/run/podsb/a/ns/net"}
	if !slices.Equal(got, want) {
		t.Errorf("handleMounts = %q, want %q", got, want)
	}
}

func TestTemplatePaths(t *testing.T) {
	pod := "/run/podsb/a"
	ops := []setup.Op{
		{Code: setup.Mount, Num: unix.MS_REC | unix.MS_SLAVE, Str: []string{"", "/", "", ""}},
		{Code: setup.Mount, Num: unix.MS_BIND | unix.MS_REC, Str: []string{"/usr", pod + "/rootfs/usr", "", ""}},
		{Code: setup.Mount, Num: unix.MS_BIND, Str: []string{pod + "/etc/hosts", pod + "/rootfs/etc/hosts", "", ""}},
		{Code: setup.Mount, Num: unix.MS_BIND, Str: []string{"/dev/null", pod + "/rootfs/dev/null", "", ""}},
		{Code: setup.Mount, Str: []string{"proc", pod + "/rootfs/proc", "proc", ""}},
		{Code: setup.Pivot, Str: []string{pod + "/rootfs"}},
		{Code: setup.Mount, Num: unix.MS_BIND, Str: []string{"/after", "/x", "", ""}},
	}
	want := []string{pod, "/proc", "/usr", "/dev/null"}
	if got := templatePaths(ops, pod); !slices.Equal(got, want) {
		t.Errorf("templatePaths = %q, want %q", got, want)
	}
}
