package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// staleTemp is how old a temporary file in the state root itself must be
// before gc removes it: no lock tells whether its writer still lives.
const staleTemp = time.Minute

// GC cleans up a state root. It removes every pod that is not running
// (stopped, or left half-made by a create or start that died) and that
// nobody is working on, then frees what the network holds for pods that
// are gone. It returns the names of the pods it removed.
//
// Whether a pod runs is decided under the pod's exclusive lock, which
// create, start and rm hold from their first moment to their last, so a
// pod being made or started is never taken: GC skips a pod whose lock is
// held. A pod is kept if its state says running and its pause lives (the
// one the state names, or PID 1 of its pinned PID namespace).
//
// Of the pods it keeps, GC removes what dead commands left (under the same
// lock; Exec of a detached command and Run hold the shared lock while they
// make these): temporary *.tmp records, logs/.starting-* files of a
// detached exec, and directories of containers that never got a state.
// It also removes what a create or rm that died left in the work
// directory (ROOT/.tmp, each entry locked by its maker), and *.tmp files
// of the root older than a minute.
//
// Only directories podsb made (with the pod marker) are touched.
func GC(ctx context.Context, root string) ([]string, error) {
	root, err := rootPath(root)
	if err != nil {
		return nil, err
	}
	rf, err := openRoot(root)
	if isNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer rf.Close()
	names, err := podNames(rf)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, n := range names {
		gone, err := gcPod(ctx, rf, root, n)
		if gone {
			removed = append(removed, n)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := gcWork(rf); err != nil {
		errs = append(errs, err)
	}
	// A fresh template for the next create (template_linux.go).
	if err := dropTemplate(rf, root, true); err != nil {
		errs = append(errs, err)
	}
	if err := removeTemps(rf, staleTemp); err != nil {
		errs = append(errs, err)
	}
	if err := PruneNetwork(root); err != nil {
		errs = append(errs, err)
	}
	return removed, errors.Join(errs...)
}

// gcPod removes the pod name if it is not running and nobody holds its
// lock, and tidies it if it runs.
func gcPod(ctx context.Context, rf *os.File, root, name string) (bool, error) {
	d, err := lockPod(ctx, rf, root, name, unix.LOCK_EX, false)
	switch {
	case errors.Is(err, errBusy), errors.Is(err, ErrNotFound), errors.Is(err, ErrNotPod):
		return false, nil
	case err != nil:
		return false, err
	}
	defer d.Close()
	st, err := readState(d)
	if err != nil && !isNotExist(err) {
		// Left for rm, which removes it whatever its state says.
		return false, fmt.Errorf("pod %s: %w", name, err)
	}
	p := &Pod{root: root, name: name, state: st}
	if st != nil && st.Status == specs.StateRunning && p.pauseLives(d) {
		return false, tidy(d)
	}
	if err := p.removeLocked(d, RemoveOptions{Force: true}); err != nil {
		return false, err
	}
	return true, nil
}

// tidy removes, from the directory of a running pod whose lock it holds,
// what dead commands left: *.tmp records, logs/.starting-* files, and
// containers without a state (their pinned mount namespace too).
func tidy(d *podDir) error {
	errs := []error{removeTemps(d.dir, 0)}
	if logs, err := openAt(d.dir, "logs", unix.O_RDONLY|unix.O_DIRECTORY, 0); err == nil {
		names, _ := logs.Readdirnames(-1)
		for _, n := range names {
			if strings.HasPrefix(n, ".starting-") {
				errs = append(errs, unlinkAt(logs, n, 0))
			}
		}
		logs.Close()
	}
	cs, err := openAt(d.dir, "containers", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return errors.Join(errs...)
	}
	defer cs.Close()
	names, _ := cs.Readdirnames(-1)
	for _, n := range names {
		c, err := openAt(cs, n, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			continue
		}
		errs = append(errs, removeTemps(c, 0))
		if deadStart(c) {
			// A run that died before its command ran.
			if ns, err := openAt(d.dir, "ns", unix.O_RDONLY|unix.O_DIRECTORY, 0); err == nil {
				for _, h := range []string{"mnt-" + n, "pid-" + n} {
					errs = append(errs, unmountAt(ns, h), unlinkAt(ns, h, 0))
				}
				ns.Close()
			}
			if logs, err := openAt(d.dir, "logs", unix.O_RDONLY|unix.O_DIRECTORY, 0); err == nil {
				errs = append(errs, unlinkAt(logs, n+".log", 0))
				logs.Close()
			}
			errs = append(errs, removeUpper(c), removeTree(cs, n, c))
		}
		c.Close()
	}
	return errors.Join(errs...)
}

// deadStart tells whether the container directory c is what a Run that
// died before its command ran left (see containerStart): no state, or a
// state still creating whose process is gone. The caller holds the pod's
// exclusive lock, so no start of this pod is alive.
func deadStart(c *os.File) bool {
	b, err := readFileAt(c, stateFile, maxState)
	if isNotExist(err) {
		return true
	}
	var cs ContainerState
	if err != nil || json.Unmarshal(b, &cs) != nil || cs.Status != specs.StateCreating {
		return false
	}
	ps, err := readStat(cs.Pid)
	return err != nil || cs.Pid <= 0 || ps.startTime != cs.StartTime || ps.state == 'Z' || ps.state == 'X'
}

// gcWork removes the entries of the work directory whose maker died.
func gcWork(rf *os.File) error {
	work, err := openAt(rf, workDir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil
	}
	defer work.Close()
	defer doneWork(rf)
	return sweepWork(work)
}

// sweepWork removes the entries of the work directory work whose maker
// died: a create that never renamed its pod's directory into place, an rm
// that never finished removing one. Each entry's maker holds its lock.
func sweepWork(work *os.File) error {
	names, _ := work.Readdirnames(-1)
	var errs []error
	for _, n := range names {
		f, err := openAt(work, n, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			errs = append(errs, unlinkAt(work, n, 0))
			continue
		}
		if err != nil {
			continue
		}
		if flock(f, unix.LOCK_EX|unix.LOCK_NB) == nil && sameEntry(work, n, f) {
			errs = append(errs, removeTree(work, n, f))
		}
		f.Close()
	}
	return errors.Join(errs...)
}

// removeTemps removes the *.tmp files of dir (temporary records of
// podsb's atomic writes, written to NAME.tmp and renamed) at least age
// old.
func removeTemps(dir *os.File, age time.Duration) error {
	f, err := os.Open(fdPath(dir))
	if err != nil {
		return err
	}
	names, _ := f.Readdirnames(-1)
	f.Close()
	var errs []error
	for _, n := range names {
		if !strings.HasSuffix(n, ".tmp") {
			continue
		}
		var st unix.Stat_t
		if unix.Fstatat(int(dir.Fd()), n, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			continue
		}
		if time.Since(time.Unix(st.Mtim.Unix())) >= age {
			errs = append(errs, unlinkAt(dir, n, 0))
		}
	}
	return errors.Join(errs...)
}

func unlinkAt(dir *os.File, name string, flags int) error {
	if err := unix.Unlinkat(int(dir.Fd()), name, flags); err != nil && !errors.Is(err, unix.ENOENT) {
		return &os.PathError{Op: "remove", Path: dir.Name() + "/" + name, Err: err}
	}
	return nil
}

// CleanWork removes what creates and removals that died (a killed
// process) left in the state root's work directory, then frees what the
// network holds for pods that are gone (PruneNetwork). Unlike GC it
// removes no pod, stopped or half-made. A create under way holds its lock
// and is left alone, but the address it reserved would be freed: call
// CleanWork when no create of the root is under way, as podsb cri does
// when it starts and between its own creates.
func CleanWork(root string) error {
	root, err := rootPath(root)
	if err != nil {
		return err
	}
	rf, err := openRoot(root)
	if isNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer rf.Close()
	return errors.Join(gcWork(rf), PruneNetwork(root))
}
