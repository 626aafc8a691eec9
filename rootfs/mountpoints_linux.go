package rootfs

import (
	"errors"
	"os"
	"path/filepath"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// MakeMountPoints makes, in the directory root s.Dir, the mount points
// the plan would make that are missing: /proc, /sys, /dev, /tmp, the /etc
// files (if /etc is there) and the volumes' destinations, owned by the
// caller (the host's root). Plan's own making of them fails where s.Dir
// is reached through a mount idmapped with a user namespace that does not
// map the host's root (EOVERFLOW): the root of a container of a pod with
// a user namespace is made so; this runs first, on the directory itself,
// so that they show as the namespace root's there, as without one.
//
// Paths resolve inside s.Dir (a symbolic link of the root cannot lead
// out).
func MakeMountPoints(s *Spec) error {
	if s.Dir == "" {
		return nil
	}
	mk := func(rel string, dir bool) error {
		p, err := securejoin.SecureJoin(s.Dir, rel)
		if err != nil {
			return err
		}
		if _, err := os.Lstat(p); err == nil || !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if dir {
			return os.MkdirAll(p, 0o755)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		return f.Close()
	}
	for _, d := range []string{"proc", "sys", "dev", "tmp"} {
		if err := mk(d, true); err != nil {
			return err
		}
	}
	if etc, err := securejoin.SecureJoin(s.Dir, "etc"); err == nil {
		if fi, err := os.Stat(etc); err == nil && fi.IsDir() {
			for _, f := range EtcFiles {
				if err := mk("etc/"+f, false); err != nil {
					return err
				}
			}
		}
	}
	for _, v := range s.Volumes {
		dir := true
		if v.Image == nil {
			fi, err := os.Stat(v.Source)
			if err != nil {
				return err
			}
			dir = fi.IsDir()
		}
		if err := mk(v.Destination, dir); err != nil {
			return err
		}
	}
	return nil
}
