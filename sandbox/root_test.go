package sandbox

import (
	"io/fs"
	"testing"
)

func TestTrustedRootAndParent(t *testing.T) {
	dir := fs.ModeDir
	for _, tc := range []struct {
		name         string
		uid          uint32
		mode         fs.FileMode
		root, parent bool
	}{
		{"root 0700", 0, dir | 0o700, true, true},
		{"root 0755", 0, dir | 0o755, true, true},
		{"root 0750", 0, dir | 0o750, true, true},
		{"group writable", 0, dir | 0o770, false, false},
		{"others writable", 0, dir | 0o757, false, false},
		{"sticky 1777", 0, dir | fs.ModeSticky | 0o777, false, true},
		{"nobody's 0700", 65534, dir | 0o700, false, false},
		{"nobody's sticky", 65534, dir | fs.ModeSticky | 0o777, false, false},
		{"not a directory", 0, 0o600, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := trustedRoot(tc.uid, tc.mode); got != tc.root {
				t.Errorf("trustedRoot(%d, %v) = %v", tc.uid, tc.mode, got)
			}
			if got := trustedParent(tc.uid, tc.mode); got != tc.parent {
				t.Errorf("trustedParent(%d, %v) = %v", tc.uid, tc.mode, got)
			}
		})
	}
}
