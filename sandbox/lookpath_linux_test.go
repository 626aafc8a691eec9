package sandbox

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// An absolute command is not joined to the working directory
// (`exec -w /tmp POD -- /bin/true` was "command not found").
func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "bin", "tool")
	if err := os.MkdirAll(filepath.Dir(exe), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file, path, dir, want string
		err                         error
	}{
		{"absolute, other working directory", exe, "", "/", exe, nil},
		{"absolute, working directory given", exe, "", "/tmp", exe, nil},
		{"relative to the working directory", "bin/tool", "", dir, "bin/tool", nil},
		{"in PATH", "tool", "/nonexistent:" + filepath.Dir(exe), "/", exe, nil},
		{"not found", "nosuch", filepath.Dir(exe), "/", "", ErrCommandNotFound},
		{"a directory", dir, "", "/", "", ErrNotExecutable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := lookPath(tc.file, tc.path, tc.dir)
			if got != tc.want || !errors.Is(err, tc.err) && (err != nil || tc.err != nil) {
				t.Errorf("lookPath(%q, %q, %q) = %q, %v; want %q, %v", tc.file, tc.path, tc.dir, got, err, tc.want, tc.err)
			}
		})
	}
}
