package sandbox

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// IDMap maps Size IDs from ContainerID in a pod's user namespace to HostID
// on the host, as a line of /proc/PID/uid_map.
type IDMap = specs.LinuxIDMapping

// The user namespace modes of Config.UserNS.
const (
	// UserNSHost keeps the pod in the host's user namespace: root in the
	// pod is root on the host, with the pod's capabilities.
	UserNSHost = "host"
	// UserNSAuto gives the pod a user namespace of its own, mapping its
	// IDs 0 to UserNSSize-1 to a range of host IDs that no other pod of
	// the state root has (SubIDFiles' ranges for SubIDUser).
	UserNSAuto = "auto"
)

// UserNSSize is how many IDs an automatic user namespace maps.
const UserNSSize = 65536

// SubIDUser is the user whose subordinate IDs (subuid(5), subgid(5))
// automatic user namespaces are taken from, as podman's --userns=auto.
const SubIDUser = "containers"

// DefaultSubIDs is the parent range of automatic user namespaces when the
// files name none for SubIDUser: host IDs 2^30 to 2^31-1 (16,384 pods of
// 65,536), above every user a distribution allocates and below the IDs
// that some tools take for negative numbers.
var DefaultSubIDs = IDMap{HostID: 1 << 30, Size: 1 << 30}

// maxIDMapLines is the kernel's limit of lines in uid_map and gid_map.
const maxIDMapLines = 340

// UserNS is a pod's own user namespace, as its state records it.
type UserNS struct {
	// Auto says the maps were allocated (Config.UserNS auto), not given.
	Auto bool `json:"auto,omitempty"`
	// UIDMap and GIDMap are the namespace's maps.
	UIDMap []IDMap `json:"uidMap"`
	GIDMap []IDMap `json:"gidMap"`
}

// HostUID returns the host user ID of a user ID in the pod, and whether
// it is mapped.
func (u *UserNS) HostUID(id uint32) (uint32, bool) { return hostID(u.UIDMap, id) }

// HostGID returns the host group ID of a group ID in the pod, and whether
// it is mapped.
func (u *UserNS) HostGID(id uint32) (uint32, bool) { return hostID(u.GIDMap, id) }

func hostID(m []IDMap, id uint32) (uint32, bool) {
	for _, e := range m {
		if id >= e.ContainerID && uint64(id) < uint64(e.ContainerID)+uint64(e.Size) {
			return e.HostID + (id - e.ContainerID), true
		}
	}
	return 0, false
}

// ParseUserNS reads --userns: "host" or "auto".
func ParseUserNS(s string) (string, error) {
	switch s {
	case UserNSHost, UserNSAuto:
		return s, nil
	}
	return "", invalidf("user namespace %q: want host or auto", s)
}

// ParseIDMap reads CONTAINER:HOST:SIZE, three decimal numbers, as
// --uidmap and --gidmap take them.
func ParseIDMap(s string) (IDMap, error) {
	f := strings.Split(s, ":")
	if len(f) != 3 {
		return IDMap{}, invalidf("ID map %q: want CONTAINER:HOST:SIZE", s)
	}
	var n [3]uint32
	for i, v := range f {
		x, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return IDMap{}, invalidf("ID map %q: %q is not a number from 0 to %d", s, v, uint32(math.MaxUint32))
		}
		n[i] = uint32(x)
	}
	return IDMap{ContainerID: n[0], HostID: n[1], Size: n[2]}, nil
}

// CheckIDMap validates a map as Create does (checkIDMap), for a caller
// that names the field itself: what names the map in the error.
func CheckIDMap(what string, m []IDMap) error { return checkIDMap(what, m) }

// checkIDMap validates a map as the kernel takes it, and as podsb wants
// it: ID 0 of the pod mapped (its root), host ID 0 not (the host's root
// stays outside every pod), no two lines overlapping on either side.
func checkIDMap(what string, m []IDMap) error {
	if len(m) > maxIDMapLines {
		return invalidf("%s: %d lines, at most %d", what, len(m), maxIDMapLines)
	}
	for i, e := range m {
		// ID 2^32-1 is the kernel's invalid ID: no range may reach it.
		if e.Size == 0 || uint64(e.ContainerID)+uint64(e.Size) > math.MaxUint32 || uint64(e.HostID)+uint64(e.Size) > math.MaxUint32 {
			return invalidf("%s %s: want a size of at least 1 and ranges below %d", what, fmtIDMap(e), uint32(math.MaxUint32))
		}
		if e.HostID == 0 {
			return invalidf("%s %s: maps the host's root into the pod", what, fmtIDMap(e))
		}
		for _, o := range m[:i] {
			if overlap(e.ContainerID, e.Size, o.ContainerID, o.Size) || overlap(e.HostID, e.Size, o.HostID, o.Size) {
				return invalidf("%s %s overlaps %s", what, fmtIDMap(e), fmtIDMap(o))
			}
		}
	}
	if _, ok := hostID(m, 0); !ok {
		return invalidf("%s: ID 0 of the pod is not mapped", what)
	}
	return nil
}

func fmtIDMap(e IDMap) string { return fmt.Sprintf("%d:%d:%d", e.ContainerID, e.HostID, e.Size) }

func overlap(a, an, b, bn uint32) bool {
	return uint64(a) < uint64(b)+uint64(bn) && uint64(b) < uint64(a)+uint64(an)
}

// hostOverlap tells whether two maps share a host ID.
func hostOverlap(a, b []IDMap) bool {
	for _, x := range a {
		for _, y := range b {
			if overlap(x.HostID, x.Size, y.HostID, y.Size) {
				return true
			}
		}
	}
	return false
}

// checkUserNS validates Config's user namespace fields and fills in the
// defaults: a missing GIDMap is the UIDMap, as podman takes it.
func (c *Config) checkUserNS() error {
	switch c.UserNS {
	case "", UserNSHost, UserNSAuto:
	default:
		_, err := ParseUserNS(c.UserNS)
		return err
	}
	if len(c.UIDMap)+len(c.GIDMap) > 0 {
		if c.UserNS != "" {
			return invalidf("user namespace %s and ID maps: give one or the other", c.UserNS)
		}
		if len(c.UIDMap) == 0 {
			c.UIDMap = c.GIDMap
		}
		if len(c.GIDMap) == 0 {
			c.GIDMap = c.UIDMap
		}
		if err := checkIDMap("uid map", c.UIDMap); err != nil {
			return err
		}
		if err := checkIDMap("gid map", c.GIDMap); err != nil {
			return err
		}
	}
	if !c.ownUserNS() {
		return nil
	}
	// The kernel lets a user namespace's root mount sysfs and mqueue only
	// in network and IPC namespaces that the user namespace owns; and
	// Kubernetes refuses these with hostUsers: false too.
	switch {
	case c.HostNetwork:
		return invalidf("a user namespace of the pod's own and the host's network")
	case c.HostIPC:
		return invalidf("a user namespace of the pod's own and the host's IPC namespace")
	case c.Security.Privileged:
		return invalidf("a user namespace of the pod's own and --privileged")
	}
	// CAP_SYS_ADMIN in the pod's user namespace would let its root clear
	// the read-only flag of the idmapped host directories, which map the
	// pod's root to the host's (security.md).
	mask, all, err := c.Security.capMask()
	if err != nil {
		return err
	}
	if all || mask&(1<<capSysAdmin) != 0 {
		return invalidf("a user namespace of the pod's own and CAP_SYS_ADMIN: its root could make the host's directories writable")
	}
	return nil
}

// capSysAdmin is CAP_SYS_ADMIN's number.
const capSysAdmin = 21

// ownUserNS tells whether the pod gets a user namespace of its own.
func (c *Config) ownUserNS() bool {
	return c.UserNS == UserNSAuto || len(c.UIDMap) > 0
}

// parseSubIDs reads the ranges of user from a subuid(5) or subgid(5) file:
// lines NAME:START:COUNT. Malformed lines are skipped, as shadow-utils
// does.
func parseSubIDs(r io.Reader, user string) ([]IDMap, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	lines, err := readSubIDLines(b)
	var out []IDMap
	for _, l := range lines {
		if l.owner == user && !l.bad {
			out = append(out, l.r)
		}
	}
	return out, err
}

// subIDLine is one line of a subuid(5) or subgid(5) file that names an
// owner.
type subIDLine struct {
	n     int    // line number, from 1
	text  string // as written, trimmed
	owner string // the first field
	r     IDMap  // HostID and Size; valid unless bad
	bad   bool   // not OWNER:START:COUNT with COUNT ≥ 1 below 2^32-1
}

// readSubIDLines reads every owner's line of a subuid or subgid file;
// blank lines and comments are skipped.
func readSubIDLines(b []byte) ([]subIDLine, error) {
	var out []subIDLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		l := subIDLine{n: n, text: line}
		f := strings.Split(line, ":")
		l.owner = f[0]
		if len(f) != 3 {
			l.bad = true
		} else {
			start, err1 := strconv.ParseUint(f[1], 10, 32)
			size, err2 := strconv.ParseUint(f[2], 10, 32)
			l.bad = err1 != nil || err2 != nil || size == 0 || start+size > 1<<32-1
			l.r = IDMap{HostID: uint32(start), Size: uint32(size)}
		}
		out = append(out, l)
	}
	return out, sc.Err()
}

// allocate finds the lowest block of UserNSSize IDs in parent that
// overlaps none of taken (the host IDs of other pods' maps), as one
// contiguous range; ok false if there is none.
func allocate(parent []IDMap, taken []IDMap) (uint32, bool) {
	taken = append([]IDMap(nil), taken...)
	sort.Slice(taken, func(i, j int) bool { return taken[i].HostID < taken[j].HostID })
	for _, p := range parent {
		start, end := uint64(p.HostID), uint64(p.HostID)+uint64(p.Size)
		for start+UserNSSize <= end {
			moved := false
			for _, t := range taken {
				if overlap(uint32(start), UserNSSize, t.HostID, t.Size) {
					// Past this one, aligned to a block of the parent's.
					next := uint64(t.HostID) + uint64(t.Size)
					off := (next - uint64(p.HostID) + UserNSSize - 1) / UserNSSize * UserNSSize
					start = uint64(p.HostID) + off
					moved = true
					break
				}
			}
			if !moved {
				return uint32(start), true
			}
		}
	}
	return 0, false
}
