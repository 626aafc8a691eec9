// pause is the PID 1 of a podsb pod: it holds the pod's namespaces, reaps
// every process that ends up as its child (first recording the exits of the
// ones podsb watches: record), and exits 0 on SIGTERM or SIGINT.
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
//   - waitid with WNOWAIT reports a dead child and leaves it a zombie: its
//     PID is not free for another process until wait4 reaps it.

#include "../../internal/setup/setup.h"	// generated from Go: go generate ./internal/setup

// setup closes the program's fd once it has read it, so the exits
// directory can take its number; every fd above it is closed after setup.
_Static_assert(EXITS_FD == PROGRAM_FD && EXITS_FD < STATUS_FD, "EXITS_FD");

typedef unsigned long sigset64;	// the kernel's sigset_t on amd64: 64 bits

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

// sys6 is sys with five or six arguments (mount, mmap).
static inline __attribute__((always_inline)) long
sys6(long nr, long a, long b, long c, long d, long e, long f)
{
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

// record gives the exit of the child si describes to the file its PID
// names in the pod's exits directory (EXITS_FD), if there is one: podsb
// links a detached container's exit file there before the container runs.
// It writes the record, then removes the name; the child is still a zombie
// (waitid's WNOWAIT), so its PID cannot have been reused and the name can
// only be its own. A process nobody watches costs one openat (ENOENT), a
// pause without the directory one as well (EBADF).
static void record(const struct k_siginfo *si)
{
	struct exit e = { .code = si->code, .status = si->status };
	char buf[12], *name = buf + sizeof buf - 1;
	unsigned pid = (unsigned)si->pid;
	long fd;

	*name = 0;
	do
		*--name = (char)('0' + pid % 10);
	while ((pid /= 10) != 0);
	fd = sys(SYS_OPENAT, EXITS_FD, (long)name, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0);
	if (fd < 0)
		return;
	sys(SYS_WRITE, fd, (long)&e, sizeof e, 0);
	sys(SYS_CLOSE, fd, 0, 0, 0);
	sys(SYS_UNLINKAT, EXITS_FD, (long)name, 0, 0);
}

// reap collects every child that has exited, without waiting for the ones
// still running, recording each exit first. It stops when waitid finds no
// dead child (si.pid stays 0) or fails (ECHILD: no children at all).
static void reap(void)
{
	for (;;) {
		struct k_siginfo si;

		si.pid = 0;
		if (sys6(SYS_WAITID, P_ALL, 0, (long)&si, WEXITED | WNOHANG | WNOWAIT | WALL, 0, 0) < 0 || si.pid <= 0)
			return;
		record(&si);
		sys(SYS_WAIT4, si.pid, 0, WNOHANG | WALL, 0);
	}
}


// close_from closes every fd from first on: close_range (Linux 5.9), else
// one by one up to the usual limit, so that no fd ever stays open by the
// kernel's age.
static void close_from(unsigned first)
{
	if (sys(SYS_CLOSE_RANGE, first, ~0U, 0, 0) == 0)
		return;
	for (unsigned fd = first; fd < 4096; fd++)
		sys(SYS_CLOSE, fd, 0, 0, 0);
}

// ---- Setup mode -------------------------------------------------------
//
// Started with a second argument, pause is first the pod's init: it reads a
// program of operations from fd 3 (planned by podsb in Go; the format is
// documented in internal/setup), executes them in order inside the pod's
// new namespaces, and only then becomes pause. On failure it writes the
// index of the failed operation and the errno to fd 4 and exits 1; on
// success it says nothing: closing fd 4 (below, with every fd above 2 but
// the exits directory) is
// the launcher's signal that the pod is ready.


struct op {
	unsigned code, flags;
	unsigned long num;
	unsigned nstr;
	const char *str[MAX_STRINGS];
	unsigned len[MAX_STRINGS];	// including the NUL
};

// parse reads one operation at *pp (before end) into o; 0 on success.
static int parse(const unsigned char **pp, const unsigned char *end, struct op *o)
{
	const unsigned char *p = *pp;

	const struct op_header *h = (const void *)p;

	if ((unsigned long)(end - p) < sizeof *h)
		return -1;
	o->code = h->code;
	o->flags = h->flags;
	o->num = h->num;
	o->nstr = h->n_str;
	p += sizeof *h;
	if (o->nstr > MAX_STRINGS)
		return -1;
	for (unsigned i = 0; i < MAX_STRINGS; i++)
		o->str[i] = 0, o->len[i] = 0;
	for (unsigned i = 0; i < o->nstr; i++) {
		unsigned n;

		if ((unsigned long)(end - p) < sizeof(struct string_header))
			return -1;
		n = ((const struct string_header *)p)->len;
		p += sizeof(struct string_header);
		if (n == 0 || (unsigned long)(end - p) < n || p[n - 1] != 0)
			return -1;
		o->str[i] = (const char *)p;
		o->len[i] = n;
		p += n;
	}
	*pp = p;
	return 0;
}

// arg returns string i, or NULL for an empty or missing one.
static const char *arg(const struct op *o, unsigned i)
{
	return i < o->nstr && o->len[i] > 1 ? o->str[i] : 0;
}

static long write_file(const char *path, const char *data, unsigned long n, long mode)
{
	long fd = sys(SYS_OPENAT, AT_FDCWD, (long)path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	if (fd < 0)
		return fd;
	while (n > 0) {
		long w = sys(SYS_WRITE, fd, (long)data, n, 0);

		if (w == -EINTR)
			continue;
		if (w < 0) {
			sys(SYS_CLOSE, fd, 0, 0, 0);
			return w;
		}
		data += w;
		n -= w;
	}
	return sys(SYS_CLOSE, fd, 0, 0, 0);
}

// struct ifreq of the SIOC[GS]IFFLAGS ioctls: a name, then the flags.
struct ifreq_flags {
	char name[16];
	short flags;
	char pad[22];
};

static long loopback_up(void)
{
	struct ifreq_flags ifr = { .name = "lo" };
	long fd = sys(SYS_SOCKET, AF_INET, SOCK_DGRAM | O_CLOEXEC, 0, 0);
	long r;

	if (fd < 0)
		return fd;
	r = sys(SYS_IOCTL, fd, SIOCGIFFLAGS, (long)&ifr, 0);
	if (r == 0) {
		ifr.flags |= IFF_UP;
		r = sys(SYS_IOCTL, fd, SIOCSIFFLAGS, (long)&ifr, 0);
	}
	sys(SYS_CLOSE, fd, 0, 0, 0);
	return r;
}

// remount_attr adds a flag (MOUNT_ATTR_RDONLY and MS_RDONLY, or
// MOUNT_ATTR_NODEV and MS_NODEV) to the mount at path, and to every mount
// below it if recursive (mount_setattr, Linux 5.12; before, only the top
// one). A bind remount replaces the per-mount flags, so read-only, nosuid,
// nodev and noexec are read back (statfs reports them in the same bits as
// mount takes) and kept.
static long remount_attr(const char *path, unsigned long recursive, unsigned long attr_set, unsigned long ms_flag)
{
	struct k_statfs st;
	long r;

	if (recursive) {
		struct k_mount_attr attr = { .attr_set = attr_set };

		r = sys6(SYS_MOUNT_SETATTR, AT_FDCWD, (long)path, AT_RECURSIVE, (long)&attr, sizeof attr, 0);
		if (r != -ENOSYS)
			return r;
	}
	if ((r = sys(SYS_STATFS, (long)path, (long)&st, 0, 0)) < 0)
		return r;
	return sys6(SYS_MOUNT, 0, (long)path, 0,
		    MS_BIND | MS_REMOUNT | ms_flag | (st.flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)), 0, 0);
}

// pivot makes dir the root: pivot_root(".", ".") stacks the old root under
// the new one at the same place, so no put_old directory is needed; the old
// root is made a slave (its unmount must not reach the host's mounts) and
// detached, so nothing of the host stays reachable.
static long pivot(const char *dir)
{
	long old = sys(SYS_OPENAT, AT_FDCWD, (long)"/", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	long r;

	if (old < 0)
		return old;
	if ((r = sys(SYS_CHDIR, (long)dir, 0, 0, 0)) < 0 ||
	    (r = sys(SYS_PIVOT_ROOT, (long)".", (long)".", 0, 0)) < 0 ||
	    (r = sys(SYS_FCHDIR, old, 0, 0, 0)) < 0 ||
	    (r = sys6(SYS_MOUNT, 0, (long)".", 0, MS_SLAVE | MS_REC, 0, 0)) < 0 ||
	    (r = sys(SYS_UMOUNT2, (long)".", MNT_DETACH, 0, 0)) < 0)
		goto out;
	r = sys(SYS_CHDIR, (long)"/", 0, 0, 0);
out:
	sys(SYS_CLOSE, old, 0, 0, 0);
	return r;
}

// report writes a record to the status fd.
static void report(unsigned index, int err)
{
	struct report r = { index, err };

	sys(SYS_WRITE, STATUS_FD, (long)&r, sizeof r, 0);
}

// atou parses a decimal number.
static unsigned long atou(const char *s)
{
	unsigned long n = 0;

	while (*s >= '0' && *s <= '9')
		n = n * 10 + (unsigned long)(*s++ - '0');
	return n;
}

// set_ids drops to the command's user: supplementary groups, group, user.
static long set_ids(const struct op *o)
{
	unsigned groups[MAX_STRINGS];
	long r;

	for (unsigned i = 0; i < o->nstr; i++)
		groups[i] = atou(o->str[i]);
	if ((r = sys(SYS_SETGROUPS, o->nstr, (long)groups, 0, 0)) < 0 ||
	    (r = sys(SYS_SETGID, o->num >> 32, 0, 0, 0)) < 0)
		return r;
	return sys(SYS_SETUID, o->num & 0xffffffff, 0, 0, 0);
}

// run_command executes the command of an Exec operation: str[0] is the
// program (looked up in PATH unless it holds a slash), the rest its argv.
// It returns only on failure. The status fd closes on exec: end of file is
// the launcher's sign of success.
static long run_command(const struct op *o, char **envp)
{
	static const sigset64 none = 0;
	const char *argv[MAX_STRINGS + 1];
	const char *file = o->str[0], *path = DEFAULT_PATH;	// sandbox.DefaultPath
	char buf[4096];
	long err = -ENOENT;

	for (unsigned i = 1; i < o->nstr; i++)
		argv[i - 1] = o->str[i];
	argv[o->nstr - 1] = 0;
	sys(SYS_FCNTL, STATUS_FD, F_SETFD, FD_CLOEXEC, 0);
	close_from(GO_FD);
	sys(SYS_RT_SIGPROCMASK, SIG_SETMASK, (long)&none, 0, sizeof none);
	for (const char *c = file; *c; c++)
		if (*c == '/')
			return sys(SYS_EXECVE, (long)file, (long)argv, (long)envp, 0);
	for (char **e = envp; *e; e++)
		if (e[0][0] == 'P' && e[0][1] == 'A' && e[0][2] == 'T' && e[0][3] == 'H' && e[0][4] == '=')
			path = *e + 5;
	// As execvp: each directory of PATH in turn; EACCES wins over ENOENT.
	while (*path) {
		unsigned long n = 0, f = 0;
		long r;

		while (path[n] && path[n] != ':' && n < sizeof buf - 2)
			buf[n] = path[n], n++;
		if (n == 0)
			buf[n++] = '.';
		buf[n++] = '/';
		while (file[f] && n < sizeof buf - 1)
			buf[n++] = file[f++];
		buf[n] = 0;
		r = sys(SYS_EXECVE, (long)buf, (long)argv, (long)envp, 0);
		if (r == -EACCES)
			err = r;
		while (*path && *path != ':')
			path++;
		if (*path == ':')
			path++;
	}
	return err;
}

// bound_caps keeps only the capabilities in keep in the bounding set, so no
// program executed later can regain the others, and clears the ambient set.
static long bound_caps(unsigned long keep)
{
	for (int c = 0; c < 64; c++) {
		if (keep >> c & 1)
			continue;
		long r = sys(SYS_PRCTL, PR_CAPBSET_DROP, c, 0, 0);

		if (r < 0 && r != -EINVAL)	// EINVAL: past the kernel's last cap
			return r;
	}
	return sys6(SYS_PRCTL, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0, 0);
}

// set_caps makes keep the effective, permitted and inheritable sets. (A
// setuid to a non-root user has already emptied them, as the kernel does.)
static long set_caps(unsigned long keep)
{
	struct k_cap_header head = { .version = LINUX_CAPABILITY_VERSION_3 };
	struct k_cap_data data[2] = {	// caps 0-31, then 32-63
		{ .effective = (unsigned)keep, .permitted = (unsigned)keep },
		{ .effective = (unsigned)(keep >> 32), .permitted = (unsigned)(keep >> 32) },
	};

	return sys(SYS_CAPSET, (long)&head, (long)data, 0, 0);
}

static long exec_op(const struct op *o, char **envp)
{
	long r, o2;

	switch (o->code) {
	case OP_MOUNT:
		return sys6(SYS_MOUNT, (long)arg(o, 0), (long)arg(o, 1), (long)arg(o, 2), o->num, (long)arg(o, 3), 0);
	case OP_MKDIR:
		r = sys(SYS_MKDIRAT, AT_FDCWD, (long)arg(o, 0), o->num, 0);
		return r == -EEXIST ? 0 : r;
	case OP_MKNOD:
		return sys(SYS_MKNOD, (long)arg(o, 0), o->num & 0xffffffff, o->num >> 32, 0);
	case OP_SYMLINK:
		return sys(SYS_SYMLINK, (long)arg(o, 0), (long)arg(o, 1), 0, 0);
	case OP_WRITE:
		return write_file(arg(o, 0), o->str[1], o->nstr > 1 ? o->len[1] - 1 : 0, o->num);
	case OP_TOUCH:
		r = sys(SYS_OPENAT, AT_FDCWD, (long)arg(o, 0), O_WRONLY | O_CREAT | O_CLOEXEC, o->num);
		return r < 0 ? r : sys(SYS_CLOSE, r, 0, 0, 0);
	case OP_REMOUNT_RO:
		return remount_attr(arg(o, 0), o->num, MOUNT_ATTR_RDONLY, MS_RDONLY);
	case OP_NO_DEV:
		return remount_attr(arg(o, 0), 1, MOUNT_ATTR_NODEV, MS_NODEV);
	case OP_HOSTNAME:
		return sys(SYS_SETHOSTNAME, (long)arg(o, 0), o->len[0] - 1, 0, 0);
	case OP_LOOPBACK_UP:
		return loopback_up();
	case OP_PIVOT:
		return pivot(arg(o, 0));
	case OP_OPEN_TREE:
		r = sys(SYS_OPEN_TREE, AT_FDCWD, (long)arg(o, 0), OPEN_TREE_CLONE | O_CLOEXEC, 0);
		if (r < 0 || r == (long)o->num)
			return r < 0 ? r : 0;
		o2 = sys(SYS_DUP3, r, o->num, O_CLOEXEC, 0);
		sys(SYS_CLOSE, r, 0, 0, 0);
		return o2 < 0 ? o2 : 0;
	case OP_SET_NS:
		return sys(SYS_SETNS, o->num, 0, 0, 0);
	case OP_MOVE_MOUNT:
		return sys6(SYS_MOVE_MOUNT, o->num, (long)"", AT_FDCWD, (long)arg(o, 0), MOVE_MOUNT_F_EMPTY_PATH, 0);
	case OP_SYNC: {
		char c;

		report(REPORT_SYNCED, 0);
		while ((r = sys(SYS_READ, GO_FD, (long)&c, 1, 0)) == -EINTR)
			;
		// The go-ahead is a byte. End of file without one means podsb
		// died before it recorded this process: go no further.
		return r == 1 ? 0 : r < 0 ? r : -EPIPE;
	}
	case OP_SPAWN:
		// fork, with the namespace flags Go put above bit 0 of Num.
		r = sys(SYS_CLONE, SIGCHLD | (o->num & ~1UL), 0, 0, 0);
		if (r > 0) {
			report(REPORT_SPAWNED, r);
			sys(SYS_EXIT_GROUP, 0, 0, 0, 0);
		}
		if (r < 0)
			return r;
		sys(SYS_SETSID, 0, 0, 0, 0);
		// A new session has no controlling terminal: with Num 1, the
		// terminal at fd 0 becomes its.
		return o->num & 1 ? sys(SYS_IOCTL, 0, TIOCSCTTY, 0, 0) : 0;
	case OP_SET_IDS:
		return set_ids(o);
	case OP_CHDIR:
		return sys(SYS_CHDIR, (long)arg(o, 0), 0, 0, 0);
	case OP_PDEATHSIG:
		return sys(SYS_PRCTL, PR_SET_PDEATHSIG, SIGKILL, 0, 0);
	case OP_CAPS:
		return bound_caps(o->num);
	case OP_CAP_SET:
		return set_caps(o->num);
	case OP_SECCOMP: {
		// The number of 8-byte instructions, and where they are. The
		// kernel copies the program.
		struct k_sock_fprog prog = { .len = (unsigned short)((o->len[0] - 1) / 8), .filter = o->str[0] };

		return sys6(SYS_PRCTL, PR_SET_SECCOMP, SECCOMP_MODE_FILTER, (long)&prog, 0, 0, 0);
	}
	case OP_NO_NEW_PRIVS:
		return sys6(SYS_PRCTL, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0);	// unused arguments must be 0
	case OP_EXEC:
		return o->nstr < 2 ? -EINVAL : run_command(o, envp);
	}
	return -EINVAL;	// an operation this init does not know
}

__attribute__((noreturn)) static void fail(unsigned index, long err)
{
	report(index, -err);
	sys(SYS_EXIT_GROUP, 1, 0, 0, 0);
	__builtin_unreachable();
}

// VDSO_SPAN bounds the vvar pages and the vDSO above setup's buffer.
#define VDSO_SPAN (64 << 10)

// setup reads the program from PROGRAM_FD and executes it.
static void setup(char **envp)
{
	unsigned char *buf = (unsigned char *)sys6(SYS_MMAP, 0, MAX_PROGRAM, PROT_READ | PROT_WRITE,
						    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	const unsigned char *p, *end;
	unsigned long n = 0;
	unsigned index = 0;

	if ((long)buf < 0 && (long)buf > -4096)
		fail(0, (long)buf);
	for (;;) {
		long r = sys(SYS_READ, PROGRAM_FD, (long)(buf + n), MAX_PROGRAM - n, 0);

		if (r == -EINTR)
			continue;
		if (r < 0)
			fail(0, r);
		if (r == 0)
			break;
		n += r;
		if (n == MAX_PROGRAM)
			fail(0, -E2BIG);
	}
	// No program: the launcher died before it sent one. Nothing is
	// set up and nothing refers to this process: go.
	if (n == 0)
		sys(SYS_EXIT_GROUP, 1, 0, 0, 0);
	// The program is read: its fd is free for the exits directory
	// (EXITS_FD), which an operation may open there.
	sys(SYS_CLOSE, PROGRAM_FD, 0, 0, 0);
	// Modes in the program are exact.
	sys(SYS_UMASK, 0, 0, 0, 0);
	for (p = buf, end = buf + n; p < end; index++) {
		struct op o;
		long r;

		if (parse(&p, end, &o) < 0)
			fail(index, -EINVAL);
		r = exec_op(&o, envp);
		if (r < 0 && !(o.flags & OP_OPTIONAL))
			fail(index, r);
	}
	// The kernel placed the buffer top-down, right below the vDSO and
	// its vvar pages (at most 64 KiB on amd64), which pause never uses
	// (it makes every system call itself): unmapping them with it frees
	// the three page-table pages (12 KiB) of that corner of the address
	// space. Above them is only the gap below the stack, so nothing else
	// can be hit; where the vDSO is elsewhere, the extra range is a hole.
	sys(SYS_MUNMAP, (long)buf, MAX_PROGRAM + VDSO_SPAN, 0, 0);

	// Stdio came from the host (its /dev/null): trade it for the pod's.
	long null = sys(SYS_OPENAT, AT_FDCWD, (long)"/dev/null", O_RDWR | O_CLOEXEC, 0);
	if (null >= 0) {
		for (int fd = 0; fd < 3; fd++)
			sys(SYS_DUP3, null, fd, 0, 0);
		sys(SYS_CLOSE, null, 0, 0, 0);
	}
}


// is tells whether the string s is word.
static int is(const char *s, const char *word)
{
	while (*s && *s == *word)
		s++, word++;
	return *s == *word;
}

// run is entered from _start with the initial stack: argc, then argv.
__attribute__((noreturn, used)) static void run(long *sp)
{
	long argc = sp[0];
	char **argv = (char **)(sp + 1);

	// Block first, so that nothing sent while pause starts up is lost.
	sys(SYS_RT_SIGPROCMASK, SIG_BLOCK, (long)&all, 0, sizeof all);

	// Not dumpable: a process of the pod runs as root with the same
	// capabilities as pause, which would let it ptrace pause (and so run
	// code as the pod's PID 1, or read the program of "pause run" before
	// it drops its privileges). A process that is not dumpable can be
	// traced only with CAP_SYS_PTRACE, which a pod does not have by
	// default. execve makes the command of "pause run" dumpable again.
	sys(SYS_PRCTL, PR_SET_DUMPABLE, 0, 0, 0);

	if (argc > 1 && is(argv[1], "run")) {
		// A container's init: the program ends by executing the
		// command; one that does not simply ends.
		setup(argv + argc + 1);
		sys(SYS_EXIT_GROUP, 0, 0, 0, 0);
	}
	if (argc > 1) {
		setup(argv + argc + 1);
		// Leave the command line as plain "pause" for ps and top.
		for (char *c = argv[1]; *c; c++)
			*c = 0;
	}

	// Outside a new PID namespace, orphans would go to the host's init: as a
	// subreaper pause still adopts (and reaps) its descendants' orphans. Set
	// it before anything else can let a descendant go on and exit.
	if (sys(SYS_GETPID, 0, 0, 0, 0) != 1)
		sys(SYS_PRCTL, PR_SET_CHILD_SUBREAPER, 1, 0, 0);

	// A cwd inside the pod's filesystem would pin that directory and make
	// unmounting it fail with EBUSY.
	sys(SYS_CHDIR, (long)"/", 0, 0, 0);

	// Nothing but stdio may leak in from the launcher: an inherited fd could
	// keep a host file, a namespace or a pipe alive for the pod's lifetime.
	// After setup, the exits directory its program opened, if any, stays;
	// closing the status fd is the launcher's sign that the pod is ready.
	close_from(argc > 1 ? EXITS_FD + 1 : 3);

	// Executed from a memfd, comm would be the fd number or "memfd:pause".
	sys(SYS_PRCTL, PR_SET_NAME, (long)"pause", 0, 0);

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
		long sig = sys(SYS_RT_SIGTIMEDWAIT, (long)&all, 0, 0, sizeof all);

		if (sig == SIGTERM || sig == SIGINT)
			sys(SYS_EXIT_GROUP, 0, 0, 0, 0);
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
	"	mov %rsp, %rdi\n"
	"	and $-16, %rsp\n"
	"	call run\n"
	"	hlt\n");
