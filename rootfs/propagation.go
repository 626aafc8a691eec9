package rootfs

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// peering is how a mount propagates: its optional fields in mountinfo.
type peering struct {
	shared bool // in a peer group ("shared:N")
	slave  bool // receives from a master ("master:N")
}

// peeringOf reads mountinfo (proc(5)) for the mount with the ID id.
func peeringOf(mountinfo io.Reader, id uint64) (peering, bool) {
	sc := bufio.NewScanner(mountinfo)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		pre, _, ok := strings.Cut(sc.Text(), " - ")
		f := strings.Fields(pre)
		if !ok || len(f) < 6 {
			continue
		}
		if n, err := strconv.ParseUint(f[0], 10, 64); err != nil || n != id {
			continue
		}
		var p peering
		for _, o := range f[6:] {
			p.shared = p.shared || strings.HasPrefix(o, "shared:")
			p.slave = p.slave || strings.HasPrefix(o, "master:")
		}
		return p, true
	}
	return peering{}, false
}
