package fetch

import (
	"errors"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	toml "github.com/pelletier/go-toml/v2"
)

// Registries is the subset of containers-registries.conf(5) (version 2,
// TOML) that the store follows: per registry (longest matching prefix) its
// location, whether it is insecure (plain HTTP allowed) or blocked, and its
// mirrors, tried in order before the location. Other keys are ignored.
//
//	[[registry]]
//	prefix = "registry.k8s.io"
//	[[registry.mirror]]
//	location = "127.0.0.1:5000/k8s"
//	insecure = true
type Registries struct {
	Registry []Registry `toml:"registry"`
}

// Registry is one [[registry]] table.
type Registry struct {
	// Prefix selects the images this entry applies to: a registry host,
	// or host/path. Empty: Location.
	Prefix string `toml:"prefix"`
	// Location replaces Prefix in the names pulled from. Empty: Prefix.
	Location string   `toml:"location"`
	Insecure bool     `toml:"insecure"`
	Blocked  bool     `toml:"blocked"`
	Mirror   []Mirror `toml:"mirror"`
}

// Mirror is one [[registry.mirror]] table.
type Mirror struct {
	Location string `toml:"location"`
	Insecure bool   `toml:"insecure"`
}

// DefaultRegistriesConf is read by the CLI when it exists and no other
// file is given.
const DefaultRegistriesConf = "/etc/podsb/registries.conf"

// LoadRegistries reads a registries.conf file.
func LoadRegistries(path string) (*Registries, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, newErr(ErrInvalid, "registries config %s: %w", path, err)
		}
		return nil, err
	}
	r := &Registries{}
	if err := toml.Unmarshal(b, r); err != nil {
		return nil, newErr(ErrInvalid, "registries config %s: %w", path, err)
	}
	if err := r.Check(path); err != nil {
		return nil, err
	}
	return r, nil
}

// Check checks the tables of r, read from the file path (for the errors),
// and fills in each one's Prefix or Location from the other.
func (r *Registries) Check(path string) error {
	for i, reg := range r.Registry {
		if reg.Prefix == "" {
			r.Registry[i].Prefix = reg.Location
		}
		if reg.Location == "" {
			r.Registry[i].Location = r.Registry[i].Prefix
		}
		if r.Registry[i].Prefix == "" {
			return newErr(ErrInvalid, "registries config %s: a [[registry]] without prefix or location", path)
		}
		if strings.HasPrefix(r.Registry[i].Prefix, "*.") {
			return newErr(ErrInvalid, "registries config %s: wildcard prefix %q is not supported", path, reg.Prefix)
		}
		for _, m := range reg.Mirror {
			if m.Location == "" {
				return newErr(ErrInvalid, "registries config %s: a mirror of %s without location", path, r.Registry[i].Prefix)
			}
		}
	}
	return nil
}

// endpoint is one place to pull a repository from.
type endpoint struct {
	repo     string // host[/path]/repository, as pulled from
	insecure bool
}

// endpoints returns where to pull repo (a normalized "host/path" name
// from), in order.
func (r *Registries) endpoints(repo string) ([]endpoint, error) {
	var best *Registry
	if r != nil {
		for i, reg := range r.Registry {
			p := reg.Prefix
			if (repo == p || strings.HasPrefix(repo, p+"/")) && (best == nil || len(p) > len(best.Prefix)) {
				best = &r.Registry[i]
			}
		}
	}
	if best == nil {
		return []endpoint{{repo: repo}}, nil
	}
	if best.Blocked {
		return nil, newErr(ErrInvalid, "registry %s is blocked in the registries config", best.Prefix)
	}
	rest := strings.TrimPrefix(repo, best.Prefix)
	var eps []endpoint
	for _, m := range best.Mirror {
		eps = append(eps, endpoint{repo: m.Location + rest, insecure: m.Insecure})
	}
	return append(eps, endpoint{repo: best.Location + rest, insecure: best.Insecure}), nil
}

// normalize returns ref's canonical name ("docker.io/library/busybox:latest",
// "host/repo@sha256:…") and the parsed reference.
func normalize(ref string) (string, name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", nil, newErr(ErrInvalid, "image reference %q: %w", ref, err)
	}
	repo := repoName(r.Context())
	switch t := r.(type) {
	case name.Digest:
		return repo + "@" + t.DigestStr(), r, nil
	case name.Tag:
		return repo + ":" + t.TagStr(), r, nil
	}
	return "", nil, newErr(ErrInvalid, "image reference %q", ref)
}

func repoName(r name.Repository) string {
	reg := r.RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	return reg + "/" + r.RepositoryStr()
}

// isLoopback reports whether host (with or without a port) is localhost or
// a loopback address.
func isLoopback(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// guard refuses plain HTTP except to loopback addresses and the host
// allowed: go-containerregistry would also speak it to private (RFC 1918)
// addresses and .local names.
type guard struct {
	base  http.RoundTripper
	allow string // host[:port] allowed plain HTTP, or ""
}

func (g *guard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !isLoopback(req.URL.Host) && req.URL.Host != g.allow {
		return nil, newErr(ErrInvalid, "plain HTTP to %s refused: not a loopback address, and not insecure in the registries config", req.URL.Host)
	}
	return g.base.RoundTrip(req)
}

func hostOf(repo string) string {
	h, _, _ := strings.Cut(repo, "/")
	return h
}
