package sandbox

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// A rootless user's subordinate IDs (security.md#rootless), checked before
// newuidmap and newgidmap run: they would write what shadow-utils allows,
// which includes mistakes that give the pod IDs that are not the user's
// alone (its own ID twice, root's, another user's range) or that the
// kernel refuses with a bare EINVAL. Each is one line naming the file,
// the line and what is wrong.

// userSubIDs returns the ranges that file's lines give the user (by any
// of names: its name and its number), in order, each exact duplicate once.
// A malformed line of the user's, or a range that holds ID 0, the user's
// own ID own, or an ID of another owner's range (or overlaps another of
// the user's), is an error: the pod's IDs would not be the user's alone,
// or newuidmap would fail with the kernel's bare EINVAL.
func userSubIDs(file string, lines []subIDLine, names []string, own uint32) ([]IDMap, error) {
	mine := func(l subIDLine) bool {
		for _, n := range names {
			if l.owner == n {
				return true
			}
		}
		return false
	}
	var out []IDMap
	var from []subIDLine
next:
	for _, l := range lines {
		if !mine(l) {
			continue
		}
		where := fmt.Sprintf("%s line %d %q", file, l.n, l.text)
		if l.bad {
			return nil, rootlessf("%s: want USER:START:COUNT, with a COUNT of at least 1 and IDs below %d", where, uint32(1<<32-1))
		}
		switch {
		case overlap(l.r.HostID, l.r.Size, 0, 1):
			return nil, rootlessf("%s: holds ID 0, root's: subordinate IDs must not be root's", where)
		case overlap(l.r.HostID, l.r.Size, own, 1):
			return nil, rootlessf("%s: holds your own ID %d, which a rootless pod maps to 0 already", where, own)
		}
		for _, o := range lines {
			if !o.bad && !mine(o) && overlap(l.r.HostID, l.r.Size, o.r.HostID, o.r.Size) {
				return nil, rootlessf("%s: overlaps line %d %q of user %s: subordinate IDs must be yours alone", where, o.n, o.text, o.owner)
			}
		}
		for i, r := range out {
			if r == l.r {
				continue next
			}
			if overlap(l.r.HostID, l.r.Size, r.HostID, r.Size) {
				return nil, rootlessf("%s: overlaps line %d %q", where, from[i].n, from[i].text)
			}
		}
		out = append(out, l.r)
		from = append(from, l)
	}
	return out, nil
}

// checkIDMapProgram checks that path (newuidmap or newgidmap) can write
// another user's maps: a regular, executable file that is setuid root on
// a mount that honours it, or that has file capabilities. Otherwise it
// would run as the user and fail with EPERM.
func checkIDMapProgram(path string) error {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return rootlessf("%s and %s name subordinate IDs of user %d, but %s is missing (Debian package uidmap)", SubIDFiles[0], SubIDFiles[1], os.Geteuid(), path)
		}
		return rootlessf("%s: %v", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o111 == 0 {
		return rootlessf("%s: not an executable file", path)
	}
	if n, err := unix.Getxattr(path, "security.capability", nil); err == nil && n > 0 {
		return nil
	}
	if st.Mode&unix.S_ISUID == 0 || st.Uid != 0 {
		return rootlessf("%s is neither setuid root nor given file capabilities, so it cannot write subordinate IDs (reinstall Debian package uidmap)", path)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err == nil && fs.Flags&unix.ST_NOSUID != 0 {
		return rootlessf("%s is setuid root on a nosuid mount, so it cannot write subordinate IDs", path)
	}
	return nil
}
