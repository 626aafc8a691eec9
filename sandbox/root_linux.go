package sandbox

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/errclass"
)

// beneath is how podsb resolves a path below the state root: through no
// symbolic link (magic links included) and never out of the directory it
// starts from. Records and handles are opened so, from a directory fd.
const beneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS

// openRoot opens the state root root (an absolute path) and checks that
// only root can change it: the root owned by root and writable by nobody
// else, and every directory above it owned by root and writable by nobody
// else unless sticky. A root that does not exist is reported as
// os.ErrNotExist.
//
// Only the root's own directory is checked, not the path that led to it:
// a symbolic link on the way is followed, and the directories above the
// directory reached are checked.
func openRoot(root string) (*os.File, error) {
	// The descriptor directly: os.OpenFile would add five system calls
	// (the poller, fstat), and ps opens the root once per pod. O_DIRECTORY
	// makes it a directory.
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	f := os.NewFile(uintptr(fd), root)
	var st unix.Stat_t
	if err = unix.Fstat(fd, &st); err != nil {
		err = &os.PathError{Op: "stat", Path: root, Err: err}
	} else if !trustedRoot(trustUID(st.Uid), fs.ModeDir|fs.FileMode(st.Mode&0o777)) {
		err = untrusted(root, root)
	}
	if err == nil {
		var real string
		if real, err = os.Readlink(fdPath(f)); err == nil {
			err = checkParents(root, real)
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// checkParents checks every directory above the directory real (a path
// with no symbolic link), up to /.
func checkParents(root, real string) error {
	for dir := real; dir != "/"; {
		dir = filepath.Dir(dir)
		fi, err := os.Lstat(dir)
		if err != nil {
			return err
		}
		if !trustedParent(trustUID(owner(fi)), fi.Mode()) {
			return untrusted(root, dir)
		}
	}
	return nil
}

// makeRoot makes the state root, if missing, as a directory of root's
// (0700), and opens it. Before it makes anything it checks the nearest
// directory above that exists, so that nothing is made where another user
// could change it.
func makeRoot(root string) (*os.File, error) {
	f, err := openRoot(root)
	if !isNotExist(err) {
		return f, err
	}
	dir := filepath.Dir(root)
	for {
		if _, err := os.Stat(dir); err == nil || dir == "/" {
			break
		}
		dir = filepath.Dir(dir)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(real)
	if err != nil {
		return nil, err
	}
	if !trustedParent(trustUID(owner(fi)), fi.Mode()) {
		return nil, untrusted(root, real)
	}
	if err := checkParents(root, real); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	return openRoot(root)
}

// checkRoot checks the state root as openRoot does; a missing root is
// fine (it holds no pods).
func checkRoot(root string) error {
	f, err := openRoot(root)
	if err == nil {
		return f.Close()
	}
	if isNotExist(err) {
		return nil
	}
	return err
}

func untrusted(root, dir string) error {
	return errclass.New(ErrUntrustedRoot, UntrustedRootFormat, root, dir)
}

// trustUID is uid as the trust checks take it: 0 for every owner that
// trustedOwner trusts (a rootless user's own directories).
func trustUID(uid uint32) uint32 {
	if trustedOwner(uid) {
		return 0
	}
	return uid
}

func owner(fi os.FileInfo) uint32 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Uid
	}
	return ^uint32(0)
}

// fdPath is the /proc path of f's descriptor: a path through which the
// kernel reaches f's file itself, whatever its name is now.
func fdPath(f *os.File) string { return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())) }

// openAt opens name below the directory dir, following no symbolic link.
// A symbolic link anywhere in name fails with ELOOP.
func openAt(dir *os.File, name string, flags int, mode uint32) (*os.File, error) {
	fd, err := openFdAt(dir, name, flags, mode)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir.Name(), name)), nil
}

// openFdAt is openAt's descriptor, without an os.File (whose kind checks
// and poller add system calls to each of the thousands of reads of a ps).
func openFdAt(dir *os.File, name string, flags int, mode uint32) (int, error) {
	how := &unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Mode: uint64(mode), Resolve: beneath}
	for {
		fd, err := unix.Openat2(int(dir.Fd()), name, how)
		if err == nil {
			return fd, nil
		}
		// EAGAIN: a rename or mount raced the lookup; try again.
		if !errors.Is(err, unix.EINTR) && !errors.Is(err, unix.EAGAIN) {
			return -1, &os.PathError{Op: "open", Path: filepath.Join(dir.Name(), name), Err: err}
		}
	}
}

// readFileAt reads the regular file name below dir, of at most max bytes,
// through its descriptor (openFdAt).
func readFileAt(dir *os.File, name string, max int64) ([]byte, error) {
	path := filepath.Join(dir.Name(), name)
	// O_NONBLOCK: a FIFO in its place must not hang the reader.
	fd, err := openFdAt(dir, name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size > max {
		return nil, &os.PathError{Op: "read", Path: path, Err: errors.New("not a regular file of podsb's")}
	}
	b := make([]byte, st.Size)
	for n := 0; n < len(b); {
		m, err := unix.Pread(fd, b[n:], int64(n))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if m == 0 {
			return b[:n], nil
		}
		n += m
	}
	return b, nil
}

// writeFileAt writes b to name below dir (mode 0600) so that readers see
// the old or the new file, never a part: to name.tmp, then renamed. A
// failed write removes name.tmp.
func writeFileAt(dir *os.File, name string, b []byte) error {
	tmp := name + ".tmp"
	f, err := openAt(dir, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(int(dir.Fd()), tmp, int(dir.Fd()), name)
		if err != nil {
			err = &os.LinkError{Op: "rename", Old: tmp, New: name, Err: err}
		}
	}
	if err != nil {
		unix.Unlinkat(int(dir.Fd()), tmp, 0)
		return err
	}
	return nil
}

// sameEntry tells whether name in dir is still the file f.
func sameEntry(dir *os.File, name string, f *os.File) bool {
	var a, b unix.Stat_t
	if unix.Fstat(int(f.Fd()), &a) != nil || unix.Fstatat(int(dir.Fd()), name, &b, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}
