package cri

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podsb/podsb/image"
	"github.com/podsb/podsb/image/fetch"
)

// PullImage pulls an image into the store, with the request's credentials
// if it has any (else the keychain's), and returns its ID.
func (s *Server) PullImage(ctx context.Context, req *runtimeapi.PullImageRequest) (*runtimeapi.PullImageResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, invalidf("pull image: the image reference is empty")
	}
	opts := fetch.PullOptions{Registries: s.registries}
	if a := req.GetAuth(); a != nil {
		c, err := credentials(a)
		if err != nil {
			return nil, err
		}
		opts.Auth = c
	}
	im, err := fetch.Pull(ctx, s.images, ref, opts)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			// The pull failed as its deadline passed or its client went:
			// that is the reason, whatever the registry's error says.
			err = fmt.Errorf("%w (%w)", cerr, err)
		}
		return nil, grpcError("pull image "+ref, err)
	}
	s.log.Info("pulled image", "ref", ref, "id", im.ID)
	return &runtimeapi.PullImageResponse{ImageRef: im.ID}, nil
}

// credentials checks a CRI auth config.
func credentials(a *runtimeapi.AuthConfig) (*fetch.Credentials, error) {
	c := &fetch.Credentials{Username: a.GetUsername(), Password: a.GetPassword(), Auth: a.GetAuth(),
		IdentityToken: a.GetIdentityToken(), RegistryToken: a.GetRegistryToken()}
	if c.Auth != "" {
		b, err := base64.StdEncoding.DecodeString(c.Auth)
		if err != nil || !strings.Contains(string(b), ":") {
			return nil, invalidf("pull image: auth: want base64 of user:password")
		}
	}
	return c, nil
}

// criImage is an image of the store as the CRI shows it.
func criImage(im image.Image) *runtimeapi.Image {
	out := &runtimeapi.Image{Id: im.ID, Size: uint64(max(im.Size, 0)), Spec: &runtimeapi.ImageSpec{Image: im.ID}}
	seen := map[string]bool{}
	for _, n := range im.Names {
		if strings.Contains(n, "@") {
			if !seen[n] {
				out.RepoDigests = append(out.RepoDigests, n)
				seen[n] = true
			}
			continue
		}
		out.RepoTags = append(out.RepoTags, n)
		if im.Digest != "" {
			d := repoOf(n) + "@" + im.Digest
			if !seen[d] {
				out.RepoDigests = append(out.RepoDigests, d)
				seen[d] = true
			}
		}
	}
	return out
}

// repoOf returns a name without its tag: a colon after the last slash.
func repoOf(name string) string {
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		return name[:i]
	}
	return name
}

// ListImages lists the store's images, or the one the filter names.
func (s *Server) ListImages(_ context.Context, req *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	resp := &runtimeapi.ListImagesResponse{}
	if ref := req.GetFilter().GetImage().GetImage(); ref != "" {
		im, err := s.images.Inspect(ref)
		if errors.Is(err, image.ErrNotFound) {
			return resp, nil
		}
		if err != nil {
			return nil, grpcError("list images", err)
		}
		resp.Images = append(resp.Images, criImage(im))
		return resp, nil
	}
	ims, err := s.images.List()
	if err != nil {
		return nil, grpcError("list images", err)
	}
	for _, im := range ims {
		resp.Images = append(resp.Images, criImage(im))
	}
	return resp, nil
}

// ImageStatus reports an image; one not in the store is no error, but an
// empty answer, as the CRI asks.
func (s *Server) ImageStatus(_ context.Context, req *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, invalidf("image status: the image reference is empty")
	}
	im, err := s.images.Inspect(ref)
	if errors.Is(err, image.ErrNotFound) {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	if err != nil {
		return nil, grpcError("image status "+ref, err)
	}
	resp := &runtimeapi.ImageStatusResponse{Image: criImage(im)}
	if cfg, err := s.images.Config(im.ID); err == nil {
		u := cfg.Config.User
		if u != "" {
			name, _, _ := strings.Cut(u, ":")
			if uid, ok := parseUint(name); ok {
				resp.Image.Uid = &runtimeapi.Int64Value{Value: uid}
			} else {
				resp.Image.Username = name
			}
		}
		if raw, err := s.images.RawConfig(im.ID); err == nil && req.GetVerbose() {
			resp.Info = map[string]string{"info": mustJSON(map[string]any{"image": im, "config": raw})}
		}
	}
	return resp, nil
}

func parseUint(s string) (int64, bool) {
	var n int64
	if s == "" || len(s) > 10 {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// RemoveImage removes an image; one not in the store is no error, as the
// CRI asks. An image a container holds is refused (FailedPrecondition).
func (s *Server) RemoveImage(_ context.Context, req *runtimeapi.RemoveImageRequest) (*runtimeapi.RemoveImageResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, invalidf("remove image: the image reference is empty")
	}
	im, err := s.images.Inspect(ref)
	if errors.Is(err, image.ErrNotFound) {
		return &runtimeapi.RemoveImageResponse{}, nil
	}
	if err != nil {
		return nil, grpcError("remove image "+ref, err)
	}
	// By ID: the image goes with all its names, as the CRI means.
	if _, err := s.images.Remove(im.ID, false); err != nil && !errors.Is(err, image.ErrNotFound) {
		return nil, grpcError("remove image "+ref, err)
	}
	s.log.Info("removed image", "ref", ref, "id", im.ID)
	return &runtimeapi.RemoveImageResponse{}, nil
}

// ImageFsInfo reports the bytes and inodes the image store uses.
func (s *Server) ImageFsInfo(context.Context, *runtimeapi.ImageFsInfoRequest) (*runtimeapi.ImageFsInfoResponse, error) {
	root := s.images.Root()
	var bytes, inodes uint64
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // removed while we walked
		}
		if path != root && d.IsDir() && filepath.Dir(path) == root && d.Name() == "cri" {
			return fs.SkipDir // the server's own records, when they live here
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		inodes++
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			bytes += uint64(st.Blocks) * 512
		}
		return nil
	})
	if err != nil {
		return nil, internalf("image fs info: %v", err)
	}
	u := &runtimeapi.FilesystemUsage{
		Timestamp:  time.Now().UnixNano(),
		FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: root},
		UsedBytes:  &runtimeapi.UInt64Value{Value: bytes},
		InodesUsed: &runtimeapi.UInt64Value{Value: inodes},
	}
	return &runtimeapi.ImageFsInfoResponse{ImageFilesystems: []*runtimeapi.FilesystemUsage{u}}, nil
}
