package sandbox

import (
	"errors"
	"io"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// stdio are the three standard fds of a child being started: an *os.File is
// passed as it is, an io.Reader or io.Writer through a pipe and a copying
// goroutine, nil as /dev/null.
type stdio struct {
	files   [3]*os.File
	parent  []*os.File // our ends of pipes and /dev/null: closed after start or wait
	child   []*os.File // the child's ends, closed once it has them
	outputs sync.WaitGroup
}

func newStdio(in io.Reader, out, errw io.Writer) (*stdio, error) {
	s := &stdio{}
	var err error
	if s.files[0], err = s.input(in); err == nil {
		if s.files[1], err = s.output(out); err == nil {
			s.files[2], err = s.output(errw)
		}
	}
	for i := 0; err == nil && i < 3; i++ {
		err = checkStdio(i, s.files[i])
	}
	if err != nil {
		s.closeChild()
		s.closeParent()
		return nil, err
	}
	return s, nil
}

// stdioNames name the standard fds in errors.
var stdioNames = [3]string{"stdin", "stdout", "stderr"}

// checkStdio refuses a caller's file as the standard fd i of a command in
// a pod if it is a directory, a symbolic link or an O_PATH descriptor: the
// command could reach host files through it, by /proc/self/fd/i/.. and
// openat (the CVE-2024-21626 class). Pipes, terminals, sockets, devices
// and regular files pass.
func checkStdio(i int, f *os.File) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); errors.Is(err, unix.EBADF) {
		return nil // closed: the fork reports it
	} else if err != nil {
		return &os.PathError{Op: "fstat", Path: stdioNames[i], Err: err}
	}
	fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		return &os.PathError{Op: "fcntl", Path: stdioNames[i], Err: err}
	}
	what := ""
	switch {
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
		what = "a directory"
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		what = "a symbolic link"
	case fl&unix.O_PATH != 0:
		what = "an O_PATH descriptor"
	default:
		return nil
	}
	return invalidf("%s (fd %d) is %s: a command in a pod could reach host files through it; give a file, pipe or terminal", stdioNames[i], i, what)
}

func (s *stdio) null() (*os.File, error) {
	f, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err == nil {
		s.child = append(s.child, f)
	}
	return f, err
}

func (s *stdio) input(r io.Reader) (*os.File, error) {
	switch r := r.(type) {
	case nil:
		return s.null()
	case *os.File:
		return r, nil
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	s.child = append(s.child, pr)
	go func() {
		io.Copy(pw, r)
		pw.Close()
	}()
	return pr, nil
}

func (s *stdio) output(w io.Writer) (*os.File, error) {
	switch w := w.(type) {
	case nil:
		return s.null()
	case *os.File:
		return w, nil
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	s.child = append(s.child, pw)
	s.parent = append(s.parent, pr)
	s.outputs.Add(1)
	go func() {
		defer s.outputs.Done()
		io.Copy(w, pr)
	}()
	return pw, nil
}

// closeChild closes the child's ends after the child has been started, so
// that the output pipes see end of file when the child exits.
func (s *stdio) closeChild() {
	for _, f := range s.child {
		f.Close()
	}
	s.child = nil
}

// wait waits until the outputs are copied, then closes our ends.
func (s *stdio) wait() {
	s.outputs.Wait()
	s.closeParent()
}

func (s *stdio) closeParent() {
	for _, f := range s.parent {
		f.Close()
	}
	s.parent = nil
}

// fork starts path with argv and env from the calling thread (so in its
// namespaces and root), with the stdio of s and the extra files from fd 3 on.
// It returns the child's PID in the caller's PID namespace.
func fork(path string, argv, env []string, dir string, s *stdio, extra []*os.File, sys *syscall.SysProcAttr) (int, error) {
	files := []uintptr{s.files[0].Fd(), s.files[1].Fd(), s.files[2].Fd()}
	for _, f := range extra {
		files = append(files, f.Fd())
	}
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{Dir: dir, Env: env, Files: files, Sys: sys})
	s.closeChild()
	return pid, err
}

// waitExit waits for the child pid and returns its exit status as a shell
// gives it: its exit code, or 128+N if signal N killed it.
func waitExit(pid int) (int, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, os.NewSyscallError("wait4", err)
		}
		if ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ws.ExitStatus(), nil
	}
}
