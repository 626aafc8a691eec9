package fetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/podsb/podsb/image"
)

// PullOptions tune Pull. The zero value pulls for the running platform.
type PullOptions struct {
	// Platform is "os/arch[/variant]"; empty: linux and the running
	// architecture.
	Platform string
	// Progress, if set, is called as layer bytes arrive, from several
	// goroutines, with the bytes done and the total.
	Progress func(done, total int64)
	// Retries is how many times a failed request is retried; 0: 4.
	// Backoff is the first wait between tries (doubled each time); 0: 500 ms.
	Retries int
	Backoff time.Duration
	// Jobs is how many layers are fetched and unpacked at once; 0: 4.
	Jobs int
	// Transport is the HTTP transport; nil: http.DefaultTransport.
	Transport http.RoundTripper
	// Registries maps registry names to mirrors and marks insecure
	// registries (LoadRegistries). Nil: every registry as named, HTTPS
	// except for loopback addresses.
	Registries *Registries
	// Auth, if set, are the credentials to pull with, in place of the
	// keychain's (as a CRI PullImage request carries them).
	Auth *Credentials
}

// Credentials log in to a registry: a user name and password (or Auth,
// their base64 "user:password"), an identity token to get an access token
// with, or a registry (bearer) token.
type Credentials struct {
	Username, Password, Auth     string
	IdentityToken, RegistryToken string
}

// ParsePlatform parses "os/arch[/variant]".
func ParsePlatform(s string) (*v1.Platform, error) {
	if s == "" {
		return &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}, nil
	}
	p, err := v1.ParsePlatform(s)
	if err != nil || p.OS == "" || p.Architecture == "" || strings.Count(s, "/") > 2 {
		return nil, newErr(ErrInvalid, "platform %q: want os/arch[/variant]", s)
	}
	return p, nil
}

func (o *PullOptions) fetch(p *v1.Platform) fetchOptions {
	f := fetchOptions{platform: p, retries: o.Retries, backoff: o.Backoff, jobs: o.Jobs, progress: o.Progress}
	if f.retries <= 0 {
		f.retries = 4
	}
	if f.backoff <= 0 {
		f.backoff = 500 * time.Millisecond
	}
	if f.jobs <= 0 {
		f.jobs = 4
	}
	return f
}

// Pull fetches the image ref from its registry (or the registry's mirrors,
// in order: PullOptions.Registries) and stores it in s under ref's
// normalized name. Blobs already in the store are not fetched again, so a
// pull cut short resumes where it stopped.
func Pull(ctx context.Context, s *image.Store, ref string, opts PullOptions) (image.Image, error) {
	return store{s}.pull(ctx, ref, opts)
}

func (s store) pull(ctx context.Context, ref string, opts PullOptions) (image.Image, error) {
	norm, r, err := normalize(ref)
	if err != nil {
		return image.Image{}, err
	}
	plat, err := ParsePlatform(opts.Platform)
	if err != nil {
		return image.Image{}, err
	}
	eps, err := opts.Registries.endpoints(repoName(r.Context()))
	if err != nil {
		return image.Image{}, err
	}
	var errs []error
	for _, ep := range eps {
		im, err := s.pullFrom(ctx, ep, r, norm, plat, opts)
		if err == nil {
			return im, nil
		}
		// A mirror that fails is passed over; bad data is not, nor the
		// caller's deadline or cancel, which no other mirror would meet.
		if !errors.Is(err, ErrRegistry) || ctx.Err() != nil {
			return image.Image{}, err
		}
		errs = append(errs, err)
	}
	if len(errs) == 1 {
		return image.Image{}, errs[0]
	}
	var msgs []string
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	return image.Image{}, newErr(ErrRegistry, "pull %s: %s", ref, strings.Join(msgs, "; "))
}

func (s store) pullFrom(ctx context.Context, ep endpoint, r name.Reference, norm string, plat *v1.Platform, opts PullOptions) (image.Image, error) {
	var nopts []name.Option
	if ep.insecure {
		nopts = append(nopts, name.Insecure)
	}
	suffix := ":" + r.Identifier()
	if _, ok := r.(name.Digest); ok {
		suffix = "@" + r.Identifier()
	}
	at, err := name.ParseReference(ep.repo+suffix, nopts...)
	if err != nil {
		return image.Image{}, newErr(ErrInvalid, "image reference %q (from the registries config): %w", ep.repo+suffix, err)
	}
	fo := opts.fetch(plat)
	base := opts.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	allow := ""
	if ep.insecure {
		allow = hostOf(ep.repo)
	}
	ropts := []remote.Option{
		remote.WithContext(ctx),
		authOption(opts.Auth),
		remote.WithTransport(&guard{base: base, allow: allow}),
		remote.WithPlatform(*plat),
		remote.WithUserAgent("podsb"),
		remote.WithRetryBackoff(remote.Backoff{Duration: fo.backoff, Factor: 2, Jitter: 0.1, Steps: fo.retries + 1}),
		remote.WithRetryStatusCodes(http.StatusRequestTimeout, http.StatusInternalServerError, http.StatusBadGateway,
			http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusTooManyRequests),
	}
	where := at.String()
	regErr := func(err error) error {
		if errors.Is(err, ErrInvalid) || errors.Is(err, context.Canceled) {
			return err
		}
		return newErr(ErrRegistry, "pull %s: %w", where, err)
	}
	desc, err := remote.Get(at, ropts...)
	if err != nil {
		return image.Image{}, regErr(err)
	}
	raw, mdigest, mt := desc.Manifest, desc.Digest, desc.MediaType
	if got := sha256Hex(raw); got != mdigest.Hex {
		return image.Image{}, newErr(ErrCorrupt, "manifest of %s: digest mismatch: got sha256:%s, want %s", where, got, mdigest)
	}
	if slices.Contains(indexTypes, mt) {
		idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return image.Image{}, newErr(ErrCorrupt, "index of %s: %w", where, err)
		}
		var pick *v1.Descriptor
		var have []string
		for i, d := range idx.Manifests {
			if d.Platform == nil {
				continue
			}
			have = append(have, platformString(*d.Platform))
			if pick == nil && d.Platform.Satisfies(*plat) && slices.Contains(manifestTypes, d.MediaType) {
				pick = &idx.Manifests[i]
			}
		}
		if pick == nil {
			return image.Image{}, newErr(ErrUnsupported, "%s has no image for %s (it has %s)", where, platformString(*plat), strings.Join(have, ", "))
		}
		child, err := remote.Get(at.Context().Digest(pick.Digest.String()), ropts...)
		if err != nil {
			return image.Image{}, regErr(err)
		}
		raw, mdigest, mt = child.Manifest, pick.Digest, child.MediaType
	}
	switch {
	case mt == types.DockerManifestSchema1 || mt == types.DockerManifestSchema1Signed:
		return image.Image{}, newErr(ErrUnsupported, "%s: docker schema 1 manifests are not supported", where)
	case !slices.Contains(manifestTypes, mt):
		return image.Image{}, newErr(ErrUnsupported, "%s: unknown media type %q", where, mt)
	}
	repo := at.Context()
	src := source{
		name:   where,
		remote: true,
		blob: func(d v1.Hash) (io.ReadCloser, error) {
			l, err := remote.Layer(repo.Digest(d.String()), ropts...)
			if err != nil {
				return nil, err
			}
			return l.Compressed()
		},
	}
	src.config = func() ([]byte, error) {
		m, err := v1.ParseManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		var b []byte
		for attempt := 0; ; attempt++ {
			rc, err := src.blob(m.Config.Digest)
			if err == nil {
				b, err = io.ReadAll(io.LimitReader(rc, 64<<20))
				rc.Close()
			}
			if err == nil || attempt >= fo.retries {
				return b, err
			}
			time.Sleep(fo.backoff << attempt)
		}
	}
	im, err := s.add(ctx, src, raw, mdigest, []string{norm}, fo)
	if err != nil {
		return image.Image{}, fmt.Errorf("pull %s: %w", norm, err)
	}
	return im, nil
}
