// Package fastexec is podsb's fast path: the common form of `podsb exec`,
// run before the Go runtime starts.
//
//	podsb [--root DIR | --root=DIR] exec [-i | --interactive] POD [--] CMD [ARG...]
//
// A Go program takes a millisecond or more to start, more than the rest of
// such an exec. So make build compiles c/fastexec.c, a freestanding C
// function (no libc, no writable data, no relocations), with whatever C
// compiler is present (c/build.sh: gcc or clang) into blob_amd64.s, which is
// not committed, and links podsb with -tags fastexec and
// -ldflags=-E=github.com/podsb/podsb/fastexec.entry: entry runs first, on the process's
// only thread, and either runs the command and exits, or returns and the Go
// program starts as if it had not been there. Without a C compiler, and for
// a plain go build or go install, there is no fast path: the same commands,
// in Go. PODSB_FASTEXEC=0 in the environment turns it off.
//
// C executes, Go decides. The C part recognises the command line above and
// runs what Go recorded in the pod's join record, appending the command as
// an Exec operation; it has no naming, validation or error messages of its
// own. Whenever anything is not as the record says, it undoes what it did
// and returns, and Go does the exec and reports (see c/fastexec.c).
//
// What the C part reads, all written by package sandbox, none through a Go
// import (the Makefile's lint rule lists these edges):
//
//   - the state root (--root, $PODSB_ROOT, or sandbox.DefaultRoot), used
//     only if it is owned by root and not writable by group or others;
//   - ROOT/NAME/ and ROOT/NAME/join, the join record (sandbox writes it at
//     create and start; internal/setup.Join is its format), opened with
//     openat2 below the state root without following symlinks, and used
//     only if both are owned by root and not writable by group or others
//     and the record names NAME;
//   - the namespace handles the record names (ROOT/NAME/ns/pid, uts, ipc,
//     net, mnt), opened likewise;
//   - /proc/sys/kernel/random/boot_id, /proc/PID/stat and /proc/PID/ns/pid
//     of the recorded pause, which must be alive (its start time in this
//     boot) with the PID namespace pinned in ns/pid, and /proc/self/ns/pid;
//   - in the pod, /dev/null (without -i) and the recorded directory.
//
// It is built from internal/setup/setup.h (the operation codes, records,
// fds and limits it shares with Go and pause.c, generated from Go) and
// includes the committed pause image, reaper/pause/pause-amd64, which it
// executes from a sealed memfd as "pause run", as sandbox.Pod.Exec does.
//
// Two more forms, for rootless podsb (package sandbox, rootless_linux.go),
// run whatever the command line: with PODSB_USERNS_FD=N in the
// environment (sandbox.UserNSFDEnv), the entry point joins the user
// namespace at fd N, closes it and goes on in there as the namespace's
// root, to the common form above (the rootless exec that set the variable
// gives the state root in PODSB_ROOT) or to Go (a failure to join joins
// nothing, and Go reports). A rootless pod's join record has
// setup.JoinProcNS: its handles are pause's /proc/PID/ns files, each used
// only with its recorded inode; the command is forked by a helper that
// joins the pod's PID namespace, as this process's child (CLONE_PARENT),
// since the process could not join the host's PID namespace again, and Go
// could start no thread with its children's in the pod's. With PODSB_USERNS_WAIT=N
// (sandbox.UserNSWaitEnv), it waits for one byte on fd N (its maps
// written) and executes /proc/self/exe again without the variable, now
// the namespace's root with its capabilities; end of file exits 125.
// Without the fast path linked, neither works, and rootless exec and
// rootless creates with subordinate IDs fail with a message that says so.
//
// Privileges: root (setns), except for the two forms above. amd64 only.
package fastexec
