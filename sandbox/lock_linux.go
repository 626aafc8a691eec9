package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// lockPod opens the pod name below root and takes its lock: exclusive
// (unix.LOCK_EX) to change the pod, shared (unix.LOCK_SH) to add to a
// running pod's files. It waits while another holds the lock, until ctx
// ends, or with wait false fails at once with errBusy. A pod removed (and
// perhaps made anew) while it waited is noticed: the directory locked must
// still be the one at the name, and still a pod.
func lockPod(ctx context.Context, root *os.File, rootPath, name string, how int, wait bool) (*podDir, error) {
	delay := 100 * time.Microsecond
	for {
		d, err := openPodDir(root, rootPath, name)
		if err != nil {
			return nil, err
		}
		err = flock(d.dir, how|unix.LOCK_NB)
		if err == nil {
			marked, err := hasMarker(d.dir)
			if err != nil {
				d.Close()
				return nil, err
			}
			if marked && sameEntry(root, name, d.dir) {
				return d, nil
			}
			d.Close()
			continue
		}
		d.Close()
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return nil, &os.PathError{Op: "flock", Path: d.path, Err: err}
		}
		if !wait {
			return nil, errBusy
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("pod %s is busy: %w", name, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 20*time.Millisecond)
	}
}

// errBusy means another process holds the lock.
var errBusy = errors.New("busy")

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// lock opens the pod's state root and directory and takes the pod's
// exclusive lock, waiting until ctx ends.
func (p *Pod) lock(ctx context.Context) (*podDir, error) {
	return p.lockAs(ctx, unix.LOCK_EX)
}

// lockShared takes the pod's shared lock: Exec of a detached command and
// Run hold it while they make files in a running pod's directory (a log,
// a container's directory), so that gc, which tidies a running pod under
// the exclusive lock, never takes a file that is being made.
func (p *Pod) lockShared(ctx context.Context) (*podDir, error) {
	return p.lockAs(ctx, unix.LOCK_SH)
}

func (p *Pod) lockAs(ctx context.Context, how int) (*podDir, error) {
	root, err := openRoot(p.root)
	if isNotExist(err) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, p.name)
	}
	if err != nil {
		return nil, err
	}
	d, err := lockPod(ctx, root, p.root, p.name, how, true)
	if err != nil {
		root.Close()
		return nil, err
	}
	d.ownRoot = true
	return d, nil
}
