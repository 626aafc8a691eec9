package crilog

import (
	"os"
	"testing"

	"github.com/creack/pty"
)

// openPTY opens a terminal: its master (for the logger) and its slave (for
// the shell).
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, s, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	return m, s
}
