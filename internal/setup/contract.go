package setup

// The fds of pause's modes. A pod's init ("pause setup") reads its program
// from ProgramFD and reports on StatusFD. "pause run" has in addition the
// go-ahead pipe of Sync at GoFD, the pause memfd it was executed from at
// PauseFD, and the extra files (a container's detached mount trees) from
// ExtraFD on.
const (
	ProgramFD = 3
	StatusFD  = 4
	GoFD      = 5
	PauseFD   = 6
	ExtraFD   = 7
)
