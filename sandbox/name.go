package sandbox

import (
	"encoding/hex"
	"regexp"

	"golang.org/x/sys/unix"
)

// MaxNameLen is the longest pod name: 64, so that a Kubernetes CRI pod ID
// (64 hex digits) is a pod name as it is. A name is also the default
// hostname, and sethostname(2) takes up to 64 bytes.
const MaxNameLen = 64

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// ValidateName checks a pod name: 1 to MaxNameLen characters of
// [A-Za-z0-9_.-], starting with a letter or digit. A valid name is always a
// single path component, so it never reaches outside the state root.
func ValidateName(name string) error { return validateName("pod", name) }

// validateContainerName checks a container's name: as a pod's, and not a
// number, which would be taken for a PID: a detached command's log is
// logs/PID.log, a container's logs/NAME.log, and podsb logs POD N means
// PID N.
func validateContainerName(name string) error {
	if err := validateName("container", name); err != nil {
		return err
	}
	if isNumber(name) {
		return invalidf("container name %q: must not be a number (it would read as a PID)", name)
	}
	return nil
}

func validateName(kind, name string) error {
	switch {
	case name == "":
		return invalidf("empty %s name", kind)
	case len(name) > MaxNameLen:
		return invalidf("%s name %.20q...: longer than %d characters", kind, name, MaxNameLen)
	case !nameRE.MatchString(name):
		return invalidf("%s name %q: must match [A-Za-z0-9][A-Za-z0-9_.-]*", kind, name)
	}
	return nil
}

// isNumber tells whether s is one or more decimal digits.
func isNumber(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
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
	// Never all digits (one in 280): a container's name must not read as
	// a PID.
	for {
		var b [6]byte
		if _, err := unix.Getrandom(b[:], 0); err != nil {
			panic(err) // does not fail once the kernel's pool is ready
		}
		if id := hex.EncodeToString(b[:]); !isNumber(id) {
			return id
		}
	}
}

// NewName returns a random 12-hex-digit name, as Create and Run give.
func NewName() string { return newID() }
