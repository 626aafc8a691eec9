package cni

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testList = `{"cniVersion":"1.0.0","name":"%s","plugins":[{"type":"bridge","bridge":"x0","ipam":{"type":"host-local","subnet":"10.250.0.0/24"}},{"type":"portmap","capabilities":{"portMappings":true}}]}`

func write(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func opts(dir string) Options {
	return Options{ConfDir: dir, BinDirs: []string{os.TempDir()}, CacheDir: filepath.Join(dir, "cache")}
}

func TestLoadBad(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		dir   string // instead of a temporary directory
		want  string
	}{
		{name: "missing directory", dir: "/nonexistent/podsb-cni", want: "conf directory: stat /nonexistent/podsb-cni"},
		{name: "empty", want: "holds no network configuration"},
		{name: "other files only", files: map[string]string{"README": "x", "a.yaml": "x"}, want: "holds no network configuration"},
		{name: "not JSON", files: map[string]string{"10-a.conflist": "{"}, want: "10-a.conflist: not JSON"},
		{name: "no plugins", files: map[string]string{"10-a.conflist": `{"cniVersion":"1.0.0","name":"a","plugins":[]}`}, want: "10-a.conflist: error parsing configuration list: no plugins"},
		{name: "no name", files: map[string]string{"10-a.conflist": `{"cniVersion":"1.0.0","plugins":[{"type":"bridge"}]}`}, want: "no name"},
		{name: "plugin without type", files: map[string]string{"10-a.conflist": `{"cniVersion":"1.0.0","name":"a","plugins":[{"bridge":"x"}]}`}, want: "missing 'type'"},
		{name: "conf without name", files: map[string]string{"10-a.conf": `{"cniVersion":"1.0.0","type":"bridge"}`}, want: "10-a.conf: error parsing configuration list: no name"},
		{name: "conf without type", files: map[string]string{"10-a.conf": `{"cniVersion":"1.0.0","name":"a"}`}, want: "10-a.conf: error parsing configuration: missing 'type'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.dir
			if dir == "" {
				dir = t.TempDir()
			}
			for n, b := range tc.files {
				write(t, dir, n, b)
			}
			_, err := Load(opts(dir))
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load: %v, want ErrConfig with %q", err, tc.want)
			}
		})
	}
}

func TestLoadFirstValid(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "05-broken.conflist", "{")
	write(t, dir, "20-b.conflist", strings.Replace(testList, "%s", "b", 1))
	write(t, dir, "10-a.conflist", strings.Replace(testList, "%s", "a", 1))
	n, err := Load(opts(dir))
	if err != nil {
		t.Fatal(err)
	}
	if n.Name() != "a" || filepath.Base(n.File) != "10-a.conflist" {
		t.Fatalf("loaded %s from %s, want a from 10-a.conflist", n.Name(), n.File)
	}
	if !n.HasCapability("portMappings") || n.HasCapability("bandwidth") {
		t.Fatal("capabilities: want portMappings only")
	}
	again, err := FromBytes(opts(dir), n.File, n.Bytes())
	if err != nil || again.Name() != "a" {
		t.Fatalf("FromBytes: %v, %v", again, err)
	}
	if _, err := FromBytes(opts(dir), "x", []byte("{")); !errors.Is(err, ErrConfig) {
		t.Fatalf("FromBytes of bad bytes: %v", err)
	}
}

func TestLoadSingleConf(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "10-one.conf", `{"cniVersion":"1.0.0","name":"one","type":"bridge","bridge":"x1"}`)
	n, err := Load(opts(dir))
	if err != nil {
		t.Fatal(err)
	}
	if n.Name() != "one" || len(n.list.Plugins) != 1 {
		t.Fatalf("got %s with %d plugins", n.Name(), len(n.list.Plugins))
	}
}

func TestCheckOptions(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"no conf dir", Options{BinDirs: []string{dir}, CacheDir: dir}, "no conf directory"},
		{"conf dir a file", Options{ConfDir: "/etc/hostname", BinDirs: []string{dir}, CacheDir: dir}, "not a directory"},
		{"no bin dir", Options{ConfDir: dir, CacheDir: dir}, "no plugin directory"},
		{"missing bin dir", Options{ConfDir: dir, BinDirs: []string{"/nonexistent/bin"}, CacheDir: dir}, "plugin directory: stat /nonexistent/bin"},
		{"no cache dir", Options{ConfDir: dir, BinDirs: []string{dir}}, "no cache directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Check()
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check: %v, want %q", err, tc.want)
			}
		})
	}
}
