package rootfs

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// MaxLayers is the most layers an image root may have: overlayfs stacks at
// most 500 lower layers (OVL_MAX_STACK).
const MaxLayers = 500

// ImageRoot is a container root made of image layers: an overlay of the
// layers, read-only and shared by every container using them, under a
// writable upper directory of the container's own.
type ImageRoot struct {
	// ID names the image (a digest or a reference). podsb records it in
	// the container's state and does not read it.
	ID string `json:"id,omitempty"`
	// Layers are the unpacked layer directories, lowest first, whiteouts
	// in overlayfs form (a 0/0 character device; an opaque directory has
	// the xattr trusted.overlay.opaque=y).
	Layers []string `json:"layers"`
	// UpperParent is the directory in which the container's upper and
	// work directories are made (best on the file system of the layers);
	// the container's state directory if empty.
	UpperParent string `json:"upperParent,omitempty"`
	// Config is the image's run configuration.
	Config ImageConfig `json:"config"`
}

// ImageConfig is the part of an OCI image's configuration that running it
// uses, with the field names of the image spec's ImageConfig.
type ImageConfig struct {
	// User is USER[:GROUP], names looked up in the image's own /etc.
	User string `json:"user,omitempty"`
	// Env are KEY=VALUE pairs; the caller's environment goes over them.
	Env []string `json:"env,omitempty"`
	// Entrypoint and Cmd make the command: Entrypoint followed by Cmd,
	// or by the caller's command if there is one.
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	// WorkingDir is the command's directory, made if missing.
	WorkingDir string `json:"workingDir,omitempty"`
	// StopSignal is what stops the container: a name (SIGQUIT, QUIT) or
	// a number; SIGTERM if empty.
	StopSignal string `json:"stopSignal,omitempty"`
}

// Check validates the image root from the host, before anything is made.
func (r *ImageRoot) Check() error {
	if len(r.Layers) == 0 {
		return invalidf("image %s: no layers", r)
	}
	if len(r.Layers) > MaxLayers {
		return invalidf("image %s: %d layers, overlayfs takes at most %d", r, len(r.Layers), MaxLayers)
	}
	for _, l := range r.Layers {
		if !filepath.IsAbs(l) {
			return invalidf("image %s: layer %s: not an absolute path", r, l)
		}
		if !isDir(l) {
			return invalidf("image %s: layer %s: not a directory", r, l)
		}
	}
	if r.UpperParent != "" && (!filepath.IsAbs(r.UpperParent) || !isDir(r.UpperParent)) {
		return invalidf("image %s: upper parent %s: not an absolute path to a directory", r, r.UpperParent)
	}
	if r.Config.WorkingDir != "" && !filepath.IsAbs(r.Config.WorkingDir) {
		return invalidf("image %s: working directory %q: not an absolute path", r, r.Config.WorkingDir)
	}
	if _, err := r.Config.Signal(); err != nil {
		return err
	}
	return nil
}

// Args returns the command as docker makes it: Entrypoint followed by cmd
// if it is given, else by Cmd.
func (c ImageConfig) Args(cmd []string) []string {
	if len(cmd) == 0 {
		cmd = c.Cmd
	}
	return append(append([]string{}, c.Entrypoint...), cmd...)
}

// Signal returns StopSignal as a signal; SIGTERM if it is empty.
func (c ImageConfig) Signal() (unix.Signal, error) {
	if c.StopSignal == "" {
		return unix.SIGTERM, nil
	}
	return ParseSignal(c.StopSignal)
}

// ParseSignal reads a signal as a number, or a name with or without SIG.
func ParseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, invalidf("signal %q: not a signal name or number", s)
}

// String names the image root for messages.
func (r *ImageRoot) String() string {
	if r.ID != "" {
		return r.ID
	}
	return fmt.Sprintf("%d layers", len(r.Layers))
}
