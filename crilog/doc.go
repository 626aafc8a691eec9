// Package crilog writes CRI container logs: podsb-logger (cmd/podsb-logger,
// whose main is Main) holds the containers' output and input, and this
// package starts it (NewNode and Node.Add; Start for one container), asks
// it to reopen a log (Reopen), attaches to it (Attach), and parses the log
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
// # The node logger
//
// podsb-cri runs one podsb-logger for all its containers, a node logger
// (podsb-logger --node), so that a container costs a few KiB of its memory
// rather than a process (about 0.8 MiB of Go runtime each). Each container
// is served as by a logger of its own (below: its log, its socket, the
// same protocol); one container's failure (a log it cannot open) is that
// container's only.
//
//	podsb-logger --node --control PATH --conn-fd N
//
// fd N is a unix seqpacket socket to the server that started it; later
// servers connect to PATH (made 0600). On each connection the node logger
// says hello ('H' "podsb-logger 1 node"), sends one 'L' message per
// container it serves (the container's ID, log path, socket and flags,
// with duplicates of its outputs as SCM_RIGHTS) and 'Z'; the server sends
// 'A' messages (a container and its fds: the pipes, or the terminal's
// master), each answered 'K' or 'E' once its log is open and its socket
// served; the node logger sends 'D' once a container's output ended and
// its log was written. It exits 0 once it serves no container and no
// server is connected; 2 for bad flags, 1 if it cannot listen on PATH
// (another logger serves it), saying why in an 'E' message and on
// stderr. Like the logger of one container (below), it runs in a session
// of its own and ignores SIGHUP, SIGINT, SIGTERM and SIGPIPE.
//
// Neither crash loses a container's output. The server (Node) keeps
// duplicates of each container's outputs, so that the pipes stay open if
// the node logger dies (SIGKILL): the container's writes fill the pipe
// (64 KiB) and then wait, instead of failing with EPIPE. The server sees the connection
// end, starts a new node logger and hands it every container again. A
// server that restarts takes the duplicates back from the node logger
// ('L') when it starts, so that it can do the same later. What such a
// replacement loses: the output the killed node logger had read but not
// written (at most one read, 32 KiB, per stream), attached clients (they
// see the connection end), a pipe container's stdin (the server holds no
// duplicate of it: the container reads EOF), and stdin-once's memory of
// its first attach.
//
// # podsb-logger for one container
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
