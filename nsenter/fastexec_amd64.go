package nsenter

// fastEntry and fastBlob are the C part of podsb exec that runs before the
// Go runtime starts (nsenter/fastexec/fastexec.c, built into
// fastexec_amd64.s by nsenter/fastexec/build.sh). They are the podsb
// binary's ELF entry point only when it is linked with
// -ldflags=-E=podsb/nsenter.fastEntry, as the Makefile does; in any other
// program they are never called.
//
// Why: an exec that attaches one command to a pod is a few system calls,
// and a Go program takes a millisecond or more to start. For the common
// form of podsb exec, fastBlob does the job itself from the pod's join
// record (written by package sandbox) and exits; for anything else it
// returns at once and the Go program runs.
func fastEntry()

func fastBlob()

var _, _ = fastEntry, fastBlob
