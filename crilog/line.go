package crilog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"
)

// The CRI log format (kubelet's pkg/kubelet/kuberuntime/logs, crictl's
// k8s.io/cri-client logs): one record per line,
//
//	TIMESTAMP STREAM TAG CONTENT\n
//
// TIMESTAMP is RFC 3339 with nanoseconds (written in UTC with all nine
// digits, as containerd does; any RFC3339Nano time parses), STREAM is
// stdout or stderr, TAG is F for a full line or P for a part of a longer
// one (further tags may follow, separated by ':'), CONTENT is the line
// without its newline.
const (
	// MaxLine is the longest content of one record: a longer line is cut
	// into P records of MaxLine bytes and a last F record, as containerd
	// does (16 KiB).
	MaxLine = 16 << 10

	timeFormat = "2006-01-02T15:04:05.000000000Z07:00"

	// Stdout and Stderr are the STREAM field's values.
	Stdout = "stdout"
	Stderr = "stderr"
)

// Line is one record of a CRI log.
type Line struct {
	Time    time.Time
	Stream  string // Stdout or Stderr
	Partial bool   // tag P: Content continues in the next record of Stream
	Content []byte // without the newline
}

// ErrFormat is the class of ParseLine's errors.
var ErrFormat = errors.New("not a CRI log line")

// ParseLine parses one record, with or without its newline, by kubelet's
// rules: a space ends the time (RFC3339Nano), the stream (stdout or stderr)
// and the tags; the first ':'-separated tag is P for partial, anything else
// is full; the rest is the content. Content aliases b.
func ParseLine(b []byte) (Line, error) {
	b = bytes.TrimSuffix(b, []byte("\n"))
	var l Line
	f, rest, ok := bytes.Cut(b, []byte(" "))
	if !ok {
		return l, fmt.Errorf("%w: no time", ErrFormat)
	}
	t, err := time.Parse(time.RFC3339Nano, string(f))
	if err != nil {
		return l, fmt.Errorf("%w: time %q", ErrFormat, f)
	}
	l.Time = t
	if f, rest, ok = bytes.Cut(rest, []byte(" ")); !ok {
		return l, fmt.Errorf("%w: no stream", ErrFormat)
	}
	if l.Stream = string(f); l.Stream != Stdout && l.Stream != Stderr {
		return l, fmt.Errorf("%w: stream %q", ErrFormat, f)
	}
	if f, rest, ok = bytes.Cut(rest, []byte(" ")); !ok {
		return l, fmt.Errorf("%w: no tag", ErrFormat)
	}
	tag, _, _ := bytes.Cut(f, []byte(":"))
	l.Partial = string(tag) == "P"
	l.Content = rest
	return l, nil
}

// ReadLine reads and parses the next record of r. At the end of r it
// returns io.EOF; a last record without its newline is parsed as it is.
func ReadLine(r *bufio.Reader) (Line, error) {
	b, err := r.ReadBytes('\n')
	if len(b) == 0 {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return Line{}, err
	}
	if err != nil && err != io.EOF {
		return Line{}, err
	}
	return ParseLine(b)
}

// appendRecord appends one record to dst.
func appendRecord(dst []byte, t time.Time, stream string, partial bool, content []byte) []byte {
	dst = t.UTC().AppendFormat(dst, timeFormat)
	dst = append(dst, ' ')
	dst = append(dst, stream...)
	if partial {
		dst = append(dst, " P "...)
	} else {
		dst = append(dst, " F "...)
	}
	dst = append(dst, content...)
	return append(dst, '\n')
}

// lineSplitter turns one stream's bytes into records: complete lines as F
// records, MaxLine bytes followed by more than a newline as a P record. A '\r' before the
// newline is dropped (a terminal's line end), as containerd does.
type lineSplitter struct {
	stream string
	buf    []byte // an incomplete line, shorter than MaxLine
}

// add appends to dst the records that p completes, stamped t.
func (s *lineSplitter) add(dst []byte, t time.Time, p []byte) []byte {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		room := MaxLine - len(s.buf)
		if i < 0 || i > room {
			if len(p) <= room {
				s.buf = append(s.buf, p...)
				return dst
			}
			dst = s.emit(dst, t, true, p[:room])
			p = p[room:]
			continue
		}
		dst = s.emit(dst, t, false, p[:i])
		p = p[i+1:]
	}
	return dst
}

// emit appends the record of s.buf and p and empties s.buf.
func (s *lineSplitter) emit(dst []byte, t time.Time, partial bool, p []byte) []byte {
	content := p
	if len(s.buf) > 0 {
		s.buf = append(s.buf, p...)
		content = s.buf
	}
	if !partial {
		content = bytes.TrimSuffix(content, []byte("\r"))
	}
	dst = appendRecord(dst, t, s.stream, partial, content)
	s.buf = nil // an idle stream holds no buffer
	return dst
}

// flush appends the incomplete line, if any, as a full record: the stream
// ended without a newline.
func (s *lineSplitter) flush(dst []byte, t time.Time) []byte {
	if len(s.buf) == 0 {
		return dst
	}
	return s.emit(dst, t, false, nil)
}
