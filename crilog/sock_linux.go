package crilog

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// maxSockPath is the longest path a unix socket address holds (sun_path
// is 108 bytes with its NUL).
const maxSockPath = 107

// shortPath returns an address for the socket path that fits sun_path:
// path itself, or, for a longer one, the socket's name under its directory
// opened O_PATH, as /proc/self/fd/N/NAME, so that callers may keep state
// in deep directories. done closes the directory; call it after bind or
// connect.
func shortPath(path string) (addr string, done func(), err error) {
	if !filepath.IsAbs(path) {
		return "", nil, fmt.Errorf("socket path %q is not absolute", path)
	}
	if len(path) <= maxSockPath {
		return path, func() {}, nil
	}
	dir, name := filepath.Split(path)
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, &os.PathError{Op: "open socket directory", Path: dir, Err: err}
	}
	addr = fmt.Sprintf("/proc/self/fd/%d/%s", fd, name)
	if len(addr) > maxSockPath {
		unix.Close(fd)
		return "", nil, fmt.Errorf("socket path %s: its name has %d bytes, at most %d fit a unix socket address (%d bytes) beside its directory", path, len(name), maxSockPath-len(addr)+len(name), maxSockPath)
	}
	return addr, func() { unix.Close(fd) }, nil
}

// listen binds and listens on the socket path, long or short, of network
// "unix" (a container's socket) or "unixpacket" (the node logger's control
// socket), made 0600: whoever connects reads the container's output and
// writes its input. The socket is not removed by the listener's Close: the
// caller removes path.
//
// Preconditions: no other goroutine creates files (the umask is the
// process's).
func listen(network, path string) (*net.UnixListener, error) {
	addr, done, err := shortPath(path)
	if err != nil {
		return nil, err
	}
	defer done()
	old := unix.Umask(0o177)
	ln, err := net.ListenUnix(network, &net.UnixAddr{Name: addr, Net: network})
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, unwrapOp(err))
	}
	ln.SetUnlinkOnClose(false)
	return ln, nil
}

// dial connects to the socket path, long or short, of network "unix" or
// "unixpacket".
func dial(ctx context.Context, network, path string) (*net.UnixConn, error) {
	addr, done, err := shortPath(path)
	if err != nil {
		return nil, err
	}
	defer done()
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("connect to logger %s: %w", path, unwrapOp(err))
	}
	return c.(*net.UnixConn), nil
}

// unwrapOp drops a *net.OpError's repetition of the address (which may be
// the /proc/self/fd form) and keeps its cause.
func unwrapOp(err error) error {
	if oe, ok := err.(*net.OpError); ok && oe.Err != nil {
		if se, ok := oe.Err.(*os.SyscallError); ok {
			return se.Err
		}
		return oe.Err
	}
	return err
}
