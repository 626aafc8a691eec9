// fastexec: `podsb create`, `podsb exec` and `podsb rm` before the Go
// runtime starts.
//
// podsb's ELF entry point is fast_entry (nsenter/fastexec_amd64.s, built
// from this file by build.sh). It runs first, on the process's initial
// stack, single-threaded, with no libc and no Go runtime. For the common
// forms
//
//	podsb [--root DIR] create --network none [NAME]
//	podsb [--root DIR] exec [-i] [-e KEY=VAL]... [-w DIR] POD [--] CMD [ARG...]
//	podsb [--root DIR] rm [-f] POD
//
// it does the whole job itself and exits; for anything else (other
// commands, other flags, a pod or a record it cannot vouch for) it returns,
// and the Go program starts as if this file did not exist. So every error
// message of podsb's own is the Go program's: exec gives up rather than
// report, up to the point where it joins the pod; create and rm at any
// failed step, create undoing what it made first (rm is idempotent: Go
// finishes what was begun).
//
// It executes what Go planned. At create, package sandbox writes
// ROOT/NAME/join (see sandbox/join_linux.go) with pause's PID, start time
// and boot ID, the pod's hostname, whether it is on the bridge network, and
// the program of a default exec (the capability sets, no_new_privs, the
// seccomp filter, the death signal) in internal/setup's wire format; exec
// adds the Exec operation, forks pause's image from a sealed memfd as
// "pause run" in the pod's namespaces, as sandbox.Pod.Exec does, forwards
// signals and exits with the command's status; rm does what
// sandbox.Pod.Remove does for a pod without network or cgroup. After a
// create in Go, the CLI has sandbox write ROOT/.create
// (sandbox/template_linux.go): the init's program for a default pod, made
// for a stand-in name, with what it depends on (the boot, the binary, the
// host files and paths it read); create checks all of it, puts the name in
// and does what sandbox.Create does.
//
// Rules for this file: no writable global data (it is copied into the Go
// binary's read-only text), no libc, nothing that needs relocation.

typedef unsigned long u64;
typedef unsigned int u32;
typedef long i64;

enum {
	SYS_read = 0, SYS_write = 1, SYS_close = 3, SYS_rt_sigprocmask = 14, SYS_getpid = 39,
	SYS_fork = 57, SYS_exit_group = 231, SYS_wait4 = 61, SYS_kill = 62, SYS_fcntl = 72,
	SYS_chdir = 80, SYS_geteuid = 107, SYS_setsid = 112, SYS_openat = 257, SYS_newfstatat = 262, SYS_ppoll = 271,
	SYS_signalfd4 = 289, SYS_dup3 = 292, SYS_pipe2 = 293, SYS_setns = 308, SYS_memfd_create = 319,
	SYS_execveat = 322, SYS_pidfd_open = 434, SYS_close_range = 436,
	SYS_flock = 73, SYS_fstat = 5, SYS_umount2 = 166, SYS_getdents64 = 217, SYS_unlinkat = 263,
	SYS_readlinkat = 267, SYS_pidfd_send_signal = 424, SYS_waitid = 247,
	SYS_clone = 56, SYS_mount = 165, SYS_mkdirat = 258, SYS_symlinkat = 266, SYS_renameat = 264,
	SYS_clock_gettime = 228, SYS_getrandom = 318,
};

enum {
	AT_FDCWD = -100, AT_EMPTY_PATH = 0x1000, O_RDONLY = 0, O_RDWR = 2, O_CLOEXEC = 02000000,
	F_DUPFD_CLOEXEC = 1030, F_ADD_SEALS = 1033, MFD_CLOEXEC = 1, MFD_ALLOW_SEALING = 2,
	MFD_EXEC = 0x10, SEALS = 1 | 2 | 4 | 8, CLOSE_RANGE_CLOEXEC = 4, SIG_BLOCK = 0,
	POLLIN = 1, S_IFMT = 0170000, S_IFDIR = 0040000,
	ENOENT = 2, EINTR = 4, ENOMEM = 12, EACCES = 13, EINVAL = 22, EISDIR = 21, EPERM = 1, ENOEXEC = 8,
	CLONE_NEWNS = 0x20000, CLONE_NEWUTS = 0x4000000, CLONE_NEWIPC = 0x8000000,
	CLONE_NEWPID = 0x20000000, CLONE_NEWNET = 0x40000000,
	O_DIRECTORY = 0200000, O_NOFOLLOW = 0400000, LOCK_EX = 2, LOCK_NB = 4, MNT_DETACH = 2,
	AT_REMOVEDIR = 0x200, EBUSY = 16, ESRCH = 3, SIGTERM = 15, SIGKILL = 9,
	AT_SYMLINK_NOFOLLOW = 0x100, O_WRONLY = 1, O_CREAT = 0100, O_TRUNC = 01000, EEXIST = 17,
	MS_BIND = 4096, MS_PRIVATE = 1 << 18, SIG_SETMASK = 2, SIGCHLD = 17,
};

// The files of a pod's handles under ns/, in sandbox.NamespaceTypes'
// order, 4 bytes apart.
#define NS_FILES "pid\0uts\0ipc\0mnt\0net\0"

// The operation codes and limits of internal/setup.
enum { OP_EXEC = 17, MAX_STR = 64 };

// The fds of "pause run" (sandbox/program_linux.go).
enum { PROG_FD = 3, STATUS_FD = 4, GO_FD = 5, PAUSE_FD = 6 };

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
		sys(SYS_exit_group, code, 0, 0);
}

static u64 len(const char *s)
{
	u64 n = 0;

	while (s[n])
		n++;
	return n;
}

static int eq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

static int has(const char *s, char c)
{
	for (; *s; s++)
		if (*s == c)
			return 1;
	return 0;
}

// prefix returns the part of s after p, or 0 if s does not start with p.
static const char *prefix(const char *s, const char *p)
{
	while (*p)
		if (*s++ != *p++)
			return 0;
	return s;
}

// A bounded string builder on the stack.
struct buf {
	char *p;
	u64 n, cap;
	int over;
};

static void put(struct buf *b, const void *s, u64 n)
{
	if (b->n + n > b->cap) {
		b->over = 1;
		return;
	}
	for (u64 i = 0; i < n; i++)
		b->p[b->n + i] = ((const char *)s)[i];
	b->n += n;
}

static void puts_(struct buf *b, const char *s) { put(b, s, len(s)); }

static void put32(struct buf *b, u32 v) { put(b, &v, 4); }

static void putnum(struct buf *b, i64 v)
{
	char d[24];
	int i = sizeof d;

	if (v < 0) {
		puts_(b, "-");
		v = -v;
	}
	do
		d[--i] = '0' + v % 10;
	while (v /= 10);
	put(b, d + i, sizeof d - i);
}

// fail reports one of podsb's own failures after the pod is joined, where
// there is no going back to Go: one line on stderr, exit 125 (or code).
static __attribute__((noreturn)) void fail3(int code, const char *a, const char *b, const char *c, i64 err)
{
	char m[512];
	struct buf w = {m, 0, sizeof m - 1, 0};

	puts_(&w, "podsb: ");
	puts_(&w, a);
	puts_(&w, b);
	puts_(&w, c);
	if (err) {
		puts_(&w, ": errno ");
		putnum(&w, -err);
	}
	if (w.over)
		w.n = w.cap;
	m[w.n++] = '\n';
	sys(SYS_write, 2, (i64)m, w.n);
	quit(code);
}

static __attribute__((noreturn)) void fail(int code, const char *a, const char *b, i64 err)
{
	fail3(code, a, b, "", err);
}

// readfile reads up to cap bytes of path; it returns the length or -1.
static i64 readfile(const char *path, char *p, u64 cap)
{
	i64 fd = sys6(SYS_openat, AT_FDCWD, (i64)path, O_RDONLY | O_CLOEXEC, 0, 0, 0), n = 0, r;

	if (fd < 0)
		return -1;
	while (n < (i64)cap && (r = sys(SYS_read, fd, (i64)(p + n), cap - n)) > 0)
		n += r;
	sys(SYS_close, fd, 0, 0);
	return r < 0 ? -1 : n;
}

// validName is sandbox.ValidateName: 1 to 63 (MaxNameLen) of [A-Za-z0-9_.-], not
// starting with one of "_.-".
static int validName(const char *s)
{
	u64 n = 0;

	for (; s[n]; n++) {
		char c = s[n];
		int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');

		if (!alnum && (n == 0 || (c != '_' && c != '.' && c != '-')))
			return 0;
	}
	return n > 0 && n <= 63;
}

// The join record (sandbox/join_linux.go), little-endian:
//	"podsbJ2\n" | u64 pid | u64 start time | u32 ops | u32 flags |
//	u32 n, boot ID | u32 n, hostname | u32 n, program
// flags: JOIN_NETWORK, the pod holds an address of the bridge network.
enum { JOIN_NETWORK = 1 };
struct join {
	u64 pid, start;
	u32 ops, flags;
	const char *boot, *host, *prog;
	u32 nboot, nhost, nprog;
};

static int take(const char **p, const char *end, void *v, u64 n)
{
	if ((u64)(end - *p) < n)
		return 0;
	for (u64 i = 0; i < n; i++)
		((char *)v)[i] = (*p)[i];
	*p += n;
	return 1;
}

static int takestr(const char **p, const char *end, const char **s, u32 *n)
{
	if (!take(p, end, n, 4) || (u64)(end - *p) < *n)
		return 0;
	*s = *p;
	*p += *n;
	return 1;
}

static int parseJoin(const char *p, i64 n, struct join *j)
{
	const char *end = p + n;
	char magic[8];

	return n > 0 && take(&p, end, magic, 8) && prefix(magic, "podsbJ2\n") != 0 &&
	       take(&p, end, &j->pid, 8) && take(&p, end, &j->start, 8) && take(&p, end, &j->ops, 4) &&
	       take(&p, end, &j->flags, 4) &&
	       takestr(&p, end, &j->boot, &j->nboot) && takestr(&p, end, &j->host, &j->nhost) &&
	       takestr(&p, end, &j->prog, &j->nprog) && p == end;
}

// alive tells whether pause still runs: its PID has the recorded start time
// (field 22 of /proc/PID/stat) in this boot.
// starttime returns field 22 of /proc/PID/stat, the process's start time
// in clock ticks after boot, or 0.
static u64 starttime(i64 pid)
{
	char path[64], st[1024];
	struct buf b = {path, 0, sizeof path - 1, 0};
	u64 start = 0;
	i64 n, i, field = 2;

	puts_(&b, "/proc/");
	putnum(&b, pid);
	puts_(&b, "/stat");
	path[b.n] = 0;
	if ((n = readfile(path, st, sizeof st - 1)) <= 0)
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

// sameboot tells whether the boot ID of n bytes at id is this boot's.
static int sameboot(const char *id, u64 n)
{
	char boot[64];
	i64 r = readfile("/proc/sys/kernel/random/boot_id", boot, sizeof boot);

	if (r != (i64)n + 1 || boot[r - 1] != '\n')
		return 0;
	for (u64 i = 0; i < n; i++)
		if (boot[i] != id[i])
			return 0;
	return 1;
}

static int alive(const struct join *j)
{
	return sameboot(j->boot, j->nboot) && starttime(j->pid) == j->start && j->start != 0;
}

// setenv_ puts kv in env (n entries), replacing an entry of the same key.
static int setenv_(const char **env, int n, const char *kv)
{
	u64 k = 0;

	while (kv[k] != '=')
		k++;
	for (int i = 0; i < n; i++) {
		u64 m = 0;

		while (env[i][m] && env[i][m] != '=')
			m++;
		u64 same = m == k;

		for (u64 c = 0; same && c < k; c++)
			same = env[i][c] == kv[c];
		if (same) {
			env[i] = kv;
			return n;
		}
	}
	env[n] = kv;
	return n + 1;
}

// moveFD gives the file fd the number to in a child about to exec.
static void moveFD(i64 fd, int to)
{
	if (fd == to)
		sys(SYS_fcntl, fd, 2 /* F_SETFD */, 0);
	else
		sys(SYS_dup3, fd, to, 0);
}

__attribute__((used, section(".text.entry"))) void fast_exec(i64 *sp);

// pause_image to pause_end is the committed pause image
// (reaper/pause/pause-amd64), included whole.
extern const char pause_image[];
extern const char pause_end[];
__asm__(".section .rodata.pause,\"a\"\n"
	".globl pause_image\npause_image:\n"
	".incbin \"" PAUSE_IMAGE "\"\n"
	".globl pause_end\npause_end:\n"
	".previous\n");

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

// clean tells whether a path is as filepath.Clean leaves an absolute one:
// Go wrote the paths that rm compares with.
static int clean(const char *p)
{
	if (p[0] != '/')
		return 0;
	for (u64 i = 0; p[i]; i++)
		if (p[i] == '/' && (p[i + 1] == '/' || (p[i + 1] == '.' && (p[i + 2] == '/' || !p[i + 2] ||
			(p[i + 2] == '.' && (p[i + 3] == '/' || !p[i + 3]))))))
			return 0;
	return len(p) == 1 || p[len(p) - 1] != '/';
}

// rmtree removes name in the directory dfd, with everything below it,
// without following symlinks; 0 or -errno.
static i64 rmtree(i64 dfd, const char *name, int depth)
{
	char buf[4096];
	i64 r = sys(SYS_unlinkat, dfd, (i64)name, 0), fd, n;

	if (r != -EISDIR || depth > 8)
		return r;
	fd = sys6(SYS_openat, dfd, (i64)name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0, 0, 0);
	if (fd < 0)
		return fd;
	while ((n = sys(SYS_getdents64, fd, (i64)buf, sizeof buf)) > 0)
		for (i64 off = 0; off < n;) {
			const char *e = buf + off + 19;	// struct linux_dirent64: d_name

			off += *(unsigned short *)(buf + off + 16);
			if (!(e[0] == '.' && (!e[1] || (e[1] == '.' && !e[2]))) && (r = rmtree(fd, e, depth + 1)) < 0) {
				sys(SYS_close, fd, 0, 0);
				return r;
			}
		}
	sys(SYS_close, fd, 0, 0);
	return n < 0 ? n : sys(SYS_unlinkat, dfd, (i64)name, AT_REMOVEDIR);
}

// unmount unmounts path, lazily if it is busy, as sandbox's unmount does;
// not mounted or missing is success.
static int unmount(const char *path)
{
	i64 r = sys(SYS_umount2, (i64)path, 0, 0);

	if (r == -EBUSY)
		r = sys(SYS_umount2, (i64)path, MNT_DETACH, 0);
	return r == 0 || r == -EINVAL || r == -ENOENT;
}

// unpin unmounts every entry of the directory nsdir (a pod's handles and
// its containers' pins), then nsdir itself, as sandbox's teardown does. It
// tells whether all of them are gone.
static int unpin(const char *nsdir)
{
	char path[4200], buf[4096];
	struct buf pb = {path, 0, 4096, 0};
	i64 fd = sys6(SYS_openat, AT_FDCWD, (i64)nsdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, 0, 0), n = 0;
	int ok = 1;

	puts_(&pb, nsdir);
	puts_(&pb, "/");
	u64 base = pb.n;
	while (fd >= 0 && ok && (n = sys(SYS_getdents64, fd, (i64)buf, sizeof buf)) > 0)
		for (i64 off = 0; off < n && ok;) {
			const char *e = buf + off + 19;	// struct linux_dirent64: d_name

			off += *(unsigned short *)(buf + off + 16);
			if (e[0] == '.' && (!e[1] || (e[1] == '.' && !e[2])))
				continue;
			pb.n = base;
			puts_(&pb, e);
			path[pb.n] = 0;
			ok = !pb.over && unmount(path);
		}
	if (fd >= 0)
		sys(SYS_close, fd, 0, 0);
	return ok && unmount(nsdir);
}

// pause_memfd returns a sealed memfd holding the pause image, as
// reaper.Memfd makes it, or -errno.
static i64 pause_memfd(void)
{
	i64 fd = sys(SYS_memfd_create, (i64)"pause", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC, 0);

	if (fd == -EINVAL) // before Linux 6.3, every memfd is executable
		fd = sys(SYS_memfd_create, (i64)"pause", MFD_CLOEXEC | MFD_ALLOW_SEALING, 0);
	if (fd < 0)
		return fd;
	if (sys(SYS_write, fd, (i64)pause_image, pause_end - pause_image) != pause_end - pause_image ||
	    sys(SYS_fcntl, fd, F_ADD_SEALS, SEALS) < 0) {
		sys(SYS_close, fd, 0, 0);
		return -EINVAL;
	}
	return fd;
}

// done prints the pod's name, as create and rm do, and exits 0.
static __attribute__((noreturn)) void done(const char *pod)
{
	char out[80];
	struct buf ob = {out, 0, sizeof out - 1, 0};

	puts_(&ob, pod);
	out[ob.n++] = '\n';
	sys(SYS_write, 1, (i64)out, ob.n);
	quit(0);
}

// exited waits up to ms for the process behind pidfd to exit.
static int exited(i64 pidfd, i64 ms)
{
	struct {
		i64 sec, nsec;
	} t = {ms / 1000, ms % 1000 * 1000000};
	struct {
		int fd;
		short events, revents;
	} pfd = {(int)pidfd, POLLIN, 0};
	i64 r;

	while ((r = sys6(SYS_ppoll, (i64)&pfd, 1, (i64)&t, 0, 8, 0)) == -EINTR)
		;
	return r > 0;
}

// fast_rm removes the pod of `podsb [--root DIR] rm [-f] POD` as
// sandbox.Pod.Remove does, for a pod with a join record and no network
// (and so no cgroup). It returns, for Go to do the job, on anything else,
// and whenever a step fails: rm is idempotent, and Go finishes what was
// begun (a stopped pod, handles already gone). Exit 0 and POD on stdout
// once the pod is gone.
static void fast_rm(const char *root, int argc, char **argv, int i)
{
	int force = 0;

	if (i < argc && (eq(argv[i], "-f") || eq(argv[i], "--force")))
		force = 1, i++;
	if (i + 1 != argc)
		return;
	const char *pod = argv[i];
	if (!validName(pod) || !clean(root) || sys(SYS_geteuid, 0, 0, 0) != 0)
		return;

	char path[4200], rec[16384], st1[144], st2[144];
	struct buf pb = {path, 0, 4096, 0};
	struct join j;
	i64 n, dfd, rfd;
	puts_(&pb, root);
	if (len(root) > 1)
		puts_(&pb, "/");
	puts_(&pb, pod);
	if (pb.over)
		return;
	path[pb.n] = 0;
	u64 dirlen = pb.n;
	// The lock, as sandbox.lockDir takes it: on the directory, which must
	// still be the one at the path. Busy: Go waits for it.
	if ((dfd = sys6(SYS_openat, AT_FDCWD, (i64)path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, 0, 0)) < 0)
		return;
	if (sys(SYS_flock, dfd, LOCK_EX | LOCK_NB, 0) < 0 || sys(SYS_fstat, dfd, (i64)st1, 0) < 0 ||
	    sys6(SYS_newfstatat, AT_FDCWD, (i64)path, (i64)st2, 0, 0, 0) < 0 ||
	    *(u64 *)st1 != *(u64 *)st2 || *(u64 *)(st1 + 8) != *(u64 *)(st2 + 8)) {
		sys(SYS_close, dfd, 0, 0);
		return;
	}
	n = sys6(SYS_openat, dfd, (i64)"join", O_RDONLY | O_CLOEXEC, 0, 0, 0);
	i64 got = 0, r;
	while (n >= 0 && got < (i64)sizeof rec && (r = sys(SYS_read, n, (i64)rec + got, sizeof rec - got)) > 0)
		got += r;
	if (n >= 0)
		sys(SYS_close, n, 0, 0);
	if (n < 0 || got == sizeof rec || !parseJoin(rec, got, &j) || (j.flags & JOIN_NETWORK)) {
		sys(SYS_close, dfd, 0, 0);
		return;
	}

	// Stop pause: signals go through a pidfd opened before the identity
	// check, so a PID reused after it is never signalled.
	i64 pidfd = sys(SYS_pidfd_open, j.pid, 0, 0);
	if (pidfd >= 0 && alive(&j)) {
		int sig = force ? SIGKILL : SIGTERM;
		for (int k = 0; k < 2; k++, sig = SIGKILL) {
			r = sys6(SYS_pidfd_send_signal, pidfd, sig, 0, 0, 0, 0);
			if ((r < 0 && r != -ESRCH) || exited(pidfd, 10000))
				break;
		}
		if (!exited(pidfd, 0)) {
			sys(SYS_close, pidfd, 0, 0);
			sys(SYS_close, dfd, 0, 0);
			return;
		}
	}
	if (pidfd >= 0)
		sys(SYS_close, pidfd, 0, 0);
	else if (pidfd != -ESRCH) {
		sys(SYS_close, dfd, 0, 0);
		return;
	}

	// The ip netns entry, if it is this pod's link.
	char link[4200], target[4200];
	struct buf lb = {link, 0, 4096, 0}, tb = {target, 0, 4096, 0};
	puts_(&lb, "/run/netns/");
	puts_(&lb, pod);
	link[lb.n] = 0;
	put(&tb, path, dirlen);
	puts_(&tb, "/ns/net");
	target[tb.n] = 0;
	char got_target[4200];
	r = sys6(SYS_readlinkat, AT_FDCWD, (i64)link, (i64)got_target, sizeof got_target - 1, 0, 0);
	if (r > 0) {
		got_target[r] = 0;
		if (eq(got_target, target) && (r = sys(SYS_unlinkat, AT_FDCWD, (i64)link, 0)) < 0 && r != -ENOENT) {
			sys(SYS_close, dfd, 0, 0);
			return;
		}
	}
	// The handles, the containers' pins, and ns/ itself.
	pb.n = dirlen;
	puts_(&pb, "/ns");
	path[pb.n] = 0;
	if (!unpin(path)) {
		sys(SYS_close, dfd, 0, 0);
		return;
	}
	// The directory: state.json last, so that a failure leaves a pod Go
	// can load and finish.
	char dbuf[4096];
	while ((n = sys(SYS_getdents64, dfd, (i64)dbuf, sizeof dbuf)) > 0)
		for (i64 off = 0; off < n;) {
			const char *e = dbuf + off + 19;

			off += *(unsigned short *)(dbuf + off + 16);
			if ((e[0] == '.' && (!e[1] || (e[1] == '.' && !e[2]))) || eq(e, "state.json"))
				continue;
			if (rmtree(dfd, e, 0) < 0) {
				sys(SYS_close, dfd, 0, 0);
				return;
			}
		}
	rfd = sys6(SYS_openat, AT_FDCWD, (i64)root, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, 0, 0);
	if (n < 0 || rfd < 0 || sys(SYS_unlinkat, dfd, (i64)"state.json", 0) < 0 ||
	    sys(SYS_unlinkat, rfd, (i64)pod, AT_REMOVEDIR) < 0) {
		if (rfd >= 0)
			sys(SYS_close, rfd, 0, 0);
		sys(SYS_close, dfd, 0, 0);
		return;
	}
	done(pod);
}

// putjson writes a JSON string: the caller has checked that s needs no
// escaping (safe()).
static void putjson(struct buf *b, const char *s, u64 n)
{
	put(b, "\"", 1);
	put(b, s, n);
	put(b, "\"", 1);
}

// safe tells whether s is made of [A-Za-z0-9/_.-] only: a path or name
// that JSON (and Go's encoder, which escapes <, > and &) writes as it is.
static int safe(const char *s)
{
	for (; *s; s++) {
		char c = *s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' ||
		      c == '_' || c == '.' || c == '-'))
			return 0;
	}
	return 1;
}

// putzero writes v with at least w digits.
static void putzero(struct buf *b, u64 v, int w)
{
	char d[24];
	int i = sizeof d;

	do
		d[--i] = '0' + v % 10, w--;
	while ((v /= 10) || w > 0);
	put(b, d + i, sizeof d - i);
}

// puttime writes a UTC time as Go's time.Time marshals it (RFC 3339 with
// nanoseconds, trailing zeros dropped).
static void puttime(struct buf *b, i64 sec, i64 nsec)
{
	i64 days = sec / 86400, rem = sec % 86400;
	i64 z = days + 719468, era = z / 146097, doe = z - era * 146097;
	i64 yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	i64 doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
	i64 d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9, y = yoe + era * 400 + (m <= 2);
	char frac[10];
	int n = 9;

	put(b, "\"", 1);
	putzero(b, y, 4);
	put(b, "-", 1);
	putzero(b, m, 2);
	put(b, "-", 1);
	putzero(b, d, 2);
	put(b, "T", 1);
	putzero(b, rem / 3600, 2);
	put(b, ":", 1);
	putzero(b, rem / 60 % 60, 2);
	put(b, ":", 1);
	putzero(b, rem % 60, 2);
	for (int i = 8; i >= 0; i--, nsec /= 10)
		frac[i] = '0' + nsec % 10;
	while (n > 0 && frac[n - 1] == '0')
		n--;
	if (n > 0) {
		put(b, ".", 1);
		put(b, frac, n);
	}
	put(b, "Z\"", 2);
}

// writeat writes a file in the directory dfd atomically: name.tmp, then
// renamed.
static int writeat(i64 dfd, const char *name, const char *tmp, const char *p, u64 n)
{
	i64 fd = sys6(SYS_openat, dfd, (i64)tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600, 0, 0);

	if (fd < 0)
		return 0;
	i64 w = sys(SYS_write, fd, (i64)p, n);
	sys(SYS_close, fd, 0, 0);
	return w == (i64)n && sys6(SYS_renameat, dfd, (i64)tmp, dfd, (i64)name, 0, 0) == 0;
}

// fingerprint computes what sandbox.fingerprint records for path: 9 words.
static int fingerprint(const char *path, u32 kind, u64 *v)
{
	char st[144];
	i64 r = sys6(SYS_newfstatat, AT_FDCWD, (i64)path, (i64)st, kind == 2 ? AT_SYMLINK_NOFOLLOW : 0, 0, 0);

	for (int i = 0; i < 9; i++)
		v[i] = 0;
	if (r == -ENOENT)
		return 1;
	if (r < 0)
		return 0;
	v[0] = 1;
	v[1] = *(u32 *)(st + 24) & S_IFMT;
	if (kind >= 2) {
		v[2] = *(u64 *)st;
		v[3] = *(u64 *)(st + 8);
	}
	if (kind == 3) {
		v[4] = *(u64 *)(st + 48);
		v[5] = *(u64 *)(st + 88);
		v[6] = *(u64 *)(st + 96);
		v[7] = *(u64 *)(st + 104);
		v[8] = *(u64 *)(st + 112);
	}
	return 1;
}

// same tells whether the 9 recorded words at p are v.
static int same(const char *p, const u64 *v)
{
	for (int i = 0; i < 9; i++)
		for (int k = 0; k < 8; k++)
			if ((unsigned char)p[8 * i + k] != ((v[i] >> (8 * k)) & 0xff))
				return 0;
	return 1;
}

// substitute copies the program at p (n bytes, internal/setup's wire
// format) into out, with every from in its strings replaced by to.
static int substitute(const char *p, u64 n, const char *from, u64 nfrom, const char *to, struct buf *out)
{
	const char *end = p + n;
	u64 nto = len(to);

	while (p < end) {
		u32 nstr, slen;

		if ((u64)(end - p) < 20)
			return 0;
		put(out, p, 16);	// op, flags, num
		for (int i = 0; i < 4; i++)
			((char *)&nstr)[i] = p[16 + i];
		put32(out, nstr);
		p += 20;
		for (u32 k = 0; k < nstr; k++) {
			if (!take(&p, end, &slen, 4) || (u64)(end - p) < slen)
				return 0;
			u64 at = out->n, m = 0;
			put32(out, 0);
			for (u32 c = 0; c < slen;) {
				int hit = slen - c >= nfrom;
				for (u64 f = 0; hit && f < nfrom; f++)
					hit = p[c + f] == from[f];
				if (hit) {
					put(out, to, nto);
					m += nto, c += nfrom;
				} else {
					put(out, p + c, 1);
					m++, c++;
				}
			}
			if (!out->over)
				for (int i = 0; i < 4; i++)
					out->p[at + i] = (char)(m >> (8 * i));
			p += slen;
		}
	}
	return !out->over;
}

// The state of a create in progress, for undo.
struct making {
	const char *root, *pod;
	i64 rootfd, dfd, child;
	int dir, pinned, linked;
	char link[300];
	u64 mask;
};

// undo removes what a create made, and lets Go start over.
static void undo(struct making *mk)
{
	if (mk->child > 0) {
		int ws;
		sys(SYS_kill, mk->child, SIGKILL, 0);
		sys6(SYS_wait4, mk->child, (i64)&ws, 0, 0, 0, 0);
	}
	if (mk->linked)
		sys(SYS_unlinkat, AT_FDCWD, (i64)mk->link, 0);
	if (mk->pinned) {
		char path[4200];
		struct buf pb = {path, 0, 4096, 0};
		puts_(&pb, mk->root);
		puts_(&pb, "/");
		puts_(&pb, mk->pod);
		puts_(&pb, "/ns");
		path[pb.n] = 0;
		unpin(path);
	}
	if (mk->dfd >= 0)
		sys(SYS_close, mk->dfd, 0, 0);
	if (mk->dir)
		rmtree(mk->rootfd, mk->pod, 0);
	sys(SYS_close, mk->rootfd, 0, 0);
	sys6(SYS_rt_sigprocmask, SIG_SETMASK, (i64)&mk->mask, 0, 8, 0, 0);
}

// putstate writes the pod's state.json as sandbox.writeState does.
static void putstate(struct buf *b, const char *oci, u32 noci, const char *root, const char *pod, const char *status,
		     i64 pid, i64 sec, i64 nsec, u64 start, const char *boot, u32 nboot, const u64 *inodes)
{
	const char *kinds = NS_FILES;
	const char *types = "pid\0\0\0\0\0uts\0\0\0\0\0ipc\0\0\0\0\0mount\0\0\0network\0";

	puts_(b, "{\n  \"ociVersion\": ");
	putjson(b, oci, noci);
	puts_(b, ",\n  \"id\": ");
	putjson(b, pod, len(pod));
	puts_(b, ",\n  \"status\": ");
	putjson(b, status, len(status));
	puts_(b, ",\n  \"pid\": ");
	putnum(b, pid);
	puts_(b, ",\n  \"bundle\": \"");
	puts_(b, root);
	puts_(b, "/");
	puts_(b, pod);
	puts_(b, "\",\n  \"created\": ");
	puttime(b, sec, nsec);
	puts_(b, ",\n  \"pauseStartTime\": ");
	putnum(b, start);
	puts_(b, ",\n  \"bootID\": ");
	putjson(b, boot, nboot);
	puts_(b, ",\n  \"hostname\": ");
	putjson(b, pod, len(pod));
	if (inodes) {
		puts_(b, ",\n  \"namespaces\": [");
		for (int k = 0; k < 5; k++) {
			puts_(b, k ? ",\n    {\n      \"type\": \"" : "\n    {\n      \"type\": \"");
			puts_(b, types + 8 * k);
			puts_(b, "\",\n      \"path\": \"");
			puts_(b, root);
			puts_(b, "/");
			puts_(b, pod);
			puts_(b, "/ns/");
			puts_(b, kinds + 4 * k);
			puts_(b, "\",\n      \"inode\": ");
			putnum(b, inodes[k]);
			puts_(b, "\n    }");
		}
		puts_(b, "\n  ],\n  \"netns\": \"/run/netns/");
		puts_(b, pod);
		puts_(b, "\"");
	}
	puts_(b, "\n}");
}

// fast_create makes the pod of `podsb [--root DIR] create --network none
// [NAME]` as sandbox.Create does, from the plan Go recorded in ROOT/.create
// (sandbox/template_linux.go), if the record still holds. It returns, for
// Go to do the job, on anything else; a failure after the pod's directory
// is made undoes everything first, so that Go starts over and reports.
static void fast_create(const char *root, int argc, char **argv, int i)
{
	const char *pod = 0;
	char gen[16];
	int none = 0;

	for (; i < argc; i++) {
		if (eq(argv[i], "--network") && i + 1 < argc && eq(argv[i + 1], "none"))
			none = 1, i++;
		else if (eq(argv[i], "--network=none"))
			none = 1;
		else if (argv[i][0] == '-' || pod)
			return;
		else
			pod = argv[i];
	}
	if (!none || !clean(root) || !safe(root) || len(root) > 200 || sys(SYS_geteuid, 0, 0, 0) != 0)
		return;
	if (!pod) {
		// As sandbox.newID: 12 hex digits, not all of them digits.
		unsigned char r[6];
		int digits;
		do {
			if (sys(SYS_getrandom, (i64)r, 6, 0) != 6)
				return;
			digits = 1;
			for (int k = 0; k < 6; k++) {
				gen[2 * k] = "0123456789abcdef"[r[k] >> 4];
				gen[2 * k + 1] = "0123456789abcdef"[r[k] & 15];
			}
			for (int k = 0; k < 12; k++)
				digits &= gen[k] <= '9';
		} while (digits);
		gen[12] = 0;
		pod = gen;
	}
	if (!validName(pod))
		return;

	// The record, and whether it still holds.
	char tpl[1 << 16];
	char path[4200];
	struct buf pb = {path, 0, 4096, 0};
	puts_(&pb, root);
	puts_(&pb, "/.create");
	path[pb.n] = 0;
	// The record says what runs as root: only if root alone can have
	// written it (the state root and the file root's, not writable by
	// group or others).
	char rst[144], tst[144];
	if (sys6(SYS_newfstatat, AT_FDCWD, (i64)root, (i64)rst, 0, 0, 0) < 0 ||
	    sys6(SYS_newfstatat, AT_FDCWD, (i64)path, (i64)tst, AT_SYMLINK_NOFOLLOW, 0, 0) < 0 ||
	    *(u32 *)(rst + 28) != 0 || (*(u32 *)(rst + 24) & 022) || *(u32 *)(tst + 28) != 0 ||
	    (*(u32 *)(tst + 24) & (S_IFMT | 022)) != 0100000)
		return;
	i64 n = readfile(path, tpl, sizeof tpl);
	if (n <= 8 || n == sizeof tpl || !prefix(tpl, "podsbC1\n"))
		return;
	const char *p = tpl + 8, *end = tpl + n, *boot, *tname, *prog, *eprog, *oci, *troot;
	u32 nboot, ninputs, ntname, nprog, eops, neprog, noci, ntroot;
	u64 v[9];
	if (!takestr(&p, end, &boot, &nboot) || !sameboot(boot, nboot) || !takestr(&p, end, &oci, &noci) ||
	    !takestr(&p, end, &troot, &ntroot) || ntroot != len(root) || end - p < 72 ||
	    !fingerprint("/proc/self/exe", 3, v) || !same(p, v))
		return;
	for (u32 k = 0; k < ntroot; k++)
		if (troot[k] != root[k])
			return;
	p += 72;
	if (!take(&p, end, &ninputs, 4))
		return;
	for (u32 k = 0; k < ninputs; k++) {
		u32 kind, np;
		const char *ip;
		char ipath[512];
		if (!take(&p, end, &kind, 4) || !takestr(&p, end, &ip, &np) || np >= sizeof ipath || end - p < 72)
			return;
		for (u32 c = 0; c < np; c++)
			ipath[c] = ip[c];
		ipath[np] = 0;
		if (!fingerprint(ipath, kind, v) || !same(p, v))
			return;
		p += 72;
	}
	if (!takestr(&p, end, &tname, &ntname) || !takestr(&p, end, &prog, &nprog) || !take(&p, end, &eops, 4) ||
	    !takestr(&p, end, &eprog, &neprog) || p != end)
		return;
	char program[1 << 17];
	struct buf pg = {program, 0, sizeof program, 0};
	if (!substitute(prog, nprog, tname, ntname, pod, &pg))
		return;

	// Nothing may be in the way: Go reports it.
	char link[300];
	struct buf lb = {link, 0, sizeof link - 1, 0};
	puts_(&lb, "/run/netns/");
	puts_(&lb, pod);
	link[lb.n] = 0;
	char st[144];
	if (sys6(SYS_newfstatat, AT_FDCWD, (i64)link, (i64)st, AT_SYMLINK_NOFOLLOW, 0, 0) != -ENOENT)
		return;

	struct making mk = {.root = root, .pod = pod, .dfd = -1};
	for (u64 k = 0; k <= lb.n; k++)
		mk.link[k] = link[k];
	u64 block = (1UL << 1) | (1UL << 0) | (1UL << 14) | (1UL << 2); // HUP INT TERM QUIT, as create ignores them
	if ((mk.rootfd = sys6(SYS_openat, AT_FDCWD, (i64)root, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, 0, 0)) < 0)
		return;
	sys6(SYS_rt_sigprocmask, SIG_BLOCK, (i64)&block, (i64)&mk.mask, 8, 0, 0);
	if (sys(SYS_mkdirat, mk.rootfd, (i64)pod, 0700) < 0) {
		undo(&mk);
		return;
	}
	mk.dir = 1;
	char st1[144], st2[144];
	if ((mk.dfd = sys6(SYS_openat, mk.rootfd, (i64)pod, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, 0, 0)) < 0 ||
	    sys(SYS_flock, mk.dfd, LOCK_EX | LOCK_NB, 0) < 0 || sys(SYS_fstat, mk.dfd, (i64)st1, 0) < 0 ||
	    sys6(SYS_newfstatat, mk.rootfd, (i64)pod, (i64)st2, 0, 0, 0) < 0 ||
	    *(u64 *)(st1 + 8) != *(u64 *)(st2 + 8) || sys(SYS_mkdirat, mk.dfd, (i64)"ns", 0700) < 0 ||
	    sys(SYS_mkdirat, mk.dfd, (i64)"rootfs", 0700) < 0) {
		undo(&mk);
		return;
	}

	// The init: pause in setup mode, from a sealed memfd, in five new
	// namespaces and a session of its own; fds 0-2 /dev/null, 3 the
	// program, 4 the status pipe, 5 the memfd.
	int cfg[2], status[2];
	i64 null = sys6(SYS_openat, AT_FDCWD, (i64)"/dev/null", O_RDWR | O_CLOEXEC, 0, 0, 0);
	i64 memfd = pause_memfd();
	if (null < 0 || memfd < 0 || sys(SYS_pipe2, (i64)cfg, O_CLOEXEC, 0) < 0 || sys(SYS_pipe2, (i64)status, O_CLOEXEC, 0) < 0) {
		undo(&mk);
		return;
	}
	i64 pid = sys6(SYS_clone, CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0, 0);
	if (pid == 0) {
		char a0[] = "pause", a1[] = "setup";
		const char *pargv[] = {a0, a1, 0}, *penv[] = {0};
		i64 c = sys(SYS_fcntl, cfg[0], F_DUPFD_CLOEXEC, 10), s2 = sys(SYS_fcntl, status[1], F_DUPFD_CLOEXEC, 10);
		i64 m = sys(SYS_fcntl, memfd, F_DUPFD_CLOEXEC, 10);

		sys(SYS_setsid, 0, 0, 0);
		moveFD(null, 0);
		moveFD(null, 1);
		moveFD(null, 2);
		moveFD(c, 3);
		moveFD(s2, 4);
		moveFD(m, 5);
		sys6(SYS_rt_sigprocmask, SIG_SETMASK, (i64)&mk.mask, 0, 8, 0, 0);
		if (sys(SYS_chdir, (i64)"/", 0, 0) == 0)
			sys6(SYS_execveat, 5, (i64)"", (i64)pargv, (i64)penv, AT_EMPTY_PATH, 0);
		quit(127);
	}
	sys(SYS_close, cfg[0], 0, 0);
	sys(SYS_close, status[1], 0, 0);
	sys(SYS_close, memfd, 0, 0);
	sys(SYS_close, null, 0, 0);
	if (pid < 0) {
		sys(SYS_close, cfg[1], 0, 0);
		sys(SYS_close, status[0], 0, 0);
		undo(&mk);
		return;
	}
	mk.child = pid;

	// The first state (creating), then the program, then the init's
	// report: end of file, or the failed operation (Go reports it).
	char sbuf[8192];
	struct buf sb = {sbuf, 0, sizeof sbuf, 0};
	struct {
		i64 sec, nsec;
	} now;
	u64 start = starttime(pid), inodes[5];
	sys(SYS_clock_gettime, 0, (i64)&now, 0);
	putstate(&sb, oci, noci, root, pod, "creating", pid, now.sec, now.nsec, start, boot, nboot, 0);
	i64 got = 0, r = 1;
	char rep[8];
	if (start == 0 || sb.over || !writeat(mk.dfd, "state.json", "state.json.tmp", sbuf, sb.n) ||
	    sys(SYS_write, cfg[1], (i64)program, pg.n) != (i64)pg.n) {
		sys(SYS_close, cfg[1], 0, 0);
		sys(SYS_close, status[0], 0, 0);
		undo(&mk);
		return;
	}
	sys(SYS_close, cfg[1], 0, 0);
	while (got < 8 && (r = sys(SYS_read, status[0], (i64)rep + got, 8 - got)) != 0)
		if (r > 0)
			got += r;
		else if (r != -EINTR)
			break;
	sys(SYS_close, status[0], 0, 0);
	if (got != 0 || r < 0) {
		undo(&mk);
		return;
	}

	// Pin the namespaces: ns/ a private bind mount of itself, each
	// handle a bind mount of /proc/PID/ns/*.
	const char *kinds = NS_FILES;
	pb.n = 0;
	puts_(&pb, root);
	puts_(&pb, "/");
	puts_(&pb, pod);
	puts_(&pb, "/ns");
	path[pb.n] = 0;
	mk.pinned = 1;
	if (sys6(SYS_mount, (i64)path, (i64)path, 0, MS_BIND, 0, 0) < 0 ||
	    sys6(SYS_mount, (i64)"", (i64)path, 0, MS_PRIVATE, 0, 0) < 0) {
		undo(&mk);
		return;
	}
	puts_(&pb, "/");
	u64 base = pb.n;
	for (int k = 0; k < 5; k++) {
		char src[64];
		struct buf sbf = {src, 0, sizeof src - 1, 0};
		puts_(&sbf, "/proc/");
		putnum(&sbf, pid);
		puts_(&sbf, "/ns/");
		puts_(&sbf, kinds + 4 * k);
		src[sbf.n] = 0;
		pb.n = base;
		puts_(&pb, kinds + 4 * k);
		path[pb.n] = 0;
		i64 fd = sys6(SYS_openat, AT_FDCWD, (i64)path, O_RDONLY | O_CREAT | O_CLOEXEC, 0444, 0, 0);
		if (fd < 0 || sys(SYS_close, fd, 0, 0) < 0 || sys6(SYS_mount, (i64)src, (i64)path, 0, MS_BIND, 0, 0) < 0 ||
		    sys6(SYS_newfstatat, AT_FDCWD, (i64)path, (i64)st, 0, 0, 0) < 0) {
			undo(&mk);
			return;
		}
		inodes[k] = *(u64 *)(st + 8);
	}

	// ip netns: a symbolic link to the pinned handle.
	sys(SYS_mkdirat, AT_FDCWD, (i64)"/run/netns", 0755);
	pb.n = base;
	puts_(&pb, "net");
	path[pb.n] = 0;
	if (sys(SYS_symlinkat, (i64)path, AT_FDCWD, (i64)link) < 0) {
		undo(&mk);
		return;
	}
	mk.linked = 1;

	// The join record (sandbox/join_linux.go), then the final state.
	char jbuf[16384];
	struct buf jb = {jbuf, 0, sizeof jbuf, 0};
	u64 pid64 = pid;
	u32 flags = 0, npod = len(pod);
	put(&jb, "podsbJ2\n", 8);
	put(&jb, &pid64, 8);
	put(&jb, &start, 8);
	put32(&jb, eops);
	put32(&jb, flags);
	put32(&jb, nboot);
	put(&jb, boot, nboot);
	put32(&jb, npod);
	put(&jb, pod, npod);
	put32(&jb, neprog);
	put(&jb, eprog, neprog);
	sb.n = 0;
	putstate(&sb, oci, noci, root, pod, "running", pid, now.sec, now.nsec, start, boot, nboot, inodes);
	if (jb.over || sb.over || !writeat(mk.dfd, "join", "join.tmp", jbuf, jb.n) ||
	    !writeat(mk.dfd, "state.json", "state.json.tmp", sbuf, sb.n)) {
		undo(&mk);
		return;
	}
	done(pod);
}

void fast_exec(i64 *sp)
{
	int argc = (int)sp[0];
	char **argv = (char **)(sp + 1), **envp = argv + argc + 1;
	const char *root = "/run/podsb", *pod = 0, *dir = "/";
	const char *extra[MAX_STR];
	int nextra = 0, interactive = 0, i = 1;

	for (char **e = envp; *e; e++) {
		const char *v;

		if ((v = prefix(*e, "PODSB_ROOT=")) && *v)
			root = v;
		if ((v = prefix(*e, "PODSB_FASTEXEC=")) && eq(v, "0"))
			return;
	}
	// Flags: exactly those given below, in these spellings; any other
	// argument starting with '-' is left to Go.
	for (; i < argc; i++) {
		const char *v;

		if (eq(argv[i], "--root") && i + 1 < argc)
			root = argv[++i];
		else if ((v = prefix(argv[i], "--root=")))
			root = v;
		else
			break;
	}
	if (i < argc && eq(argv[i], "rm")) {
		fast_rm(root, argc, argv, i + 1);
		return;
	}
	if (i < argc && eq(argv[i], "create")) {
		for (char **e = envp; *e; e++)
			if (prefix(*e, "PODSB_TEST_STOP_AFTER="))
				return;
		fast_create(root, argc, argv, i + 1);
		return;
	}
	if (i >= argc || !eq(argv[i++], "exec"))
		return;
	for (; i < argc; i++) {
		const char *a = argv[i], *v;

		if (eq(a, "-i") || eq(a, "--interactive"))
			interactive = 1;
		else if ((eq(a, "-e") || eq(a, "--env")) && i + 1 < argc && nextra < MAX_STR)
			extra[nextra++] = argv[++i];
		else if ((v = prefix(a, "--env=")) && nextra < MAX_STR)
			extra[nextra++] = v;
		else if ((eq(a, "-w") || eq(a, "--workdir")) && i + 1 < argc)
			dir = argv[++i];
		else if ((v = prefix(a, "--workdir=")))
			dir = v;
		else if (eq(a, "--root") && i + 1 < argc)
			root = argv[++i];
		else if ((v = prefix(a, "--root=")))
			root = v;
		else if (eq(a, "--")) {
			i++;
			break;
		} else if (a[0] == '-')
			return;
		else
			break;
	}
	if (i >= argc)
		return;
	pod = argv[i++];
	if (i < argc && eq(argv[i], "--"))
		i++;
	int ncmd = argc - i;
	char **cmd = argv + i;
	if (ncmd < 1 || ncmd > MAX_STR - 1 || !cmd[0][0] || !validName(pod) || dir[0] != '/' || !root[0])
		return;
	for (int k = 0; k < nextra; k++)
		if (extra[k][0] == '=' || !has(extra[k], '='))
			return;
	if (sys(SYS_geteuid, 0, 0, 0) != 0)
		return;

	// The pod: its join record, pause alive, its handles.
	char path[4200], rec[16384];
	struct buf pb = {path, 0, 4096, 0};
	struct join j;
	u64 base;
	i64 n;

	puts_(&pb, root);
	puts_(&pb, "/");
	puts_(&pb, pod);
	puts_(&pb, "/");
	base = pb.n;
	puts_(&pb, "join");
	if (pb.over)
		return;
	path[pb.n] = 0;
	if ((n = readfile(path, rec, sizeof rec)) < 0 || n == sizeof rec || !parseJoin(rec, n, &j) || !alive(&j))
		return;
	// Not static: an array of pointers in data would need relocating.
	const char *names[] = {"ns/pid", "ns/uts", "ns/ipc", "ns/net", "ns/mnt"};
	static const int types[] = {CLONE_NEWPID, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS};
	i64 ns[5];
	for (int k = 0; k < 5; k++) {
		pb.n = base;
		puts_(&pb, names[k]);
		path[pb.n] = 0;
		if ((ns[k] = sys6(SYS_openat, AT_FDCWD, (i64)path, O_RDONLY | O_CLOEXEC, 0, 0, 0)) < 0) {
			while (k--)
				sys(SYS_close, ns[k], 0, 0);
			return;
		}
	}

	// The program: the planned operations, then Exec of the command.
	char prog[16384];
	struct buf pg = {prog, 0, sizeof prog, 0};
	put(&pg, j.prog, j.nprog);
	put32(&pg, OP_EXEC);
	put32(&pg, 0);
	put(&pg, "\0\0\0\0\0\0\0\0", 8);
	put32(&pg, ncmd + 1);
	put32(&pg, len(cmd[0]) + 1);
	put(&pg, cmd[0], len(cmd[0]) + 1);
	for (int k = 0; k < ncmd; k++) {
		put32(&pg, len(cmd[k]) + 1);
		put(&pg, cmd[k], len(cmd[k]) + 1);
	}
	// The environment: sandbox's default (PATH, HOME, HOSTNAME), then -e.
	char host[80];
	const char *env[MAX_STR + 4];
	int nenv = 0;
	struct buf hb = {host, 0, sizeof host - 1, 0};
	puts_(&hb, "HOSTNAME=");
	put(&hb, j.host, j.nhost);
	host[hb.n] = 0;
	env[nenv++] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	env[nenv++] = "HOME=/root";
	env[nenv++] = host;
	for (int k = 0; k < nextra; k++)
		nenv = setenv_(env, nenv, extra[k]);
	env[nenv] = 0;
	if (pg.over || hb.over) {
		for (int k = 0; k < 5; k++)
			sys(SYS_close, ns[k], 0, 0);
		return;
	}

	// Pipes and the pause memfd, made before anything is joined.
	int fds[6]; // prog r/w, status r/w, go r/w
	i64 memfd;
	for (int k = 0; k < 3; k++)
		if (sys(SYS_pipe2, (i64)&fds[2 * k], O_CLOEXEC, 0) < 0)
			fail(125, "exec: pipe", "", -EINVAL);
	if ((memfd = pause_memfd()) < 0)
		fail(125, "exec: pause memfd", "", memfd);
	// The program fits the pipe: sent now, whole.
	if (sys(SYS_write, fds[1], (i64)prog, pg.n) != (i64)pg.n)
		fail(125, "exec: send the program", "", -EINVAL);
	sys(SYS_close, fds[1], 0, 0);
	// Descriptors inherited without close-on-exec must not reach the pod.
	sys(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);

	// The forwarded signals are blocked from here and read from a signalfd
	// once the command runs: none is lost, and none is handled in the
	// child (pause's Exec clears the mask it inherits).
	u64 sigs = 0;
	static const int fwd[] = {2, 15, 1, 3, 10, 12, 28, 14, 18, 20}; // INT TERM HUP QUIT USR1 USR2 WINCH ALRM CONT TSTP
	for (u64 k = 0; k < sizeof fwd / sizeof fwd[0]; k++)
		sigs |= 1UL << (fwd[k] - 1);
	sys6(SYS_rt_sigprocmask, SIG_BLOCK, (i64)&sigs, 0, 8, 0, 0);
	i64 sfd = sys6(SYS_signalfd4, -1, (i64)&sigs, 8, O_CLOEXEC, 0, 0);

	// Join: this process is the only thread, so every namespace can be
	// joined, the mount namespace last (it changes the root and cwd to
	// the pod's). From here there is no going back to Go.
	for (int k = 0; k < 5; k++) {
		i64 r = sys(SYS_setns, ns[k], types[k], 0);
		if (r < 0)
			fail(125, "exec: join the pod's namespace ", names[k] + 3, r);
		sys(SYS_close, ns[k], 0, 0);
	}
	char st[144];
	i64 r = sys6(SYS_newfstatat, AT_FDCWD, (i64)dir, (i64)st, 0, 0, 0);
	if (r < 0 || (*(u32 *)(st + 24) & S_IFMT) != S_IFDIR)
		fail3(125, "working directory ", dir, ": not a directory in the pod", 0);
	i64 in = 0;
	if (!interactive && (in = sys6(SYS_openat, AT_FDCWD, (i64)"/dev/null", O_RDWR | O_CLOEXEC, 0, 0, 0)) < 0)
		fail(125, "exec: open /dev/null in the pod", "", in);

	// Fork: the child is born in the pod's PID namespace.
	i64 pid = sys(SYS_fork, 0, 0, 0);
	if (pid == 0) {
		// Out of the way of 0-6 first, then into place.
		i64 p = sys(SYS_fcntl, fds[0], F_DUPFD_CLOEXEC, 10), s = sys(SYS_fcntl, fds[3], F_DUPFD_CLOEXEC, 10);
		i64 g = sys(SYS_fcntl, fds[4], F_DUPFD_CLOEXEC, 10), m = sys(SYS_fcntl, memfd, F_DUPFD_CLOEXEC, 10);
		i64 i0 = interactive ? 0 : sys(SYS_fcntl, in, F_DUPFD_CLOEXEC, 10);
		// On the stack: a constant array of pointers would need relocating.
		char a0[] = "pause", a1[] = "run";
		const char *pargv[] = {a0, a1, 0};

		moveFD(i0, 0);
		moveFD(p, PROG_FD);
		moveFD(s, STATUS_FD);
		moveFD(g, GO_FD);
		moveFD(m, PAUSE_FD);
		// A session of its own: podsb's controlling terminal, if any,
		// must not be the command's (/dev/tty and TIOCSTI would reach it).
		sys(SYS_setsid, 0, 0, 0);
		if (sys(SYS_chdir, (i64)dir, 0, 0) == 0)
			sys6(SYS_execveat, PAUSE_FD, (i64)"", (i64)pargv, (i64)env, AT_EMPTY_PATH, 0);
		quit(125);
	}
	if (pid < 0) {
		if (pid == -ENOMEM)
			fail(125, pod, ": pod is not running", 0);
		fail(125, "exec: fork", "", pid);
	}
	sys(SYS_close, fds[0], 0, 0);
	sys(SYS_close, fds[3], 0, 0);
	sys(SYS_close, fds[4], 0, 0);
	sys(SYS_close, memfd, 0, 0);

	// The status pipe: end of file once the command is executed, or a
	// failed operation's index and errno.
	u32 status[2];
	i64 got = 0;
	while (got < 8 && (r = sys(SYS_read, fds[2], (i64)status + got, 8 - got)) != 0) {
		if (r == -EINTR)
			continue;
		if (r < 0)
			break;
		got += r;
	}
	int code = -1;
	if (got == 8) {
		i64 err = -(i64)(int)status[1];
		if (status[0] == j.ops && err == -ENOENT)
			code = 127;
		else if (status[0] == j.ops && (err == -EACCES || err == -ENOEXEC || err == -EISDIR || err == -EPERM))
			code = 126;
		char m[512];
		struct buf w = {m, 0, sizeof m - 1, 0};
		puts_(&w, "podsb: ");
		puts_(&w, cmd[0]);
		if (code == 127)
			puts_(&w, ": command not found");
		else if (code == 126)
			puts_(&w, ": permission denied: not executable");
		else {
			puts_(&w, ": operation ");
			putnum(&w, status[0]);
			puts_(&w, " of the exec program: errno ");
			putnum(&w, -err);
			code = 125;
		}
		if (w.over)
			w.n = w.cap;
		m[w.n++] = '\n';
		sys(SYS_write, 2, (i64)m, w.n);
	} else if (got != 0)
		code = 125;

	// Wait, forwarding signals.
	i64 pidfd = sys(SYS_pidfd_open, pid, 0, 0);
	int ws = 0;
	for (;;) {
		struct {
			int fd;
			short events, revents;
		} pfd[2] = {{(int)pidfd, POLLIN, 0}, {(int)sfd, POLLIN, 0}};
		if (pidfd < 0 || sfd < 0 || code >= 0)
			break;
		r = sys6(SYS_ppoll, (i64)pfd, 2, 0, 0, 8, 0);
		if (r < 0 && r != -EINTR)
			break;
		if (pfd[1].revents & POLLIN) {
			u32 info[32];
			if (sys(SYS_read, sfd, (i64)info, sizeof info) == sizeof info)
				sys(SYS_kill, pid, info[0], 0);
		}
		if (pfd[0].revents & POLLIN)
			break;
	}
	while ((r = sys6(SYS_wait4, pid, (i64)&ws, 0, 0, 0, 0)) == -EINTR)
		;
	if (code >= 0)
		quit(code);
	if (r < 0)
		fail(125, "exec: wait", "", r);
	if ((ws & 0x7f) == 0)
		quit((ws >> 8) & 0xff);
	quit(128 + (ws & 0x7f));
}
