package sandbox

import (
	"encoding/hex"
	"regexp"

	"golang.org/x/sys/unix"
)

// MaxNameLen is the longest pod name; a name is also the default hostname,
// and a DNS label has at most 63 bytes.
const MaxNameLen = 63

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// ValidateName checks a pod name: 1 to MaxNameLen characters of
// [A-Za-z0-9_.-], starting with a letter or digit. A valid name is always a
// single path component, so it never reaches outside the state root.
func ValidateName(name string) error {
	switch {
	case name == "":
		return invalidf("empty pod name")
	case len(name) > MaxNameLen:
		return invalidf("pod name %.20q...: longer than %d characters", name, MaxNameLen)
	case !nameRE.MatchString(name):
		return invalidf("pod name %q: must match [A-Za-z0-9][A-Za-z0-9_.-]*", name)
	}
	return nil
}

// validateHostname checks a hostname for sethostname(2) and /etc/hosts.
func validateHostname(h string) error {
	if h == "" || len(h) > 64 || !nameRE.MatchString(h) {
		return invalidf("hostname %q: want 1 to 64 characters of [A-Za-z0-9_.-]", h)
	}
	return nil
}

// newID returns a random 12-hex-digit pod name.
func newID() string {
	// getrandom(2) rather than crypto/rand, whose initialization every
	// podsb command would pay for at start.
	var b [6]byte
	if _, err := unix.Getrandom(b[:], 0); err != nil {
		panic(err) // does not fail once the kernel's pool is ready
	}
	return hex.EncodeToString(b[:])
}

// NewName returns a random 12-hex-digit name, as Create and Run give.
func NewName() string { return newID() }
