package sandbox

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/podsb/podsb/internal/setup"
)

// An exit file as pause writes it: si_code and si_status, read as a
// shell reports the status; an empty or short file is no exit.
func TestReadExit(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name   string
		data   []byte
		code   int
		signal string
		none   bool
	}{
		{"exited 0", rec(setup.CLDExited, 0), 0, "", false},
		{"exited 3", rec(setup.CLDExited, 3), 3, "", false},
		{"killed", rec(setup.CLDKilled, 9), 137, "SIGKILL", false},
		{"dumped", rec(setup.CLDDumped, 11), 139, "SIGSEGV", false},
		{"empty", nil, 0, "", true},
		{"short", []byte{1, 0, 0}, 0, "", true},
		{"unknown code", rec(9, 0), 0, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(dir, tc.name)
			if err := os.WriteFile(f, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			os.Chtimes(f, mtime, mtime)
			e := readExit(f)
			if tc.none {
				if e != nil {
					t.Errorf("exit %+v, want none", e)
				}
				return
			}
			if e == nil || e.Code != tc.code || e.Signal != tc.signal || !e.Finished.Equal(mtime) {
				t.Errorf("exit %+v, want %d %q at %v", e, tc.code, tc.signal, mtime)
			}
		})
	}
	if readExit(filepath.Join(dir, "missing")) != nil {
		t.Error("a missing file has an exit")
	}
}

func rec(code, status int32) []byte {
	b, _ := binary.Append(nil, binary.LittleEndian, setup.Exit{Code: code, Status: status})
	return b
}
