package reaper

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// name is both the memfd's name and pause's argv[0].
const name = "pause"

// seals make the memfd's contents immutable: no write, no truncate, no
// growth, and no removing or adding seals later.
const seals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE

// Image returns the pause program's executable image. The caller must not
// modify it.
func Image() []byte { return image }

// Memfd returns a sealed (F_SEAL_SEAL|SHRINK|GROW|WRITE), close-on-exec memfd
// named "pause" holding the image. Pods' processes can't modify it.
func Memfd() (*os.File, error) {
	if len(image) == 0 {
		return nil, fmt.Errorf("pause image for %s: %w", runtime.GOARCH, errors.ErrUnsupported)
	}
	fd, err := memfdCreate()
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "memfd:"+name)
	if _, err := f.Write(image); err != nil {
		f.Close()
		return nil, fmt.Errorf("write pause memfd: %w", err)
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal pause memfd: %w", os.NewSyscallError("fcntl", err))
	}
	return f, nil
}

// memfdCreate makes an empty, sealable, close-on-exec memfd. Since Linux 6.3
// a memfd is executable only if asked for with MFD_EXEC when the
// vm.memfd_noexec sysctl is 1; older kernels reject the unknown flag with
// EINVAL, and their memfds are always executable.
func memfdCreate() (int, error) {
	flags := unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING
	fd, err := unix.MemfdCreate(name, flags|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) {
		fd, err = unix.MemfdCreate(name, flags)
	}
	if err != nil {
		return -1, fmt.Errorf("create pause memfd: %w", os.NewSyscallError("memfd_create", err))
	}
	return fd, nil
}

// Exec replaces the calling process with pause, executed from fd with
// execveat(fd, "", argv={"pause"}, envp={}, AT_EMPTY_PATH). It returns only on
// error.
//
// Pause inherits the calling thread's namespaces, root, cwd and credentials
// (all per-thread in the kernel), the process's stdio and its signal mask;
// it then blocks every signal itself, changes to "/", closes every fd above
// 2 and names itself "pause". The caller must keep the *os.File that owns fd
// alive (runtime.KeepAlive) until Exec returns, or a finalizer may close fd
// first.
//
// Unlike syscall.Exec, Exec cannot hold off the runtime's thread creation
// while the kernel replaces the process; on Linux the known effect of that
// race is on set-user-ID images (golang/go#19546), which pause is not.
//
// Preconditions: called on the OS thread, locked, whose namespaces and root
// pause is to keep; nothing else in the process still needs to run, since
// execve ends every other thread.
func Exec(fd int) error {
	path, err := unix.BytePtrFromString("")
	if err != nil {
		return fmt.Errorf("execveat pause: %w", err)
	}
	arg0, err := unix.BytePtrFromString(name)
	if err != nil {
		return fmt.Errorf("execveat pause: %w", err)
	}
	argv := []*byte{arg0, nil}
	envp := []*byte{nil}
	_, _, errno := unix.Syscall6(unix.SYS_EXECVEAT,
		uintptr(fd),
		uintptr(unsafe.Pointer(path)),
		uintptr(unsafe.Pointer(&argv[0])),
		uintptr(unsafe.Pointer(&envp[0])),
		unix.AT_EMPTY_PATH, 0)
	return fmt.Errorf("execveat pause: %w", os.NewSyscallError("execveat", errno))
}
