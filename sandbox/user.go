package sandbox

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
