// pause is the PID 1 of a podsb pod: it holds the pod's namespaces, reaps
// every process that ends up as its child, and exits 0 on SIGTERM or SIGINT.
//
// It is freestanding (no libc, amd64 Linux only, its own _start) because its
// whole job is to exist in every pod: each page it maps is paid once per pod.
// There is no writable data, no heap and no TLS; the only memory it touches
// is the one page of code and the stack page(s) the kernel already wrote
// argv/envp/auxv to. Build it with build.sh, which also records why each
// compiler and linker flag is there.
//
// Kernel rules this program depends on:
//
//   - The init of a PID namespace is shielded from signals: a signal whose
//     disposition is SIG_DFL is dropped (not queued) for it, whether it comes
//     from inside the namespace or from host root in an ancestor namespace;
//     only SIGKILL and SIGSTOP from an ancestor are forced
//     (pid_namespaces(7), kernel/signal.c sig_task_ignored). A pause that
//     left SIGTERM at SIG_DFL could therefore not be stopped by `kill -TERM`.
//   - Blocked signals are never dropped as ignored, because the program may
//     unblock them later (kernel/signal.c sig_ignored). So instead of
//     installing handlers, pause blocks every signal and dequeues them
//     synchronously; SIGTERM and SIGINT then reach it even as a namespace
//     init, and no signal handler (or its stack frame) ever runs. (While it
//     sleeps in rt_sigtimedwait the kernel unblocks the waited-for set and
//     keeps the real mask in real_blocked, which sig_ignored also checks.)
//   - Standard signals do not queue: while SIGCHLD is pending, more children
//     dying add nothing. One SIGCHLD can stand for any number of zombies, so
//     every SIGCHLD drains wait4(WNOHANG) until nothing is left.
//   - An orphan is reparented to its nearest ancestor, in its own PID
//     namespace, marked as child subreaper, else to the namespace's init;
//     the kernel signals the new parent with SIGCHLD when it exits.
//   - When the init of a PID namespace exits, the kernel SIGKILLs every other
//     process in it, so exiting on SIGTERM tears the whole pod down.

typedef unsigned long sigset64;	// the kernel's sigset_t on amd64: 64 bits

enum {
	SYS_rt_sigprocmask = 14,
	SYS_getpid = 39,
	SYS_wait4 = 61,
	SYS_chdir = 80,
	SYS_rt_sigtimedwait = 128,
	SYS_prctl = 157,
	SYS_exit_group = 231,
	SYS_close_range = 436,

	SIG_BLOCK = 0,
	SIGINT = 2,
	SIGTERM = 15,
	SIGCHLD = 17,

	WNOHANG = 1,
	WALL = 0x40000000,	// __WALL: also clone children with another exit signal

	PR_SET_NAME = 15,
	PR_SET_CHILD_SUBREAPER = 36,
};

// Every signal. The kernel silently leaves SIGKILL and SIGSTOP out of both
// the blocked mask and the wait set.
static const sigset64 all = ~0UL;

// sys makes a system call with up to four arguments. The syscall instruction
// clobbers rcx (return address) and r11 (flags); "memory" because the kernel
// reads and writes through the pointer arguments.
static inline __attribute__((always_inline)) long
sys(long nr, long a, long b, long c, long d)
{
	register long r10 __asm__("r10") = d;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10)
			 : "rcx", "r11", "memory");
	return ret;
}

// reap collects every child that has exited, without waiting for the ones
// still running. It stops at 0 (children left, none dead) or an error
// (ECHILD: no children at all).
static inline __attribute__((always_inline)) void reap(void)
{
	while (sys(SYS_wait4, -1, 0, WNOHANG | WALL, 0) > 0)
		;
}

__attribute__((noreturn, used)) static void run(void)
{
	// Block first, so that nothing sent while pause starts up is lost.
	sys(SYS_rt_sigprocmask, SIG_BLOCK, (long)&all, 0, sizeof all);

	// Outside a new PID namespace, orphans would go to the host's init: as a
	// subreaper pause still adopts (and reaps) its descendants' orphans. Set
	// it before anything else can let a descendant go on and exit.
	if (sys(SYS_getpid, 0, 0, 0, 0) != 1)
		sys(SYS_prctl, PR_SET_CHILD_SUBREAPER, 1, 0, 0);

	// A cwd inside the pod's filesystem would pin that directory and make
	// unmounting it fail with EBUSY.
	sys(SYS_chdir, (long)"/", 0, 0, 0);

	// Nothing but stdio may leak in from the launcher: an inherited fd could
	// keep a host file, a namespace or a pipe alive for the pod's lifetime.
	// (close_range is Linux 5.9+; before, the call fails and fds stay.)
	sys(SYS_close_range, 3, ~0U, 0, 0);

	// Executed from a memfd, comm would be the fd number or "memfd:pause".
	sys(SYS_prctl, PR_SET_NAME, (long)"pause", 0, 0);

	// Zombies inherited across execve whose SIGCHLD the previous program
	// already consumed would otherwise wait for the next child to die.
	reap();

	// rt_sigtimedwait rather than signalfd: it needs no fd (pause holds only
	// 0, 1 and 2) and, with a NULL siginfo, no buffer; signalfd would need
	// both, and a read buffer of 128 bytes per signal. With no timeout it
	// sleeps in the kernel until a signal in the set is pending, so pause
	// uses no CPU while nothing happens. An error (EINTR after SIGSTOP and
	// SIGCONT) just goes round the loop again.
	for (;;) {
		long sig = sys(SYS_rt_sigtimedwait, (long)&all, 0, 0, sizeof all);

		if (sig == SIGTERM || sig == SIGINT)
			sys(SYS_exit_group, 0, 0, 0, 0);
		if (sig == SIGCHLD)
			reap();
		// Any other signal has been dequeued, and so ignored.
	}
}

// The kernel enters at _start with rsp pointing at argc, 16-byte aligned.
// Clear the frame pointer (end of the call chain), keep the alignment the
// ABI promises to run, and never return: there is nowhere to return to.
__asm__(".text\n"
	".globl _start\n"
	".type _start, @function\n"
	"_start:\n"
	"	xor %ebp, %ebp\n"
	"	and $-16, %rsp\n"
	"	call run\n"
	"	hlt\n");
