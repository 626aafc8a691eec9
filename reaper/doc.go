// Package reaper owns a pod's PID 1: pause, a tiny program that holds the
// pod's namespaces, reaps every orphan the kernel hands it, and exits 0 on
// SIGTERM or SIGINT (killing the rest of the pod's PID namespace with it).
//
// Pause is not Go. It runs in every pod for the pod's whole life, so its
// memory is paid once per pod; a Go runtime costs megabytes, while pause is
// a freestanding static C program (pause/pause.c: no libc, raw system calls,
// one page of code and no writable data) whose proportional set size is 8 to
// 16 KiB: that page plus the one to three stack pages the kernel writes
// argv and auxv to (catatonit -P: about 700 KiB). Its image,
// pause/pause-amd64, is built by pause/build.sh and committed, so building
// podsb needs no C compiler; TestPauseImageUpToDate checks the committed
// image against its source, byte for byte, with the compiler and linker
// recorded in pause/COMPILER; with another compiler, this package's tests
// run a fresh build of pause.c instead. pause.c includes
// internal/setup/setup.h, the contract generated from Go. pause makes
// itself non-dumpable, so that a pod's processes cannot ptrace it.
//
// The image is embedded in the podsb binary and executed from a sealed memfd
// (Memfd, then Exec), so nothing has to exist inside the pod's root
// filesystem, and no process in the pod can rewrite the program its PID 1
// runs, even through /proc/1/exe: the memfd's contents are sealed.
//
// Started with a second argument, the same program is first the pod's init:
// it reads a program of operations from fd 3 (package internal/setup: the
// mounts, device nodes, files, hostname, loopback and pivot_root that podsb
// planned in Go), executes them, reports a failure on fd 4 or closes it on
// success, and then becomes pause. So no Go runtime ever starts inside a
// pod, and creating one costs one exec of a program of a few KiB.
//
// Pause's own kernel rules (why a namespace init must wait for SIGTERM
// explicitly, why each SIGCHLD drains every zombie) are in the comments of
// pause/pause.c.
//
// Privileges: Image and Memfd need none. Exec needs none either, but the
// process it replaces is normally the first process of new namespaces, which
// only root (CAP_SYS_ADMIN) can create.
//
// Threads: Exec replaces the whole process, so it must be called where
// nothing else in the process still matters. podsb itself starts pause with
// a fork and exec of /proc/self/fd/N instead (package sandbox).
//
// Only linux/amd64 has an image; elsewhere Image returns nil and Memfd fails
// with an error that wraps errors.ErrUnsupported.
package reaper
