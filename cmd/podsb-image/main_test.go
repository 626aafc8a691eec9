package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestProgressBar(t *testing.T) {
	var buf bytes.Buffer
	b := &progressBar{w: &buf, label: "x:1"}
	b.update(0, 4<<20)
	b.update(2<<20, 4<<20) // within 100 ms of the last: not drawn
	b.update(4<<20, 4<<20) // the end is always drawn
	b.finish()
	out := buf.String()
	if strings.Count(out, "\r") != 2 || !strings.Contains(out, "[==============================] 4.0 MB / 4.0 MB") || !strings.HasSuffix(out, "\n") {
		t.Errorf("progress output %q", out)
	}
	var nilBar *progressBar
	nilBar.finish() // quiet: no bar
}
