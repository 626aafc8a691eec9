package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// lockDir takes the exclusive lock of a pod's directory, waiting for another
// holder until ctx ends. The lock is flock(2) on the directory itself, so it
// needs no file of its own and dies with the holder. A directory removed
// (and perhaps made anew) while we waited is noticed by comparing inodes.
func lockDir(ctx context.Context, dir, name string) (*os.File, error) {
	wait := 100 * time.Microsecond
	for {
		f, err := os.Open(dir)
		if isNotExist(err) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		if err != nil {
			return nil, err
		}
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			if same, _ := sameDir(f, dir); same {
				return f, nil
			}
			f.Close()
			continue
		}
		f.Close()
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return nil, &os.PathError{Op: "flock", Path: dir, Err: err}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("pod %s is busy: %w", name, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 20*time.Millisecond)
	}
}

func sameDir(f *os.File, dir string) (bool, error) {
	var a, b unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &a); err != nil {
		return false, err
	}
	if err := unix.Stat(dir, &b); err != nil {
		return false, err
	}
	return a.Dev == b.Dev && a.Ino == b.Ino, nil
}
