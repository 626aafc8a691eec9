package main

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
)

// TestUnknownSubcommand is issue 11's (item 16): an unknown command of any
// command group is one error and exit 125, not help and 0; the group alone
// prints its help.
func TestUnknownSubcommand(t *testing.T) {
	groups := []string{""}
	for _, c := range newRootCmd(nil).Commands() {
		if c.HasSubCommands() {
			groups = append(groups, c.Name())
		}
	}
	if len(groups) < 2 {
		t.Fatalf("no command group found: %v", groups)
	}
	// The root's suggestions stay on the one line.
	var errb bytes.Buffer
	if code := run([]string{"tpo"}, io.Discard, &errb); code != exitFailure || errb.String() != "podsb: unknown command \"tpo\" for \"podsb\" (did you mean ps or top?)\n" {
		t.Errorf("podsb tpo: exit %d, stderr %q", code, errb.String())
	}
	for _, g := range groups {
		t.Run("podsb "+g, func(t *testing.T) {
			args := append(strings.Fields(g), "frobnicate")
			var out, errb bytes.Buffer
			if code := run(args, &out, &errb); code != exitFailure {
				t.Errorf("%v: exit %d, want %d (stdout %q)", args, code, exitFailure, out.String())
			}
			want := `podsb: unknown command "frobnicate" for "` + strings.TrimSpace("podsb "+g) + `"` + "\n"
			if errb.String() != want || out.Len() != 0 {
				t.Errorf("%v: stdout %q, stderr %q, want only %q", args, out.String(), errb.String(), want)
			}
			if g == "" {
				return
			}
			out.Reset()
			errb.Reset()
			if code := run([]string{g}, &out, &errb); code != exitOK || !strings.Contains(out.String(), "Available Commands:") {
				t.Errorf("%s alone: exit %d, stdout %q, stderr %q: want its help", g, code, out.String(), errb.String())
			}
		})
	}
}

// TestBadLimits checks create's limit flags: each bad value (issue 11, item
// 12) fails with exit 125 and one line, before anything is made. As non-root
// the root check fails first, with the same exit code.
func TestBadLimits(t *testing.T) {
	root := t.TempDir()
	for _, tc := range []struct {
		flag, value, want string
	}{
		{"--memory", "99999999999g", `--memory "99999999999g": too large`},
		{"--memory", "99999999999999999999", `--memory "99999999999999999999": too large`},
		{"--memory", "", `--memory "": want a positive number`},
		{"--memory", "0", `--memory "0": want a positive number`},
		{"--memory", "1k", `--memory "1k": want at least 4 MiB`},
		{"--memory", "lots", `want a positive number`},
		{"--memory", "-5m", `want a positive number`},
		{"--cpus", "NaN", `--cpus "NaN": want a decimal number of CPUs`},
		{"--cpus", "inf", `--cpus "inf": want a decimal number of CPUs`},
		{"--cpus", "-inf", `want a decimal number of CPUs`},
		{"--cpus", "1e30", `want a decimal number of CPUs`},
		{"--cpus", "1000000000000000000000000000000", `--cpus 1000000000000000000000000000000: want 0.01 to`},
		{"--cpus", "0", `--cpus 0: want 0.01 to`},
		{"--cpus", "0.001", `want 0.01 to`},
		{"--cpus", "", `--cpus "": want a decimal number`},
		{"--cpus", "-2", `want a decimal number`},
		{"--pids-limit", "0", `--pids-limit "0": want 1 to 4194304 processes`},
		{"--pids-limit", "-1", `want 1 to 4194304`},
		{"--pids-limit", "", `want 1 to 4194304`},
		{"--pids-limit", "4194305", `want 1 to 4194304`},
		{"--pids-limit", "99999999999999999999", `want 1 to 4194304`},
	} {
		t.Run(tc.flag+"="+tc.value, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run([]string{"--root", root, "create", "--network", "none", tc.flag + "=" + tc.value, "limits"}, &out, &errb)
			if code != exitFailure {
				t.Fatalf("exit %d, want %d (stderr %q)", code, exitFailure, errb.String())
			}
			want := tc.want
			if lines := strings.Split(strings.TrimSuffix(errb.String(), "\n"), "\n"); len(lines) != 1 || !strings.HasPrefix(errb.String(), "podsb: ") || !strings.Contains(errb.String(), want) {
				t.Errorf("stderr %q, want one line with %q", errb.String(), want)
			}
			if ents, _ := os.ReadDir(root); len(ents) != 0 {
				t.Errorf("the state root holds %v", ents)
			}
		})
	}
}
