package image

import (
	"errors"
	"testing"
)

// The agreement with go-containerregistry's reading is checked in
// image/fetch (TestNormalizeAgrees); these run without it.
func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                   "docker.io/library/busybox:latest",
		"docker.io/library/a:1":     "docker.io/library/a:1",
		"index.docker.io/x/y":       "docker.io/x/y:latest",
		"127.0.0.1:5000/a/b:c":      "127.0.0.1:5000/a/b:c",
		"localhost/a":               "localhost/a:latest",
		"registry.k8s.io/pause:3.9": "registry.k8s.io/pause:3.9",
	} {
		if got, err := Normalize(in); err != nil || got != want {
			t.Errorf("Normalize(%q) = %q %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "UPPER/case", "a:b:c:d", "x@sha256:12", ":a", "host:port/x"} {
		if _, err := Normalize(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("Normalize(%q): %v, want ErrInvalid", bad, err)
		}
	}
}
