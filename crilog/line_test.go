package crilog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// TestParseLineKubelet checks ParseLine against kubelet's rules
// (pkg/kubelet/kuberuntime/logs: parseCRILog, which crictl's
// k8s.io/cri-client logs shares): the lines it accepts and rejects.
func TestParseLineKubelet(t *testing.T) {
	ts := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		line string
		want Line
	}{
		{"2016-10-06T00:17:09.669794202Z stdout F log content 1\n", Line{ts("2016-10-06T00:17:09.669794202Z"), Stdout, false, []byte("log content 1")}},
		{"2016-10-06T00:17:09.669794203Z stderr F log content 2", Line{ts("2016-10-06T00:17:09.669794203Z"), Stderr, false, []byte("log content 2")}},
		{"2016-10-06T00:17:09.669794202Z stdout P log content 3\n", Line{ts("2016-10-06T00:17:09.669794202Z"), Stdout, true, []byte("log content 3")}},
		// Further tags after ':' are kept for forward compatibility.
		{"2016-10-06T00:17:09.669794202Z stdout P:more content\n", Line{ts("2016-10-06T00:17:09.669794202Z"), Stdout, true, []byte("content")}},
		{"2016-10-06T00:17:09.669794202Z stdout X content\n", Line{ts("2016-10-06T00:17:09.669794202Z"), Stdout, false, []byte("content")}},
		// Any RFC3339Nano time: fewer digits, an offset.
		{"2016-10-06T00:17:09Z stdout F x", Line{ts("2016-10-06T00:17:09Z"), Stdout, false, []byte("x")}},
		{"2016-10-06T02:17:09.5+02:00 stdout F x", Line{ts("2016-10-06T00:17:09.5Z"), Stdout, false, []byte("x")}},
		// Content is everything after the third space, spaces included.
		{"2016-10-06T00:17:09.669794202Z stdout F  two  spaces \n", Line{ts("2016-10-06T00:17:09.669794202Z"), Stdout, false, []byte(" two  spaces ")}},
		{"2016-10-06T00:17:09.669794202Z stdout F \n", Line{ts("2016-10-06T00:17:09.669794202Z"), Stdout, false, []byte("")}},
	} {
		got, err := ParseLine([]byte(tc.line))
		if err != nil || !got.Time.Equal(tc.want.Time) || got.Stream != tc.want.Stream || got.Partial != tc.want.Partial || string(got.Content) != string(tc.want.Content) {
			t.Errorf("ParseLine(%q) = %+v, %v; want %+v", tc.line, got, err, tc.want)
		}
	}
	for _, bad := range []string{
		"",
		"2016-10-06T00:17:09.669794202Z", // no stream
		"2016-10-06 00:17:09 stdout F x", // not RFC 3339
		"2016-10-06T00:17:09.669794202Z stdin F x",                             // no such stream
		"2016-10-06T00:17:09.669794202Z stdout",                                // no tag
		"2016-10-06T00:17:09.669794202Z stdout F",                              // no space after the tag
		`{"log":"x","stream":"stdout","time":"2016-10-20T18:39:20.57606443Z"}`, // docker's JSON
	} {
		if l, err := ParseLine([]byte(bad)); !errors.Is(err, ErrFormat) {
			t.Errorf("ParseLine(%q) = %+v, %v; want ErrFormat", bad, l, err)
		}
	}
}

func TestReadLine(t *testing.T) {
	r := bufio.NewReader(strings.NewReader("2016-10-06T00:17:09.669794202Z stdout F a\n2016-10-06T00:17:09.669794202Z stderr P b"))
	a, err := ReadLine(r)
	if err != nil || string(a.Content) != "a" {
		t.Fatalf("%+v %v", a, err)
	}
	b, err := ReadLine(r)
	if err != nil || string(b.Content) != "b" || !b.Partial || b.Stream != Stderr {
		t.Fatalf("%+v %v", b, err)
	}
	if _, err := ReadLine(r); err != io.EOF {
		t.Fatalf("at the end: %v", err)
	}
}

func TestSplitter(t *testing.T) {
	at := time.Date(2026, 12, 5, 12, 0, 0, 1, time.UTC)
	long := strings.Repeat("x", MaxLine)
	for _, tc := range []struct {
		name   string
		chunks []string
		want   []string // TAG:CONTENT (lengths for long contents)
	}{
		{"lines", []string{"a\nb\n"}, []string{"F:a", "F:b"}},
		{"split across reads", []string{"he", "llo\nwor", "ld\n"}, []string{"F:hello", "F:world"}},
		{"empty lines", []string{"\n\n"}, []string{"F:", "F:"}},
		{"crlf", []string{"tty\r\n", "cr\rin\r\n"}, []string{"F:tty", "F:cr\rin"}},
		{"no newline at the end", []string{"a\nrest"}, []string{"F:a", "F:rest"}},
		{"exactly the limit", []string{long, "\n"}, []string{fmt.Sprintf("F:%d", MaxLine)}},
		{"one over", []string{long + "y\n"}, []string{fmt.Sprintf("P:%d", MaxLine), "F:y"}},
		{"over in two reads", []string{long, "y\n"}, []string{fmt.Sprintf("P:%d", MaxLine), "F:y"}},
		{"three parts", []string{long + long + "z"}, []string{fmt.Sprintf("P:%d", MaxLine), fmt.Sprintf("P:%d", MaxLine), "F:z"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := lineSplitter{stream: Stdout}
			var out []byte
			for _, c := range tc.chunks {
				out = s.add(out, at, []byte(c))
			}
			out = s.flush(out, at)
			var got []string
			r := bufio.NewReader(strings.NewReader(string(out)))
			for {
				l, err := ReadLine(r)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if !l.Time.Equal(at) || l.Stream != Stdout {
					t.Errorf("record %+v", l)
				}
				tag, c := "F", string(l.Content)
				if l.Partial {
					tag = "P"
				}
				if len(c) >= MaxLine {
					c = fmt.Sprint(len(c))
				}
				got = append(got, tag+":"+c)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("records %q, want %q", got, tc.want)
			}
		})
	}
}

func TestHello(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // "" for an error
	}{
		{"podsb-logger 1 attach", "podsb-logger 1 attach"},
		{"podsb-logger 1 attach stdin", "podsb-logger 1 attach stdin"},
		{"podsb-logger 1 reopen", "podsb-logger 1 reopen"},
		{"podsb-logger 2 attach", ""},
		{"podsb-logger 1 reopen stdin", ""},
		{"podsb-logger 1 detach", ""},
		{"conmon 1 attach", ""},
		{"", ""},
	} {
		h, err := parseHello([]byte(tc.in))
		if (err == nil) != (tc.want != "") || err == nil && h.String() != tc.want {
			t.Errorf("parseHello(%q) = %v, %v", tc.in, h, err)
		}
		if err != nil && !errors.Is(err, errProto) {
			t.Errorf("parseHello(%q): %v is not errProto", tc.in, err)
		}
	}
	if _, err := parseHello([]byte("podsb-logger 2 attach")); err == nil || !strings.Contains(err.Error(), "version 2 not supported") {
		t.Errorf("unsupported version: %v", err)
	}
}

func TestFrames(t *testing.T) {
	var b strings.Builder
	writeFrame(&b, frameStdout, []byte("abc"))
	writeFrame(&b, frameExit, nil)
	fr := &frameReader{r: strings.NewReader(b.String())}
	if typ, p, err := fr.next(); typ != frameStdout || string(p) != "abc" || err != nil {
		t.Errorf("%c %q %v", typ, p, err)
	}
	if typ, p, err := fr.next(); typ != frameExit || len(p) != 0 || err != nil {
		t.Errorf("%c %q %v", typ, p, err)
	}
	if _, _, err := fr.next(); err != io.EOF {
		t.Errorf("at the end: %v", err)
	}
	if err := writeFrame(&b, frameStdin, make([]byte, maxFrame+1)); !errors.Is(err, errProto) {
		t.Errorf("oversized frame: %v", err)
	}
	for _, bad := range []string{"\x31\x00\x00", "\x31\x00\x00\x00\x05ab", "\x31\xff\xff\xff\xff"} {
		fr := &frameReader{r: strings.NewReader(bad)}
		if _, _, err := fr.next(); !errors.Is(err, errProto) {
			t.Errorf("frame %q: %v", bad, err)
		}
	}
}
