package main

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"testing"

	"github.com/podsb/podsb/internal/setup"
)

// TestHeaderUpToDate fails when the committed setup.h is not what package
// setup (and sandbox, and x/sys) make today.
func TestHeaderUpToDate(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skipf("setup.h is for linux/amd64; GOARCH=%s", runtime.GOARCH)
	}
	want, err := render()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../setup.h")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("internal/setup/setup.h is stale: run go generate ./internal/setup and commit it")
	}
}

// TestEveryOpCode checks that the header names every operation setup has
// (an operation's String is its own for known codes), each once.
func TestEveryOpCode(t *testing.T) {
	seen := map[setup.Code]string{}
	for _, c := range ops {
		code := c.value.(setup.Code)
		if prev, ok := seen[code]; ok {
			t.Errorf("code %d is both %s and %s", code, prev, c.name)
		}
		seen[code] = c.name
	}
	for code := setup.Code(1); code < 256; code++ {
		known := (setup.Op{Code: code}).String() != fmt.Sprintf("operation %d", code)
		if _, ok := seen[code]; known != ok {
			t.Errorf("code %d (%v): known to setup %v, in the header %v", code, setup.Op{Code: code}, known, ok)
		}
	}
}

func TestCName(t *testing.T) {
	for in, want := range map[string]string{
		"NSTypes": "ns_types", "PID": "pid", "NameLen": "name_len", "Attr_set": "attr_set",
		"X__pad0": "_pad0", "Int": "int_", "Signo": "signo", "NStr": "n_str", "Userns_fd": "userns_fd",
	} {
		if got := cName(in); got != want {
			t.Errorf("cName(%q) = %q, want %q", in, got, want)
		}
	}
}
