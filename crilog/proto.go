package crilog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The wire protocol on a logger's socket (version 1); the package doc
// describes it.
const (
	protoName    = "podsb-logger"
	protoVersion = 1

	frameHello  = 'H' // both ways: "podsb-logger 1 OP[ stdin]" / "podsb-logger 1"
	frameError  = 'E' // logger to client: the request failed; text
	frameOK     = 'K' // logger to client: reopen done
	frameStdout = '1' // logger to client: output (a tty's all is stdout)
	frameStderr = '2' // logger to client
	frameExit   = 'X' // logger to client: the container's output ended
	frameStdin  = '0' // client to logger: input
	frameClose  = 'C' // client to logger: end of input
	frameResize = 'W' // client to logger: width, height (uint16 big-endian each)

	// maxFrame bounds a frame's payload, so that a peer cannot make the
	// other allocate much.
	maxFrame = 64 << 10
)

// errProto is the class of malformed frames.
var errProto = errors.New("podsb-logger protocol")

// writeFrame writes one frame: type, payload length (uint32 big-endian),
// payload. One write, so that frames of concurrent writers stay whole when
// the writer is serialized by the caller.
func writeFrame(w io.Writer, typ byte, payload []byte) error {
	if len(payload) > maxFrame {
		return fmt.Errorf("%w: frame of %d bytes (at most %d)", errProto, len(payload), maxFrame)
	}
	_, err := w.Write(frame(typ, payload))
	return err
}

// frame returns one frame: type, payload length (uint32 big-endian),
// payload.
func frame(typ byte, payload []byte) []byte {
	b := make([]byte, 5+len(payload))
	b[0] = typ
	binary.BigEndian.PutUint32(b[1:5], uint32(len(payload)))
	copy(b[5:], payload)
	return b
}

// frameReader reads frames, reusing one buffer: a payload is valid until
// the next read.
type frameReader struct {
	r   io.Reader
	hdr [5]byte
	buf []byte
}

// next returns the next frame; io.EOF at a clean end between frames.
func (f *frameReader) next() (byte, []byte, error) {
	if _, err := io.ReadFull(f.r, f.hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, fmt.Errorf("%w: truncated frame header", errProto)
		}
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(f.hdr[1:5])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("%w: frame of %d bytes (at most %d)", errProto, n, maxFrame)
	}
	if cap(f.buf) < int(n) {
		f.buf = make([]byte, n)
	}
	p := f.buf[:n]
	if _, err := io.ReadFull(f.r, p); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, fmt.Errorf("%w: truncated frame", errProto)
		}
		return 0, nil, err
	}
	return f.hdr[0], p, nil
}

// hello is a client's first frame, parsed.
type hello struct {
	op    string // "attach" or "reopen"
	stdin bool   // attach: the client sends input
}

func (h hello) String() string {
	s := fmt.Sprintf("%s %d %s", protoName, protoVersion, h.op)
	if h.stdin {
		s += " stdin"
	}
	return s
}

// parseHello parses a client's hello.
func parseHello(p []byte) (hello, error) {
	f := strings.Fields(string(p))
	if len(f) < 3 || f[0] != protoName {
		return hello{}, fmt.Errorf("%w: bad hello %q", errProto, p)
	}
	if f[1] != fmt.Sprint(protoVersion) {
		return hello{}, fmt.Errorf("%w: version %s not supported (this logger speaks %d)", errProto, f[1], protoVersion)
	}
	h := hello{op: f[2]}
	switch {
	case h.op == "reopen" && len(f) == 3:
	case h.op == "attach" && len(f) == 3:
	case h.op == "attach" && len(f) == 4 && f[3] == "stdin":
		h.stdin = true
	default:
		return hello{}, fmt.Errorf("%w: bad request %q", errProto, p)
	}
	return h, nil
}
