package cri

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strconv"

	toml "github.com/pelletier/go-toml/v2"

	"github.com/podsb/podsb/image/fetch"
)

// fileConfig is podsb cri's --config file, TOML: each key is one of the
// flags, spelled as the flag, and the registries config's [[registry]]
// tables (fetch.Registries: mirrors, insecure registries), so that one file
// configures the server. A flag given on the command line wins over the
// file. An unknown key is an error, not ignored.
//
//	listen = "unix:///run/podsb/cri.sock"
//	root = "/run/podsb"
//	bridge = "podsb0"
//	grace = "10s"
//	cni-conf-dir = "/etc/cni/net.d"
//	cni-bin-dir = "/usr/lib/cni"
//
//	[[registry]]
//	prefix = "registry.k8s.io"
//	[[registry.mirror]]
//	location = "127.0.0.1:5000/k8s"
//	insecure = true
type fileConfig struct {
	Registry []fetch.Registry `toml:"registry"`
}

// loadConfig reads path and sets, on fs, the flags it names that the
// command line did not set. It returns the registries of the file, nil if
// it has none.
func loadConfig(fs *flag.FlagSet, path string) (*fetch.Registries, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var all map[string]any
	if err := toml.Unmarshal(b, &all); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for k, v := range all {
		if k == "registry" {
			continue
		}
		f := fs.Lookup(k)
		if f == nil || k == "config" {
			return nil, fmt.Errorf("config %s: unknown key %q (the keys are podsb cri's flags)", path, k)
		}
		if set[k] {
			continue
		}
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case bool:
			s = strconv.FormatBool(v)
		case int64:
			s = strconv.FormatInt(v, 10)
		default:
			return nil, fmt.Errorf("config %s: key %q: want a string, number or boolean", path, k)
		}
		if err := fs.Set(k, s); err != nil {
			return nil, fmt.Errorf("config %s: key %q: %v", path, k, err)
		}
	}
	if _, ok := all["registry"]; !ok {
		return nil, nil
	}
	var fc fileConfig
	d := toml.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&fc); err != nil {
		return nil, fmt.Errorf("config %s: [[registry]]: %w", path, err)
	}
	regs := &fetch.Registries{Registry: fc.Registry}
	if err := regs.Check(path); err != nil {
		return nil, err
	}
	return regs, nil
}
