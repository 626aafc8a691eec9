package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/rootfs"
)

// A container from image layers (ContainerConfig.Image) has an overlay of
// the layers as its root, made here on the host with the new mount API
// and handed to the container's init as a detached mount, which it
// attaches as its root: the overlay is never mounted in the host's tree,
// so a start killed at any point leaves no mount behind, and it goes with
// the container's mount namespace. Its upper and work directories live in
// the container's directory, or in a directory of ImageRoot.UpperParent;
// then the container's directory holds a record (upperRecord) naming it,
// written before it is made, by which rm and gc find and remove it.

// upperRecord is the file of a container's directory that names its
// upper and work directory when it is outside (ImageRoot.UpperParent).
const upperRecord = "upper"

// upperPrefix starts the name of every upper and work directory podsb
// makes in an UpperParent: rm and gc remove nothing else.
const upperPrefix = "podsb-upper-"

// applyImage makes cc's command, environment, working directory and user
// those of its image, as docker makes them: Entrypoint then the caller's
// command or else Cmd; the image's Env with the caller's over it; the
// image's WorkingDir and User unless the caller gives them.
func applyImage(cc *ContainerConfig) error {
	img := cc.Image
	if cc.Rootfs != "" {
		return invalidf("run: a container has a Rootfs or an Image, not both")
	}
	if err := img.Check(); err != nil {
		return invalid(err)
	}
	cc.Args = img.Config.Args(cc.Args)
	if len(cc.Args) == 0 {
		return invalidf("image %s: no command: the image has no Entrypoint or Cmd and none was given", img)
	}
	cc.Env = append(append([]string{}, img.Config.Env...), cc.Env...)
	if cc.Dir == "" {
		cc.Dir = img.Config.WorkingDir
	}
	if cc.User == "" {
		cc.User = img.Config.User
	}
	return nil
}

// imageDefaults gives an Exec in a container of an image root what docker
// exec gives: the image's Env under c's, its WorkingDir and User unless c
// has them.
func (p *Pod) imageDefaults(c *ExecConfig) {
	if c.Container == "" {
		return
	}
	cs, err := p.Container(c.Container)
	if err != nil || cs.Image == nil {
		return // openHandles reports it
	}
	img := cs.Image.Config
	c.Env = append(append([]string{}, img.Env...), c.Env...)
	if c.Dir == "" {
		c.Dir = img.WorkingDir
	}
	if c.User == "" {
		c.User = img.User
	}
}

// mountImage makes the container's upper and work directories, mounts the
// overlay (detached, in r.overlay), points spec at it, and makes the
// working directory dir if it is missing, as docker does.
func (r *containerStart) mountImage(img *rootfs.ImageRoot, spec *rootfs.Spec, dir string) error {
	ov := filepath.Join(r.dir, "overlay")
	if img.UpperParent != "" {
		ov = filepath.Join(img.UpperParent, upperPrefix+newID())
		if err := writeFileAtomic(filepath.Join(r.dir, upperRecord), []byte(ov)); err != nil {
			return err
		}
	}
	upper, work := filepath.Join(ov, "upper"), filepath.Join(ov, "work")
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{ov, 0o700}, {upper, 0o755}, {work, 0o700}} {
		if err := os.Mkdir(d.path, d.mode); err != nil {
			return err
		}
	}
	// Mkdir applied the umask.
	if err := os.Chmod(upper, 0o755); err != nil {
		return err
	}
	if err := r.ownUpper(upper); err != nil {
		return err
	}
	layers, closeLayers, err := r.overlayLayers(img)
	if err != nil {
		return fmt.Errorf("image %s: %w", img, err)
	}
	f, err := rootfs.MountOverlay(layers, upper, work)
	closeLayers()
	if err != nil {
		return fmt.Errorf("image %s: %w", img, err)
	}
	r.overlay = f
	// Plan reads the root through the fd; the init attaches the mount.
	spec.Dir = fmt.Sprintf("/proc/self/fd/%d", f.Fd())
	if r.userns != nil {
		// The plan's mount points, made by the host's root, would be
		// nobody's in the pod: the pod's root makes them first.
		if err := rootfs.MakeMountPointsOwned(spec, r.rootOwner()); err != nil {
			return fmt.Errorf("image %s: mount points: %w", img, err)
		}
	}
	if dir != "" {
		p, err := securejoin.SecureJoin(spec.Dir, dir)
		if err != nil {
			return err
		}
		// Nothing else writes to the overlay before the container
		// starts: what SecureJoin resolved stays as it is.
		if err := r.mkdirRoot(spec.Dir, p); err != nil {
			return fmt.Errorf("image %s: working directory %s: %w", img, dir, errors.Unwrap(err))
		}
	}
	return nil
}

// mountOverlay is the start's step for an image root (nothing without
// one): the overlay, detached, which the container's init attaches as its
// root; the fd is closed when the start ends, and a failed start removes
// the upper and work directory.
func (r *containerStart) mountOverlay(context.Context) error {
	if r.cc.Image == nil {
		return nil
	}
	r.onFail(func() {
		if d, err := os.Open(r.dir); err == nil {
			removeUpper(d)
			d.Close()
		}
	})
	err := r.mountImage(r.cc.Image, &r.spec, r.cc.Dir)
	r.closeLater(r.overlay)
	return err
}

// removeUpper removes the upper and work directory that the record of the
// container directory c names, then the record. A directory in the
// container's own directory goes with it.
func removeUpper(c *os.File) error {
	b, err := readFileAt(c, upperRecord, 4096)
	if isNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	ov := string(b)
	if !filepath.IsAbs(ov) || filepath.Clean(ov) != ov || !strings.HasPrefix(filepath.Base(ov), upperPrefix) {
		return fmt.Errorf("%s/%s: %q is not an upper directory of podsb", c.Name(), upperRecord, ov)
	}
	if err := os.RemoveAll(ov); err != nil {
		return err
	}
	return unlinkAt(c, upperRecord, 0)
}

// removeUppers removes the outside upper directories of every container
// of the pod whose directory d is.
func removeUppers(d *os.File) error {
	cs, err := openAt(d, "containers", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil
	}
	defer cs.Close()
	names, _ := cs.Readdirnames(-1)
	var errs []error
	for _, n := range names {
		c, err := openAt(cs, n, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			continue
		}
		errs = append(errs, removeUpper(c))
		c.Close()
	}
	return errors.Join(errs...)
}

// StopSignal is the signal that stops the container: its image's
// StopSignal, or SIGTERM.
func (cs ContainerState) StopSignal() unix.Signal {
	if cs.Image != nil {
		if sig, err := cs.Image.Config.Signal(); err == nil {
			return sig
		}
	}
	return unix.SIGTERM
}
