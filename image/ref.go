package image

import (
	"net/url"
	"strings"
)

// Reference forms, as go-containerregistry's name package (non-strict)
// reads them; image/fetch checks that both agree (TestNormalizeAgrees).
const (
	tagChars  = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-."
	repoChars = "abcdefghijklmnopqrstuvwxyz0123456789_-./"
	hexChars  = "0123456789abcdef"
)

// Normalize returns ref's canonical name: "busybox" is
// "docker.io/library/busybox:latest", "host/repo@sha256:…" stays as it is.
// It is the name Pull and Import store an image under, and what the store
// matches names against.
func Normalize(ref string) (string, error) {
	norm, _, err := normalize(ref)
	return norm, err
}

// normalize returns ref's canonical name and whether ref names a digest
// (not a tag).
func normalize(ref string) (string, bool, error) {
	bad := func(why string) (string, bool, error) {
		return "", false, newErr(ErrInvalid, "image reference %q: %s", ref, why)
	}
	base, digest, isDigest := strings.Cut(ref, "@")
	if isDigest {
		alg, hex, _ := strings.Cut(digest, ":")
		if want := map[string]int{"sha256": 64, "sha384": 96, "sha512": 128}[alg]; want == 0 || len(hex) != want || strings.Trim(hex, hexChars) != "" {
			return bad("bad digest " + digest)
		}
	}
	repo, tag := base, ""
	if i := strings.LastIndexByte(base, ':'); i >= 0 && !strings.Contains(base[i:], "/") {
		repo, tag = base[:i], base[i+1:]
		if tag == "" || len(tag) > 128 || strings.Trim(tag, tagChars) != "" {
			return bad("bad tag " + tag)
		}
	}
	if tag == "" {
		tag = "latest"
	}
	reg, path := "docker.io", repo
	if first, rest, ok := strings.Cut(repo, "/"); ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		reg, path = first, rest
		if u, err := url.Parse("//" + reg); err != nil || u.Host != reg {
			return bad("bad registry " + reg)
		}
	}
	if reg == "index.docker.io" {
		reg = "docker.io"
	}
	if path == "" || len(path) > 255 || strings.Trim(path, repoChars) != "" {
		return bad("bad repository " + path)
	}
	if reg == "docker.io" && !strings.Contains(path, "/") {
		path = "library/" + path
	}
	if isDigest {
		return reg + "/" + path + "@" + digest, true, nil
	}
	return reg + "/" + path + ":" + tag, false, nil
}
