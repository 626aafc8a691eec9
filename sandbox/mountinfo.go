package sandbox

import (
	"strconv"
	"strings"
)

// mountinfoEntry is one line of /proc/PID/mountinfo (see proc(5)).
type mountinfoEntry struct {
	target  string // mount point
	fstype  string
	source  string
	options string // per-mount and superblock options
}

// parseMountinfo parses one mountinfo line:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
func parseMountinfo(line string) (mountinfoEntry, bool) {
	pre, post, ok := strings.Cut(line, " - ")
	if !ok {
		return mountinfoEntry{}, false
	}
	f := strings.Fields(pre)
	g := strings.Fields(post)
	if len(f) < 6 || len(g) < 2 {
		return mountinfoEntry{}, false
	}
	opts := f[5]
	if len(g) > 2 && g[2] != "" {
		opts += "," + g[2]
	}
	return mountinfoEntry{target: unescapeOctal(f[4]), fstype: g[0], source: unescapeOctal(g[1]), options: opts}, true
}

// unescapeOctal undoes the kernel's \NNN escaping of space, tab, newline and
// backslash in mountinfo paths.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
