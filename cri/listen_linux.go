package cri

import (
	"net"

	"golang.org/x/sys/unix"
)

// listenUmask listens on a unix socket made with umask 077, so that it is
// never open to others, not even between bind and chmod. The umask is the
// process's: this runs before the server serves anything.
func listenUmask(path string) (net.Listener, error) {
	old := unix.Umask(0o077)
	defer unix.Umask(old)
	return net.Listen("unix", path)
}
