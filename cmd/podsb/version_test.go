package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(args, &out, &errb); code != exitOK {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			for _, want := range []string{"podsb version ", "\ncommit: ", "\ngo: go1.", "\nexec fast path: ", "\nseccomp: ", "\ncgroup: "} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}

func TestCompletion(t *testing.T) {
	for _, tc := range []struct{ shell, want string }{
		{"bash", "# bash completion V2 for podsb"},
		{"zsh", "#compdef podsb"},
		{"fish", "# fish completion for podsb"},
	} {
		t.Run(tc.shell, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run([]string{"completion", tc.shell}, &out, &errb); code != exitOK {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			if !strings.HasPrefix(out.String(), tc.want) {
				t.Errorf("starts %.60q, want %q", out.String(), tc.want)
			}
		})
	}
	for _, args := range [][]string{{"completion"}, {"completion", "powershell"}, {"completion", "bash", "zsh"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(args, &out, &errb); code != exitFailure {
				t.Fatalf("exit %d, want %d", code, exitFailure)
			}
			if lines := strings.Count(errb.String(), "\n"); lines != 1 || !strings.HasPrefix(errb.String(), "podsb: ") {
				t.Errorf("stderr %q: want one podsb: line", errb.String())
			}
		})
	}
}
