package rootfs

import (
	"strings"
	"testing"
)

func TestPeeringOf(t *testing.T) {
	const mi = `22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/root rw
35 22 0:30 / /mnt/private rw - tmpfs tmpfs rw
36 22 0:31 / /mnt/slave rw master:7 - tmpfs tmpfs rw
37 22 0:32 / /mnt/both rw shared:9 master:7 - tmpfs tmpfs rw
`
	for _, tc := range []struct {
		id    uint64
		want  peering
		found bool
	}{
		{22, peering{shared: true}, true},
		{35, peering{}, true},
		{36, peering{slave: true}, true},
		{37, peering{shared: true, slave: true}, true},
		{99, peering{}, false},
	} {
		got, found := peeringOf(strings.NewReader(mi), tc.id)
		if got != tc.want || found != tc.found {
			t.Errorf("peeringOf(%d) = %+v, %v; want %+v, %v", tc.id, got, found, tc.want, tc.found)
		}
	}
}
