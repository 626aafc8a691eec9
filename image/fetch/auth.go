package fetch

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// keychain returns the credentials to pull with: $REGISTRY_AUTH_FILE first
// when it is set (as podman and skopeo read it), then go-containerregistry's
// default keychain (~/.docker/config.json or $DOCKER_CONFIG, with credential
// helpers; then containers/auth.json).
func keychain() authn.Keychain {
	if p := os.Getenv("REGISTRY_AUTH_FILE"); p != "" {
		return authn.NewMultiKeychain(authFile(p), authn.DefaultKeychain)
	}
	return authn.DefaultKeychain
}

// authOption is the remote option that logs in with c, or with the
// keychain if c is nil.
func authOption(c *Credentials) remote.Option {
	if c == nil {
		return remote.WithAuthFromKeychain(keychain())
	}
	return remote.WithAuth(authn.FromConfig(authn.AuthConfig{
		Username: c.Username, Password: c.Password, Auth: c.Auth,
		IdentityToken: c.IdentityToken, RegistryToken: c.RegistryToken,
	}))
}

// authFile is a containers-auth.json(5) file: {"auths": {"HOST": {"auth": BASE64}}}.
type authFile string

func (f authFile) Resolve(r authn.Resource) (authn.Authenticator, error) {
	b, err := os.ReadFile(string(f))
	if err != nil {
		return nil, fmt.Errorf("REGISTRY_AUTH_FILE: %w", err)
	}
	var doc struct {
		Auths map[string]authn.AuthConfig `json:"auths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, newErr(ErrInvalid, "REGISTRY_AUTH_FILE %s: %w", string(f), err)
	}
	want := r.RegistryStr()
	for k, c := range doc.Auths {
		host := strings.TrimPrefix(strings.TrimPrefix(k, "https://"), "http://")
		host, _, _ = strings.Cut(host, "/")
		if host == want || host == "docker.io" && want == "index.docker.io" {
			return authn.FromConfig(c), nil
		}
	}
	return authn.Anonymous, nil
}
