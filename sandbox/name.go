package sandbox

import (
	"crypto/rand"
	"encoding/hex"
	"regexp"
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
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b[:])
}
