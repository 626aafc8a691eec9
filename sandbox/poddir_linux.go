package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/errclass"
)

// markerFile marks a directory of the state root as a pod's. Create makes
// the pod's directory in the work directory, writes the marker there, and
// only then renames the directory to its name, so a pod never lacks its
// marker; a directory without one was not made by podsb, and podsb
// neither lists nor touches it.
const (
	markerFile = ".podsb"
	markerText = "podsb pod 1\n"
)

// workDir is ROOT/.tmp: directories that are not, or no longer, pods at
// their name. Create makes a pod's directory here before it renames it
// into place; Remove renames a pod's directory here before it removes its
// files. Each is locked (flock) by the process working on it, so gc
// removes those whose process died.
const workDir = ".tmp"

// podDir is a pod's directory, open below its state root, and (once
// locked) the pod's lock: flock(2) on the directory itself, which dies
// with its holder.
type podDir struct {
	root    *os.File // the state root
	dir     *os.File // ROOT/NAME
	name    string
	path    string // ROOT/NAME, for messages and the mount table
	ownRoot bool   // Close closes root too
}

func (d *podDir) Close() error {
	if d.ownRoot {
		d.root.Close()
	}
	return d.dir.Close()
}

// openPodDir opens the pod name below root. A directory without a marker,
// and a symbolic link, are not pods.
func openPodDir(root *os.File, rootPath, name string) (*podDir, error) {
	path := filepath.Join(rootPath, name)
	f, err := openAt(root, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENOTDIR):
		return nil, notPod(name, path)
	case err != nil:
		return nil, err
	}
	marked, err := hasMarker(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	if !marked {
		// An rm moves the pod's directory away before it empties it:
		// a directory no longer in the root was a pod, now gone.
		gone := !sameEntry(root, name, f)
		f.Close()
		if gone {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		return nil, notPod(name, path)
	}
	return &podDir{root: root, dir: f, name: name, path: path}, nil
}

func notPod(name, path string) error {
	return errclass.New(ErrNotPod, "%s is not a pod: podsb did not make %s", name, path)
}

// hasMarker tells whether the directory dir holds podsb's pod marker.
// A marker that cannot be read for want of a resource (files, memory) is
// that error, not a directory podsb did not make.
func hasMarker(dir *os.File) (bool, error) {
	b, err := readFileAt(dir, markerFile, int64(len(markerText)))
	if outOfResource(err) {
		return false, err
	}
	return err == nil && string(b) == markerText, nil
}

// openWork opens (making it if missing) the state root's work directory.
func openWork(root *os.File) (*os.File, error) {
	for range 100 {
		if err := unix.Mkdirat(int(root.Fd()), workDir, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, &os.PathError{Op: "mkdir", Path: filepath.Join(root.Name(), workDir), Err: err}
		}
		f, err := openAt(root, workDir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if !errors.Is(err, unix.ENOENT) {
			return f, err
		}
		// Removed by another's doneWork in between.
	}
	return nil, fmt.Errorf("cannot make %s", filepath.Join(root.Name(), workDir))
}

// doneWork removes the work directory if it is empty.
func doneWork(root *os.File) { unix.Unlinkat(int(root.Fd()), workDir, unix.AT_REMOVEDIR) }

// makePodDir makes the directory of a new pod, name, below root, and
// returns it locked: made in the work directory, locked, marked, then
// renamed to its name if the name is free (renameat2 RENAME_NOREPLACE).
// The pod is never seen without its marker or its lock.
func makePodDir(root *os.File, rootPath, name string) (*podDir, error) {
	defer doneWork(root)
	for range 100 {
		d, err := tryMakePodDir(root, rootPath, name)
		if !errors.Is(err, errRetry) {
			return d, err
		}
	}
	return nil, fmt.Errorf("cannot make the pod's directory in %s", filepath.Join(rootPath, workDir))
}

// errRetry means the work directory, or the pod's directory in it, was
// removed under us (by gc, or another's doneWork): try again.
var errRetry = errors.New("retry")

func tryMakePodDir(root *os.File, rootPath, name string) (*podDir, error) {
	work, err := openWork(root)
	if errors.Is(err, unix.ENOENT) {
		return nil, errRetry
	}
	if err != nil {
		return nil, err
	}
	defer work.Close()
	tmp := "create-" + newID()
	if err := unix.Mkdirat(int(work.Fd()), tmp, 0o700); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, errRetry
		}
		return nil, &os.PathError{Op: "mkdir", Path: filepath.Join(work.Name(), tmp), Err: err}
	}
	f, err := openAt(work, tmp, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil, errRetry
	}
	if err != nil {
		return nil, err
	}
	if err := flock(f, unix.LOCK_EX); err != nil {
		f.Close()
		return nil, &os.PathError{Op: "flock", Path: f.Name(), Err: err}
	}
	if !sameEntry(work, tmp, f) {
		f.Close()
		return nil, errRetry
	}
	err = writeMarker(f)
	if err == nil {
		err = unix.Renameat2(int(work.Fd()), tmp, int(root.Fd()), name, unix.RENAME_NOREPLACE)
		if errors.Is(err, unix.EEXIST) {
			err = fmt.Errorf("pod %s: %w", name, ErrExists)
		} else if err != nil {
			err = &os.LinkError{Op: "rename", Old: f.Name(), New: filepath.Join(rootPath, name), Err: err}
		}
	}
	if err != nil {
		unix.Unlinkat(int(f.Fd()), markerFile, 0)
		unix.Unlinkat(int(work.Fd()), tmp, unix.AT_REMOVEDIR)
		f.Close()
		return nil, err
	}
	// What a killed create or rm left in the work directory.
	sweepWork(work)
	return &podDir{root: root, dir: f, name: name, path: filepath.Join(rootPath, name)}, nil
}

func writeMarker(dir *os.File) error {
	f, err := openAt(dir, markerFile, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(markerText)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// maxState is the largest state.json podsb reads.
const maxState = 1 << 20

// writeState writes st to dir's state.json atomically: readers see the old
// or the new file, never a part.
func writeState(dir *podDir, st *State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAt(dir.dir, stateFile, b)
}

// readState reads dir's state.json, through no symbolic link. A missing
// file is reported as os.ErrNotExist.
func readState(dir *podDir) (*State, error) {
	b, err := readFileAt(dir.dir, stateFile, maxState)
	if err != nil {
		return nil, err
	}
	st := new(State)
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir.path, stateFile), err)
	}
	return st, nil
}
