package sandbox

import (
	"errors"
	"io/fs"
)

// UntrustedRootFormat is the error every podsb command gives for a state
// root it does not trust, with the root and the offending directory (the
// root itself, or a directory above it). The C part of podsb exec
// (nsenter/fastexec) prints the same text, after "podsb: ".
const UntrustedRootFormat = "untrusted state root %s: %s is not owned by root or is writable by group or others"

var (
	// ErrUntrustedRoot means the state root, or a directory above it, can
	// be changed by a user other than root; podsb does nothing there.
	ErrUntrustedRoot = errors.New("untrusted state root")
	// ErrNotPod means a directory of the state root was not made by podsb
	// (it has no pod marker): podsb neither lists nor touches it.
	ErrNotPod = errors.New("not a pod")
)

// trustedRoot tells whether a state root with this owner and mode can be
// changed by root alone: owned by root, not writable by group or others.
func trustedRoot(uid uint32, mode fs.FileMode) bool {
	return uid == 0 && mode.IsDir() && mode.Perm()&0o022 == 0
}

// trustedParent tells the same of a directory above the state root. A
// sticky one (/tmp) may be writable by anyone: others can add entries to
// it, but cannot rename or remove root's.
func trustedParent(uid uint32, mode fs.FileMode) bool {
	return uid == 0 && mode.IsDir() && (mode.Perm()&0o022 == 0 || mode&fs.ModeSticky != 0)
}
