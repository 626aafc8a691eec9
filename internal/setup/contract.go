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

// ExitsFD is pause's fd of the pod's exits directory (ROOT/POD/exits),
// which its program opens there with OpenTree. Once its program is read,
// pause closes ProgramFD, so the number is free for it; after setup
// pause keeps 0-2 and ExitsFD and closes the rest. A pause without the
// directory (a program with no OpenTree) has nothing at ExitsFD, and its
// openat there fails with EBADF: no exit is recorded.
//
// When pause reaps a child whose PID (in the pod, decimal) names a file
// in that directory, it first writes an Exit record to the file (opened
// O_WRONLY|O_APPEND|O_NOFOLLOW), then removes the name, and only then
// reaps the child: until it is reaped the PID is not reused, so the name
// always means the process pause is about to reap.
const ExitsFD = 3

// Exit is what pause writes to a watched process's exit file: waitid's
// si_code (CLD_EXITED, CLD_KILLED, CLD_DUMPED) and si_status (the exit
// code, or the signal).
type Exit struct {
	Code   int32
	Status int32
}

// ExitSize is an Exit's size on the wire.
const ExitSize = 8

// Exit.Code's values: the kernel's si_code of SIGCHLD (x/sys has no names
// for them).
const (
	CLDExited = 1 // exited: Status is the exit code
	CLDKilled = 2 // killed: Status is the signal
	CLDDumped = 3 // killed, and dumped core
)

// Siginfo is the kernel's siginfo_t as waitid fills it for a child, on
// amd64 (128 bytes): the signal (SIGCHLD), errno, si_code, the child's
// PID and real UID, and si_status.
type Siginfo struct {
	Signo  int32
	Errno  int32
	Code   int32
	_      int32
	Pid    int32
	UID    uint32
	Status int32
	_      [100]byte
}
