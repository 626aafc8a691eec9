package sandbox

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/setup"
)

// execUser is who a command in a pod runs as.
type execUser struct {
	uid, gid uint32
	groups   []uint32 // supplementary groups
	home     string
}

// userIn resolves spec (see resolveUser) against etc/passwd and etc/group;
// an empty spec is root, and no file is read.
func userIn(etc, spec string) (execUser, error) {
	if spec == "" {
		return execUser{home: "/root"}, nil
	}
	var passwd, group io.Reader
	if b, err := readNoFollow(filepath.Join(etc, "passwd")); err == nil {
		passwd = bytes.NewReader(b)
	}
	if b, err := readNoFollow(filepath.Join(etc, "group")); err == nil {
		group = bytes.NewReader(b)
	}
	return resolveUser(spec, passwd, group)
}

// readNoFollow reads a regular file that is not a symbolic link: etc is
// resolved inside a container's root, but a link in it would be followed
// on the host.
func readNoFollow(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	return io.ReadAll(io.LimitReader(f, 4<<20))
}

// resolveUser resolves "USER[:GROUP]" (names or numbers) against a pod's
// /etc/passwd and /etc/group; either reader may be nil. An empty spec is
// root.
func resolveUser(spec string, passwd, group io.Reader) (execUser, error) {
	users := parseColonFile(passwd)
	groups := parseColonFile(group)
	name, grp, hasGroup := strings.Cut(spec, ":")
	if name == "" {
		name = "0"
	}
	u := execUser{home: "/"}
	found := false
	if n, err := strconv.ParseUint(name, 10, 32); err == nil {
		u.uid = uint32(n)
		for _, f := range users {
			if len(f) >= 6 && f[2] == name {
				u.gid, u.home, found = atou(f[3]), f[5], true
				name = f[0]
				break
			}
		}
	} else {
		for _, f := range users {
			if len(f) >= 6 && f[0] == name {
				u.uid, u.gid, u.home, found = atou(f[2]), atou(f[3]), f[5], true
				break
			}
		}
		if !found {
			return u, invalidf("user %q: not in the pod's /etc/passwd", name)
		}
	}
	if !found && u.uid == 0 {
		u.home = "/root"
	}
	if hasGroup {
		if n, err := strconv.ParseUint(grp, 10, 32); err == nil {
			u.gid = uint32(n)
		} else {
			ok := false
			for _, f := range groups {
				if len(f) >= 3 && f[0] == grp {
					u.gid, ok = atou(f[2]), true
					break
				}
			}
			if !ok {
				return u, invalidf("group %q: not in the pod's /etc/group", grp)
			}
		}
	}
	// Supplementary groups: those listing the user by name.
	for _, f := range groups {
		if len(f) >= 4 {
			for _, m := range strings.Split(f[3], ",") {
				if m == name && atou(f[2]) != u.gid {
					u.groups = append(u.groups, atou(f[2]))
				}
			}
		}
	}
	// The SetIDs operation carries at most MaxStrings groups.
	if len(u.groups) > setup.MaxStrings {
		return u, invalidf("user %q: in %d groups of /etc/group, at most %d are supported", name, len(u.groups), setup.MaxStrings)
	}
	return u, nil
}

// addGroups adds extra supplementary groups to u's, or with strict makes
// them u's only ones; the primary group is never listed twice.
func (u *execUser) addGroups(extra []uint32, strict bool) error {
	if strict {
		u.groups = nil
	}
	for _, g := range extra {
		if g != u.gid && !slices.Contains(u.groups, g) {
			u.groups = append(u.groups, g)
		}
	}
	if len(u.groups) > setup.MaxStrings {
		return invalidf("%d supplementary groups: at most %d are supported", len(u.groups), setup.MaxStrings)
	}
	return nil
}

// Identity is who a container's process runs as: its user, primary
// group, and every group it is in (the primary one too), sorted.
type Identity struct {
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups"`
}

func (u execUser) identity() *Identity {
	id := &Identity{UID: u.uid, GID: u.gid, Groups: append([]uint32{u.gid}, u.groups...)}
	slices.Sort(id.Groups)
	id.Groups = slices.Compact(id.Groups)
	return id
}

func parseColonFile(r io.Reader) [][]string {
	if r == nil {
		return nil
	}
	var out [][]string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out
}

func atou(s string) uint32 {
	n, _ := strconv.ParseUint(s, 10, 32)
	return uint32(n)
}
