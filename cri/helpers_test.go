package cri

import "github.com/google/go-containerregistry/pkg/authn"

// basic logs in with a user name and password.
type basic struct{ user, pass string }

func (b *basic) Authorization() (*authn.AuthConfig, error) {
	return &authn.AuthConfig{Username: b.user, Password: b.pass}, nil
}
