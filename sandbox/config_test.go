package sandbox

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckExposure checks issue 11's refusal of a volume (or a directory
// root) that would let a pod plant records in the state root: the root
// itself, a parent of it, a directory inside it, also through a symbolic
// link, and for a root that does not exist yet.
func TestCheckExposure(t *testing.T) {
	top := t.TempDir()
	root := filepath.Join(top, "state", "root")
	if err := os.MkdirAll(filepath.Join(root, "pod", "ns"), 0o700); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(top, "data")
	os.Mkdir(other, 0o755)
	link := filepath.Join(other, "link")
	os.Symlink(filepath.Join(top, "state"), link)
	for _, tc := range []struct {
		name, root, src string
		err             string
	}{
		{"unrelated", root, other, ""},
		{"the root", root, root, "holds the state root"},
		{"a parent", root, filepath.Join(top, "state"), "holds the state root"},
		{"the host's root", root, "/", "holds the state root"},
		{"a pod's directory", root, filepath.Join(root, "pod"), "is inside the state root"},
		{"deep inside", root, filepath.Join(root, "pod", "ns"), "is inside the state root"},
		{"a link to a parent", root, link, "holds the state root"},
		{"a link inside", root, filepath.Join(link, "root", "pod"), "is inside the state root"},
		{"a root yet to be made", filepath.Join(other, "new", "root"), other, "holds the state root"},
		{"a sibling of a root yet to be made", filepath.Join(top, "state", "new"), root, ""},
		// Walking up from these never reached "/": the check went round
		// "." for ever (an image volume's start hung).
		{"no source", root, "", ""},
		{"a relative source", root, ".", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := func(what string, err error) {
				t.Helper()
				if tc.err == "" {
					if err != nil {
						t.Errorf("%s: %v", what, err)
					}
					return
				}
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrInvalid) {
					t.Errorf("%s: error %v, want one with %q", what, err, tc.err)
				}
			}
			check("volume", checkExposure(tc.root, "", []Volume{{Source: tc.src, Destination: "/x"}}))
			check("rootfs", checkExposure(tc.root, tc.src, nil))
		})
	}
}
