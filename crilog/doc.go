// Package crilog writes CRI container logs: podsb-logger (cmd/podsb-logger,
// whose main is Main) is one small process per container that holds the
// container's output and input, and this package starts it (Start), asks it
// to reopen its log (Reopen), attaches to it (Attach), and parses the log
// it writes (ParseLine, ReadLine).
//
// # Why a process
//
// A container's stdout and stderr are pipes (or a terminal); whoever holds
// their read ends must outlive any restart of podsb-cri, even a SIGKILL,
// or the container's next write fails with EPIPE. podsb-logger holds them,
// as conmon does for CRI-O and the shim does for containerd. It links only
// the standard library and golang.org/x/sys.
//
// # podsb-logger
//
//	podsb-logger --log-path PATH --socket PATH
//	    (--stdout-fd N --stderr-fd N [--stdin --stdin-fd N] | --pty-fd N [--stdin])
//	    [--stdin-once] [--ready-fd N]
//
// The fds are inherited: the read ends of the container's stdout and
// stderr pipes and the write end of its stdin pipe, or the master of its
// terminal (output and input both). Paths are absolute. The log is opened
// O_APPEND, created 0640; its directory must exist. Once the log is open
// and the socket served, the logger writes "ready\n" to the ready fd and
// closes it; if it cannot start, it writes its error there (and to stderr)
// and exits: 2 for bad flags or fds, 1 for a log or socket it cannot open.
// It exits 0, after writing the last incomplete lines, telling its
// clients, closing the container's stdin and removing its socket, once
// every output reached its end: EOF on the pipes, EIO on a terminal's
// master once no process holds the terminal.
//
// It runs in a session of its own and ignores SIGHUP, SIGINT, SIGTERM and
// SIGPIPE: its death would break its container's pipes, and it ends by
// itself when the container's output does. SIGKILL still kills it.
//
// # The log
//
// Each line of output is one record "TIME STREAM F CONTENT\n" (line.go),
// written when the line is complete, one write(2) per read of output, so
// that a reader sees a short command's output as soon as it exited. A line
// longer than MaxLine (16 KiB) is cut into "P" records. A terminal's
// output is all stdout, its "\r\n" written as a line end. If a write
// fails (a full disk), the records are dropped, the logger goes on reading
// so that the container never blocks on its log, and reports the failure
// and the recovery on its stderr (Options.Diag).
//
// # The protocol (version 1)
//
// The socket is a unix stream socket. Both sides send frames: a type byte,
// the payload's length as a big-endian uint32 (at most 64 KiB), the
// payload. The client starts with a hello frame 'H' whose payload is
// "podsb-logger 1 reopen", "podsb-logger 1 attach" or
// "podsb-logger 1 attach stdin". A hello the logger does not understand,
// an unsupported version among them, is answered with 'E' and the reason
// as text, and the connection closed.
//
// reopen: the logger opens its log path anew and answers 'K' (done) or 'E'
// with the error, keeping the old file in that case.
//
// attach: the logger answers 'H' "podsb-logger 1" (or 'E': stdin asked of
// a container without stdin, or with its stdin-once input closed), then
// sends output as it reads it: '1' stdout, '2' stderr; and 'X' once the
// output ended, then closes. The client sends '0' input, 'C' the end of
// its input (with --stdin-once, the first attach with stdin closes the
// container's stdin with it, or by disconnecting), and 'W' a window size:
// width and height as big-endian uint16s, set on the terminal with
// TIOCSWINSZ (ignored without one). Any number of clients may attach. A
// client 4 MiB of output behind holds the output (and so the container's
// writes) until it catches up, as containerd's attach does, but for 5 s at
// most: then it is disconnected, so that a client that stopped reading
// cannot stop its container.
//
// # Socket paths
//
// A unix socket address holds at most 107 bytes. A longer socket path is
// bound and connected to through its directory, as
// /proc/self/fd/N/NAME; only a name too long for that is an error.
//
// # Privileges
//
// None beyond access to the log path, the socket's directory and the fds.
// The socket is made 0600: whoever connects reads the container's output
// and writes its input.
package crilog
