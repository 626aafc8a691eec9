// fastexec: the common form of `podsb exec`, before the Go runtime starts.
//
// podsb's ELF entry point, when it is built with this file (make build; see
// package fastexec), calls fast_exec on the process's initial stack,
// single-threaded, with no libc and no Go runtime. For
//
//	podsb [--root DIR | --root=DIR] exec [-i | --interactive] POD [--] CMD [ARG...]
//
// it runs the command in the pod and exits with its status. For anything
// else it returns, and the Go program starts as if this file did not exist.
//
// C executes, Go decides. Go wrote the pod's join record (package
// internal/setup, type Join): the pod's name, pause's identity, the
// namespace handles to join, the command's environment and directory, and
// the program of operations that pause run executes before the command.
// This file only recognises the command line above, checks that the record
// is one it may trust and that it describes this pod and its live pause,
// appends the command to the program as an Exec operation, and starts it.
// It has no rules of its own: it writes no error message, and whenever
// anything is not as the record says (no record, a record it may not
// trust, a failed system call, an operation of the program that fails,
// the command not found) it undoes what it did and returns, and the Go
// program does the exec and reports. Only if it cannot undo (the PID
// namespace cannot be left) does it exit, with one line.
//
// The record is used only if the state root, the pod's directory and the
// record are owned by root and not writable by group or others, and the
// record is reached by openat2 below the state root without symlinks; if
// its name is the POD of the command line; if pause (its PID and start
// time, in the recorded boot) is alive; if pause's PID namespace is the
// one pinned in the handle the record names; if every handle is a namespace
// file; and if no stdio fd the command inherits is a directory, a symbolic
// link or an O_PATH fd. A rootless pod's record (JOIN_PROC_NS), read once
// this process has joined the pod's user namespace (where the user's files
// are root's), names pause's own /proc/PID/ns files instead of pinned
// handles, each used only if it has the recorded inode.
//
// Rules for this file: no writable global data (it is copied into the Go
// binary's read-only text), no libc, nothing that needs relocation.

#include "../../internal/setup/setup.h"

typedef unsigned long u64;
typedef unsigned int u32;
typedef long i64;

static i64 sys6(i64 n, i64 a, i64 b, i64 c, i64 d, i64 e, i64 f)
{
	register i64 r10 __asm__("r10") = d;
	register i64 r8 __asm__("r8") = e;
	register i64 r9 __asm__("r9") = f;
	i64 r;

	__asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return r;
}

static i64 sys(i64 n, i64 a, i64 b, i64 c) { return sys6(n, a, b, c, 0, 0, 0); }

static __attribute__((noreturn)) void quit(int code)
{
	for (;;)
		sys(SYS_EXIT_GROUP, code, 0, 0);
}

// The compiler may call these for copies and clears of its own.
void *memcpy(void *d, const void *s, u64 n)
{
	for (u64 i = 0; i < n; i++)
		((char *)d)[i] = ((const char *)s)[i];
	return d;
}

void *memset(void *d, int c, u64 n)
{
	for (u64 i = 0; i < n; i++)
		((char *)d)[i] = (char)c;
	return d;
}

static u64 len(const char *s)
{
	u64 n = 0;

	while (s[n])
		n++;
	return n;
}

static int same(const char *a, const char *b, u64 n)
{
	for (u64 i = 0; i < n; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

static int eq(const char *a, const char *b)
{
	u64 n = len(a);

	return n == len(b) && same(a, b, n);
}

// prefix returns the part of s after p, or 0 if s does not start with p.
static const char *prefix(const char *s, const char *p)
{
	while (*p)
		if (*s++ != *p++)
			return 0;
	return s;
}

// A bounded buffer on the stack. put copies what fits, and marks the
// buffer over if anything did not.
struct buf {
	char *p;
	u64 n, cap;
	int over;
};

static void put(struct buf *b, const void *s, u64 n)
{
	if (n > b->cap - b->n) {
		n = b->cap - b->n;
		b->over = 1;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
}

static void puts_(struct buf *b, const char *s) { put(b, s, len(s)); }

static void putnum(struct buf *b, i64 v)
{
	char d[24];
	int i = sizeof d;
	u64 u = v < 0 ? -(u64)v : (u64)v;

	do
		d[--i] = '0' + u % 10;
	while (u /= 10);
	if (v < 0)
		d[--i] = '-';
	put(b, d + i, sizeof d - i);
}

// fail reports the one failure this file cannot hand back to Go, on one
// line, and exits 125.
static __attribute__((noreturn)) void fail(const char *what, i64 err)
{
	char m[256];
	struct buf w = {m, 0, sizeof m - 1, 0};

	puts_(&w, "podsb: exec: ");
	puts_(&w, what);
	puts_(&w, ": errno ");
	putnum(&w, -err);
	m[w.n++] = '\n';
	sys(SYS_WRITE, 2, (i64)m, w.n);
	quit(125);
}

// readfd reads up to cap bytes of fd; it returns the length, or -1 on an
// error or if the file holds more.
static i64 readfd(i64 fd, char *p, u64 cap)
{
	i64 n = 0, r;
	char more;

	while ((u64)n < cap && (r = sys(SYS_READ, fd, (i64)(p + n), cap - n)) != 0)
		if (r > 0)
			n += r;
		else if (r != -EINTR)
			return -1;
	if ((u64)n == cap && sys(SYS_READ, fd, (i64)&more, 1) != 0)
		return -1;
	return n;
}

static i64 readfile(const char *path, char *p, u64 cap)
{
	i64 fd = sys6(SYS_OPENAT, AT_FDCWD, (i64)path, O_RDONLY | O_CLOEXEC, 0, 0, 0), n;

	if (fd < 0)
		return -1;
	n = readfd(fd, p, cap);
	sys(SYS_CLOSE, fd, 0, 0);
	return n;
}

// beneath opens path below the directory dirfd as openat2 with
// RESOLVE_BENEATH, RESOLVE_NO_SYMLINKS and RESOLVE_NO_MAGICLINKS does: no
// "..", absolute path or symbolic link can lead it elsewhere.
static i64 beneath(i64 dirfd, const char *path, u64 flags)
{
	struct k_open_how how = {
		.flags = flags | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};

	return sys6(SYS_OPENAT2, dirfd, (i64)path, (i64)&how, sizeof how, 0, 0);
}

// trusted tells whether fd is owned by root and not writable by group or
// others, and of the file type want.
static int trusted(i64 fd, u32 want)
{
	struct k_stat st;

	return sys(SYS_FSTAT, fd, (i64)&st, 0) == 0 && st.uid == 0 && !(st.mode & (S_IWGRP | S_IWOTH)) &&
	       (st.mode & S_IFMT) == want;
}

// strings counts the NUL-terminated strings in n bytes at p, or returns -1
// unless they end in a NUL.
static i64 strings(const char *p, u64 n)
{
	i64 c = 0;

	if (n > 0 && p[n - 1] != 0)
		return -1;
	for (u64 i = 0; i < n; i++)
		c += p[i] == 0;
	return c;
}

// A join record (internal/setup.Join) and the strings after its header.
struct join {
	struct join_header h;
	const char *name, *boot, *paths, *env, *dir, *prog;
};

static int parse(const char *p, u64 n, struct join *j)
{
	const char *end = p + n;

	if (n < sizeof j->h)
		return 0;
	memcpy(&j->h, p, sizeof j->h);
	p += sizeof j->h;
	if (!same(j->h.magic, JOIN_MAGIC, sizeof j->h.magic) || j->h.nns > MAX_JOIN_NS)
		return 0;
	u64 lens[] = {j->h.name_len, j->h.boot_len, j->h.path_len, j->h.env_len, j->h.dir_len, j->h.prog_len};
	const char **at[] = {&j->name, &j->boot, &j->paths, &j->env, &j->dir, &j->prog};
	for (int i = 0; i < 6; i++) {
		if (lens[i] > (u64)(end - p))
			return 0;
		*at[i] = p;
		p += lens[i];
	}
	return p == end && strings(j->paths, j->h.path_len) == j->h.nns &&
	       strings(j->env, j->h.env_len) == j->h.n_env && strings(j->dir, j->h.dir_len) == 1;
}

// starttime returns field 22 of /proc/PID/stat, the process's start time
// in clock ticks after boot, or 0.
static u64 starttime(u64 pid)
{
	char path[64], st[1024];
	struct buf b = {path, 0, sizeof path - 1, 0};
	u64 start = 0;
	i64 n, i, field = 2;

	puts_(&b, "/proc/");
	putnum(&b, pid);
	puts_(&b, "/stat");
	path[b.n] = 0;
	if ((n = readfile(path, st, sizeof st)) <= 0)
		return 0;
	for (i = n - 1; i > 0 && st[i] != ')'; i--)
		;
	for (i++; i < n && field < 22; i++)
		if (st[i] == ' ')
			field++;
	for (; i < n && st[i] >= '0' && st[i] <= '9'; i++)
		start = start * 10 + (st[i] - '0');
	return field == 22 ? start : 0;
}

// sameboot tells whether the n bytes at id are this boot's ID.
static int sameboot(const char *id, u64 n)
{
	char boot[64];
	i64 r = readfile("/proc/sys/kernel/random/boot_id", boot, sizeof boot);

	return r == (i64)n + 1 && boot[n] == '\n' && same(boot, id, n);
}

// pinned tells whether the namespace handle fd is pid's PID namespace.
static int pinned(i64 fd, u64 pid)
{
	char path[64];
	struct buf b = {path, 0, sizeof path - 1, 0};
	struct k_stat a, ns;

	puts_(&b, "/proc/");
	putnum(&b, pid);
	puts_(&b, "/ns/pid");
	path[b.n] = 0;
	return !b.over && sys(SYS_FSTAT, fd, (i64)&a, 0) == 0 &&
	       sys6(SYS_NEWFSTATAT, AT_FDCWD, (i64)path, (i64)&ns, 0, 0, 0) == 0 && a.dev == ns.dev && a.ino == ns.ino;
}

// nsfs tells whether fd is a namespace file. A handle that rm has just
// unmounted is the empty file under it: setns would fail with EINVAL, which
// Go, not this file, must explain.
static int nsfs(i64 fd)
{
	struct k_statfs fs;

	return sys(SYS_FSTATFS, fd, (i64)&fs, 0) == 0 && fs.type == NSFS_MAGIC;
}

// stdio_safe tells whether the standard fds the command inherits (0 only
// with -i) are neither a directory, a symbolic link nor an O_PATH
// descriptor, through which it could reach host files. Go refuses those,
// and says why.
static int stdio_safe(int interactive)
{
	for (int fd = interactive ? 0 : 1; fd < 3; fd++) {
		struct k_stat st;
		i64 fl = sys(SYS_FCNTL, fd, F_GETFL, 0);

		if (fl < 0 || sys(SYS_FSTAT, fd, (i64)&st, 0) < 0)
			return 0;
		if ((fl & O_PATH) || (st.mode & S_IFMT) == S_IFDIR || (st.mode & S_IFMT) == S_IFLNK)
			return 0;
	}
	return 1;
}

// putop appends an operation with the strings s[0..n) to b, in
// internal/setup's wire format.
static void putop(struct buf *b, u32 code, const char *const *s, u32 n)
{
	struct op_header h = {.code = code, .n_str = n};

	put(b, &h, sizeof h);
	for (u32 i = 0; i < n; i++) {
		struct string_header sh = {.len = len(s[i]) + 1};

		put(b, &sh, sizeof sh);
		put(b, s[i], sh.len);
	}
}

// moveFD gives the file fd the number to in a child about to exec.
static void moveFD(i64 fd, int to)
{
	if (fd == to)
		sys(SYS_FCNTL, fd, F_SETFD, 0);
	else
		sys(SYS_DUP3, fd, to, 0);
}

// pause_image to pause_end is the committed pause image
// (reaper/pause/pause-amd64), included whole.
// Hidden: addressed relative to the code, not through a GOT, which would
// need relocating.
extern const char pause_image[] __attribute__((visibility("hidden")));
extern const char pause_end[] __attribute__((visibility("hidden")));
__asm__(".section .rodata.pause,\"a\"\n"
	".globl pause_image\npause_image:\n"
	".incbin \"" PAUSE_IMAGE "\"\n"
	".globl pause_end\npause_end:\n"
	".previous\n");

// pause_memfd returns a sealed memfd holding the pause image, as
// reaper.Memfd makes it, or -errno.
static i64 pause_memfd(void)
{
	i64 fd = sys(SYS_MEMFD_CREATE, (i64)"pause", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC, 0);

	if (fd == -EINVAL) // before Linux 6.3, every memfd is executable
		fd = sys(SYS_MEMFD_CREATE, (i64)"pause", MFD_CLOEXEC | MFD_ALLOW_SEALING, 0);
	if (fd < 0)
		return fd;
	if (sys(SYS_WRITE, fd, (i64)pause_image, pause_end - pause_image) != pause_end - pause_image ||
	    sys(SYS_FCNTL, fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0) {
		sys(SYS_CLOSE, fd, 0, 0);
		return -EINVAL;
	}
	return fd;
}

// pipe makes a pipe, close-on-exec, into p.
static int pipe(i64 *p)
{
	int fds[2];

	if (sys(SYS_PIPE2, (i64)fds, O_CLOEXEC, 0) < 0)
		return 0;
	p[0] = fds[0];
	p[1] = fds[1];
	return 1;
}

// The fds and state of an attempt, for undo.
struct attempt {
	i64 root, dir, rec, procns, ns[MAX_JOIN_NS], self, memfd, sfd;
	i64 prog[2], status[2];	// pipes: read end, write end
	u64 mask;
};

static void closefd(i64 *fd)
{
	if (*fd >= 0)
		sys(SYS_CLOSE, *fd, 0, 0);
	*fd = -1;
}

// undo closes what the attempt opened and restores the signal mask: the
// Go program starts as if nothing happened.
static void undo(struct attempt *a)
{
	closefd(&a->root);
	closefd(&a->dir);
	closefd(&a->rec);
	closefd(&a->procns);
	for (int k = 0; k < MAX_JOIN_NS; k++)
		closefd(&a->ns[k]);
	closefd(&a->self);
	closefd(&a->memfd);
	closefd(&a->sfd);
	for (int k = 0; k < 2; k++) {
		closefd(&a->prog[k]);
		closefd(&a->status[k]);
	}
	sys6(SYS_RT_SIGPROCMASK, SIG_SETMASK, (i64)&a->mask, 0, sizeof a->mask, 0, 0);
}

// child is the forked process, born in the pod's PID namespace: it joins
// the pod's other namespaces and executes pause run from the memfd. On any
// failure it reports on the status pipe, so that the parent goes back to
// Go, and exits.
static __attribute__((noreturn)) void child(struct attempt *a, const struct join *j, int interactive, const char **env)
{
	// On the stack: a constant array of pointers would need relocating.
	char a0[] = "pause", a1[] = "run";
	const char *argv[] = {a0, a1, 0};
	i64 r = 0, in = 0;

	i64 user = -1;

	// A user namespace is pause run's to join (setup.Join.Namespaces):
	// its handle goes to EXTRA_FD.
	for (u32 k = 0; k < j->h.nns && r >= 0; k++)
		if (j->h.ns_types[k] == CLONE_NEWUSER)
			user = a->ns[k];
		else if (j->h.ns_types[k] != CLONE_NEWPID)
			r = sys(SYS_SETNS, a->ns[k], j->h.ns_types[k], 0);
	// The pod's /dev/null, once its mount namespace is joined.
	if (r >= 0 && !interactive)
		r = in = sys6(SYS_OPENAT, AT_FDCWD, (i64)"/dev/null", O_RDWR | O_CLOEXEC, 0, 0, 0);
	if (r >= 0)
		r = sys(SYS_CHDIR, (i64)j->dir, 0, 0);
	if (r >= 0) {
		// Out of the way of 0-6 first, then into place.
		i64 p = sys(SYS_FCNTL, a->prog[0], F_DUPFD_CLOEXEC, 10), s = sys(SYS_FCNTL, a->status[1], F_DUPFD_CLOEXEC, 10);
		i64 m = sys(SYS_FCNTL, a->memfd, F_DUPFD_CLOEXEC, 10);
		i64 u = user < 0 ? 0 : sys(SYS_FCNTL, user, F_DUPFD_CLOEXEC, 10);

		if (!interactive)
			in = sys(SYS_FCNTL, in, F_DUPFD_CLOEXEC, 10);
		if (p < 0 || s < 0 || m < 0 || in < 0 || u < 0) {
			r = -EINVAL;
		} else {
			if (!interactive)
				moveFD(in, 0);
			moveFD(p, PROGRAM_FD);
			moveFD(s, STATUS_FD);
			moveFD(m, PAUSE_FD);
			if (user >= 0)
				moveFD(u, EXTRA_FD);
			// A session of its own: podsb's controlling terminal, if
			// any, must not be the command's (/dev/tty and TIOCSTI
			// would reach it).
			sys(SYS_SETSID, 0, 0, 0);
			r = sys6(SYS_EXECVEAT, PAUSE_FD, (i64)"", (i64)argv, (i64)env, AT_EMPTY_PATH, 0);
			a->status[1] = STATUS_FD;
		}
	}
	struct report rep = {.index = j->h.ops, .errno = (int)-r};
	sys(SYS_WRITE, a->status[1], (i64)&rep, sizeof rep);
	quit(125);
}

// fork_rootless starts child in the pod's PID namespace pidns from inside
// a rootless pod's user namespace, where this process could not join the
// host's PID namespace again, and where a process whose children's PID
// namespace is not its own can start no thread (Go, on a failure). So a
// helper joins it and forks the child as this process's child
// (CLONE_PARENT), tells its PID (in the host's namespace, the helper's
// own) on a pipe and exits. Returns the child's PID, or -1.
static i64 fork_rootless(struct attempt *a, const struct join *j, int interactive, const char **env, i64 pidns)
{
	i64 p[2], pid = -1, r;
	int ws;

	if (!pipe(p))
		return -1;
	i64 helper = sys(SYS_FORK, 0, 0, 0);
	if (helper == 0) {
		r = sys(SYS_SETNS, pidns, CLONE_NEWPID, 0);
		if (r == 0)
			r = sys6(SYS_CLONE, CLONE_PARENT, 0, 0, 0, 0, 0);
		if (r == 0)
			child(a, j, interactive, env);
		sys(SYS_WRITE, p[1], (i64)&r, sizeof r);
		quit(0);
	}
	closefd(&p[1]);
	if (helper > 0) {
		while ((r = sys(SYS_READ, p[0], (i64)&pid, sizeof pid)) == -EINTR)
			;
		if (r != sizeof pid)
			pid = -1;
		while (sys6(SYS_WAIT4, helper, (i64)&ws, 0, 0, 0, 0) == -EINTR)
			;
	}
	closefd(&p[0]);
	return pid < 0 ? -1 : pid;
}

// try runs the command as the join record of root/pod says, and exits. It
// returns to let Go do it; what it opened is in a, for undo.
static void try(struct attempt *a, const char *root, const char *pod, int ncmd, char **cmd, int interactive)
{
	char rec[MAX_JOIN];
	struct join j;
	i64 n, pidns = -1;

	// The record, if it may be trusted and is this pod's.
	if ((a->root = sys6(SYS_OPENAT, AT_FDCWD, (i64)root, O_PATH | O_DIRECTORY | O_CLOEXEC, 0, 0, 0)) < 0 ||
	    !trusted(a->root, S_IFDIR) || (a->dir = beneath(a->root, pod, O_PATH | O_DIRECTORY)) < 0 ||
	    !trusted(a->dir, S_IFDIR) || (a->rec = beneath(a->dir, JOIN_FILE, O_RDONLY)) < 0 ||
	    !trusted(a->rec, S_IFREG) || (n = readfd(a->rec, rec, sizeof rec)) < 0 || !parse(rec, n, &j) ||
	    j.h.name_len != len(pod) || !same(j.name, pod, j.h.name_len) || j.h.n_env > MAX_STRINGS)
		return;

	// Pause alive, and the handles: pause's PID namespace must be the
	// pinned one. With JOIN_PROC_NS (a rootless pod's), the handles are
	// pause's own /proc/PID/ns files, each with its recorded inode; pause
	// is checked after they are open, so that they are its.
	const char *path = j.paths;
	i64 from = a->dir;
	if (j.h.flags & JOIN_PROC_NS) {
		char proc[64];
		struct buf b = {proc, 0, sizeof proc - 1, 0};
		puts_(&b, "/proc/");
		putnum(&b, j.h.pid);
		puts_(&b, "/ns");
		proc[b.n] = 0;
		if (b.over || (a->procns = sys6(SYS_OPENAT, AT_FDCWD, (i64)proc, O_PATH | O_DIRECTORY | O_CLOEXEC, 0, 0, 0)) < 0)
			return;
		from = a->procns;
	}
	for (u32 k = 0; k < j.h.nns; path += len(path) + 1, k++) {
		struct k_stat st;
		// /proc/PID/ns/* are magic links, which beneath refuses: a name
		// in that directory, no path.
		if (from == a->procns) {
			for (const char *c = path; *c; c++)
				if (*c == '/')
					return;
			a->ns[k] = sys6(SYS_OPENAT, from, (i64)path, O_RDONLY | O_CLOEXEC, 0, 0, 0);
		} else
			a->ns[k] = beneath(from, path, O_RDONLY);
		if (a->ns[k] < 0 || !nsfs(a->ns[k]))
			return;
		if ((j.h.flags & JOIN_PROC_NS) &&
		    (sys(SYS_FSTAT, a->ns[k], (i64)&st, 0) != 0 || st.ino != j.h.ns_inodes[k]))
			return;
		if (j.h.ns_types[k] == CLONE_NEWPID)
			pidns = a->ns[k];
	}
	if (pidns < 0 || !sameboot(j.boot, j.h.boot_len) || j.h.start == 0 || starttime(j.h.pid) != j.h.start ||
	    !pinned(pidns, j.h.pid))
		return;

	// The program: Go's, then the Exec of the command (PATH lookup in
	// pause run). It is written before the fork, so it must fit the pipe.
	char prog[1 << 16];
	struct buf pg = {prog, 0, sizeof prog, 0};
	const char *exec[MAX_STRINGS];
	exec[0] = cmd[0];
	for (int k = 0; k < ncmd; k++)
		exec[k + 1] = cmd[k];
	put(&pg, j.prog, j.h.prog_len);
	putop(&pg, OP_EXEC, exec, ncmd + 1);
	const char *env[MAX_STRINGS + 1];
	const char *e = j.env;
	for (u32 k = 0; k < j.h.n_env; e += len(e) + 1, k++)
		env[k] = e;
	env[j.h.n_env] = 0;
	if (pg.over || !pipe(a->prog) || !pipe(a->status) ||
	    sys(SYS_FCNTL, a->prog[1], F_GETPIPE_SZ, 0) < (i64)pg.n || (a->memfd = pause_memfd()) < 0 ||
	    sys(SYS_WRITE, a->prog[1], (i64)prog, pg.n) != (i64)pg.n ||
	    (a->self = sys6(SYS_OPENAT, AT_FDCWD, (i64)"/proc/self/ns/pid", O_RDONLY | O_CLOEXEC, 0, 0, 0)) < 0)
		return;
	closefd(&a->prog[1]);

	// The forwarded signals are blocked from here and read from a signalfd
	// once the command runs: none is lost, and none is handled in the
	// child (pause's Exec clears the mask it inherits).
	u64 sigs = 0;
	static const int fwd[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGALRM, SIGCONT, SIGTSTP};
	for (u64 k = 0; k < sizeof fwd / sizeof fwd[0]; k++)
		sigs |= 1UL << (fwd[k] - 1);
	if (sys6(SYS_RT_SIGPROCMASK, SIG_BLOCK, (i64)&sigs, (i64)&a->mask, sizeof sigs, 0, 0) < 0 ||
	    (a->sfd = sys6(SYS_SIGNALFD4, -1, (i64)&sigs, sizeof sigs, O_CLOEXEC, 0, 0)) < 0)
		return;

	// Fork into the pod's PID namespace: joining it changes only where
	// this process's children are born. The child joins the rest.
	i64 pid, r;
	if (j.h.flags & JOIN_PROC_NS) {
		pid = fork_rootless(a, &j, interactive, env, pidns);
	} else {
		if (sys(SYS_SETNS, pidns, CLONE_NEWPID, 0) < 0)
			return;
		pid = sys(SYS_FORK, 0, 0, 0);
		if (pid == 0)
			child(a, &j, interactive, env);
		r = sys(SYS_SETNS, a->self, CLONE_NEWPID, 0);
		if (r < 0) {
			if (pid > 0) {
				int ws;
				sys(SYS_KILL, pid, SIGKILL, 0);
				sys6(SYS_WAIT4, pid, (i64)&ws, 0, 0, 0, 0);
			}
			fail("leave the pod's PID namespace", r);
		}
	}
	if (pid < 0)
		return;
	closefd(&a->prog[0]);
	closefd(&a->status[1]);
	closefd(&a->memfd);

	// The status pipe: end of file once the command is executed, or a
	// report of what failed, for Go to do it all again and say why.
	struct report rep;
	i64 got = 0;
	while (got < (i64)sizeof rep && (r = sys(SYS_READ, a->status[0], (i64)&rep + got, sizeof rep - got)) != 0)
		if (r > 0)
			got += r;
		else if (r != -EINTR)
			break;
	int ws = 0;
	if (got != 0) {
		while (sys6(SYS_WAIT4, pid, (i64)&ws, 0, 0, 0, 0) == -EINTR)
			;
		return;
	}

	// Wait, forwarding signals (the child is not reaped yet, so its PID
	// is its own).
	i64 pidfd = sys(SYS_PIDFD_OPEN, pid, 0, 0);
	for (;;) {
		struct k_pollfd pfd[2] = {{.fd = (int)pidfd, .events = POLLIN}, {.fd = (int)a->sfd, .events = POLLIN}};

		if (pidfd < 0)
			break;
		r = sys6(SYS_PPOLL, (i64)pfd, 2, 0, 0, sizeof sigs, 0);
		if (r < 0 && r != -EINTR)
			break;
		if (pfd[1].revents & POLLIN) {
			struct k_signalfd_siginfo si;
			if (sys(SYS_READ, a->sfd, (i64)&si, sizeof si) == sizeof si)
				sys(SYS_KILL, pid, si.signo, 0);
		}
		if (pfd[0].revents & POLLIN)
			break;
	}
	while ((r = sys6(SYS_WAIT4, pid, (i64)&ws, 0, 0, 0, 0)) == -EINTR)
		;
	if (r < 0)
		fail("wait", r);
	if ((ws & 0x7f) == 0)
		quit((ws >> 8) & 0xff);
	quit(128 + (ws & 0x7f));
}

// env_fd reads the file descriptor an environment variable's value names:
// decimal digits only, below 1024; -1 otherwise.
static i64 env_fd(const char *v)
{
	i64 fd = 0;
	for (; *v >= '0' && *v <= '9' && fd < 1024; v++)
		fd = fd * 10 + (*v - '0');
	return *v ? -1 : fd;
}

__attribute__((used, section(".text.entry"))) void fast_exec(i64 *sp);

void fast_exec(i64 *sp)
{
	int argc = (int)sp[0], i = 1, interactive = 0;
	char **argv = (char **)(sp + 1), **envp = argv + argc + 1;
	const char *root = 0, *v;

	// A rootless exec that re-executed itself with its pod's user
	// namespace at fd N (sandbox.UserNSFDEnv): join it while this is the
	// only thread, and go on there as the namespace's root (the user's
	// files are 0's in it), to the pod's join record below or to Go. A
	// failure joins nothing; Go finds itself outside and reports. The
	// variable stays, for Go to see that this was tried.
	for (char **e = envp; *e; e++) {
		if (!(v = prefix(*e, USERNS_FD_ENV)))
			continue;
		i64 fd = env_fd(v);
		if (fd <= 2 || sys(SYS_SETNS, fd, CLONE_NEWUSER, 0) != 0)
			return;
		sys(SYS_CLOSE, fd, 0, 0);
		break;
	}
	// A rootless create that RunInUserNS started in a new user namespace:
	// wait for its maps (one byte at fd N, sandbox.UserNSWaitEnv), then
	// execute this program again without the variable, as the namespace's
	// root with its capabilities. End of file: the starter died.
	for (char **e = envp; *e; e++) {
		if (!(v = prefix(*e, USERNS_WAIT_ENV)))
			continue;
		i64 fd = env_fd(v), r = -1;
		char c;
		while (fd >= 0 && (r = sys(SYS_READ, fd, (i64)&c, 1)) == -EINTR)
			;
		if (r != 1)
			quit(125);
		sys(SYS_CLOSE, fd, 0, 0);
		for (char **f = e; (f[0] = f[1]); f++)
			;
		sys(SYS_EXECVE, (i64)"/proc/self/exe", (i64)argv, (i64)envp);
		quit(125);
	}
	// $PODSB_ROOT as Go reads it: the first one.
	for (char **e = envp; *e; e++) {
		if ((v = prefix(*e, "PODSB_ROOT=")) && !root)
			root = v;
		if ((v = prefix(*e, "PODSB_FASTEXEC=")) && eq(v, "0"))
			return;
	}
	if (!root || !*root)
		root = DEFAULT_ROOT;
	// The command line, in exactly these forms.
	if (i + 1 < argc && eq(argv[i], "--root"))
		root = argv[i + 1], i += 2;
	else if (i < argc && (v = prefix(argv[i], "--root=")))
		root = v, i++;
	if (i >= argc || !eq(argv[i++], "exec"))
		return;
	if (i < argc && (eq(argv[i], "-i") || eq(argv[i], "--interactive")))
		interactive = 1, i++;
	if (i >= argc || argv[i][0] == '-')
		return;
	const char *pod = argv[i++];
	if (i < argc && eq(argv[i], "--"))
		i++;
	int ncmd = argc - i;
	if (ncmd < 1 || ncmd > MAX_STRINGS - 1 || !argv[i][0] || sys(SYS_GETEUID, 0, 0, 0) != 0 ||
	    !stdio_safe(interactive))
		return;

	struct attempt a = {.root = -1, .dir = -1, .rec = -1, .procns = -1, .self = -1, .memfd = -1, .sfd = -1,
			    .prog = {-1, -1}, .status = {-1, -1}};
	for (int k = 0; k < MAX_JOIN_NS; k++)
		a.ns[k] = -1;
	sys6(SYS_RT_SIGPROCMASK, SIG_BLOCK, 0, (i64)&a.mask, sizeof a.mask, 0, 0);
	// Descriptors inherited without close-on-exec must not reach the pod
	// (Go marks them so too).
	sys(SYS_CLOSE_RANGE, 3, ~0U, CLOSE_RANGE_CLOEXEC);
	try(&a, root, pod, ncmd, argv + i, interactive);
	undo(&a);
}
