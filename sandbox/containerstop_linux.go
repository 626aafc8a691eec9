package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/errclass"
)

// StopContainer stops a container's main process: it sends sig (the
// container's StopSignal if 0: its image's, else SIGTERM) through a pidfd
// opened before the identity check, waits up to timeout for the process
// to exit, then sends SIGKILL. It returns once the process is gone and,
// for a detached container, once pause has recorded its exit (see
// Container). Stopping a stopped container does nothing. The
// container's other processes, if its main process leaves any, stay: they
// die with the pod.
func (p *Pod) StopContainer(ctx context.Context, name string, sig unix.Signal, timeout time.Duration) error {
	return opError("stop", p.name, name, p.stopContainerNamed(ctx, name, sig, timeout))
}

func (p *Pod) stopContainerNamed(ctx context.Context, name string, sig unix.Signal, timeout time.Duration) error {
	cs, err := p.Container(name)
	if err != nil {
		return err
	}
	if sig == 0 {
		sig = cs.StopSignal()
	}
	if cs.Status != specs.StateRunning {
		return nil
	}
	if err := p.stopContainer(ctx, cs, sig, timeout); err != nil {
		return err
	}
	_, err = p.Container(name) // which waits for the record
	return err
}

func (p *Pod) stopContainer(ctx context.Context, cs ContainerState, sig unix.Signal, timeout time.Duration) error {
	fd, err := unix.PidfdOpen(cs.Pid, 0)
	if err != nil {
		return nil // gone
	}
	defer unix.Close(fd)
	// The PID is pinned by the pidfd: check it is still the container's.
	if now, err := p.Container(cs.Name); err != nil || now.Status != specs.StateRunning || now.Pid != cs.Pid {
		return nil
	}
	for _, s := range []unix.Signal{sig, unix.SIGKILL} {
		if err := unix.PidfdSendSignal(fd, s, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("signal %d: %w", s, err)
		}
		wait := timeout
		if s == unix.SIGKILL {
			wait = DefaultStopTimeout
		}
		if s == unix.SIGKILL || wait > 0 {
			exited, err := awaitPidfd(ctx, fd, wait)
			if err != nil {
				return err
			}
			if exited {
				return nil
			}
		}
	}
	return fmt.Errorf("its process (pid %d) did not exit after SIGKILL", cs.Pid)
}

// awaitPidfd waits up to d, or until ctx ends, for the process behind
// pidfd to exit.
func awaitPidfd(ctx context.Context, pidfd int, d time.Duration) (bool, error) {
	deadline := time.Now().Add(d)
	for {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		ms := max(min(int(time.Until(deadline).Milliseconds()), 50), 0)
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, ms)
		switch {
		case err == nil && n > 0:
			return true, nil
		case err != nil && !errors.Is(err, unix.EINTR):
			return false, os.NewSyscallError("poll", err)
		case !time.Now().Before(deadline):
			return false, nil
		}
	}
}

// RemoveContainer removes a container: its pinned mount namespace, its
// image root's upper directory, its directory, log and exit file. A
// running container is refused (ErrRunning) unless force, which kills it
// first. An unknown name is ErrNotFound; a container being started by a
// live Run is refused. What a dead start left is removed.
func (p *Pod) RemoveContainer(ctx context.Context, name string, force bool) error {
	return opError("rm", p.name, name, p.removeContainer(ctx, name, force))
}

func (p *Pod) removeContainer(ctx context.Context, name string, force bool) error {
	if err := validateContainerName(name); err != nil {
		return err
	}
	// As for Run: gc leaves a running pod's containers alone meanwhile.
	lock, err := p.lockShared(ctx)
	if err != nil {
		return err
	}
	defer lock.Close()
	cs, err := p.Container(name)
	if errors.Is(err, ErrNotFound) {
		// No container, but perhaps what a dead start left.
		return p.removeDeadStart(name)
	}
	if err != nil {
		return err
	}
	if cs.Status == specs.StateRunning {
		if !force {
			return errclass.New(ErrRunning, "container %s in pod %s is running: stop it first", name, p.name)
		}
		if err := p.StopContainer(ctx, name, unix.SIGKILL, 0); err != nil {
			return err
		}
	}
	return p.removeContainerFiles(name)
}

// removeDeadStart removes what a dead start of name left, or says there
// is no such container.
func (p *Pod) removeDeadStart(name string) error {
	cf, err := os.Open(filepath.Join(p.Dir(), "containers"))
	if err == nil {
		defer cf.Close()
		err = flock(cf, unix.LOCK_EX)
	}
	if err != nil && !isNotExist(err) {
		return err
	}
	if _, err := os.Lstat(p.containerDir(name)); err == nil && !p.reclaimDeadStart(name) {
		return fmt.Errorf("container %s in pod %s is being started", name, p.name)
	}
	return errclass.New(ErrNotFound, "no such container %s in pod %s", name, p.name)
}

// removeContainerFiles removes a stopped container's files, holding the
// lock of the pod's containers (as Run does to make one) and the
// container's own.
func (p *Pod) removeContainerFiles(name string) error {
	cf, err := os.Open(filepath.Join(p.Dir(), "containers"))
	if err != nil {
		return err
	}
	defer cf.Close()
	if err := flock(cf, unix.LOCK_EX); err != nil {
		return err
	}
	dir := p.containerDir(name)
	f, err := os.Open(dir)
	if isNotExist(err) {
		return errclass.New(ErrNotFound, "no such container %s in pod %s", name, p.name)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if flock(f, unix.LOCK_EX|unix.LOCK_NB) != nil {
		return fmt.Errorf("container %s in pod %s is being started", name, p.name)
	}
	if cs, err := p.Container(name); err == nil && cs.Status == specs.StateRunning {
		return errclass.New(ErrRunning, "container %s in pod %s is running: stop it first", name, p.name)
	} else if err == nil && cs.PodPID > 0 {
		unlinkExit(filepath.Join(p.exitsDir(), strconv.Itoa(cs.PodPID)), filepath.Join(dir, exitFile))
	}
	for _, handle := range []string{p.containerMountNS(name), p.containerPIDNS(name)} {
		if err := unmount(handle); err != nil {
			return fmt.Errorf("remove container %s in pod %s: %w", name, p.name, err)
		}
		if err := os.Remove(handle); err != nil && !isNotExist(err) {
			return err
		}
	}
	if err := removeUpper(f); err != nil {
		return err
	}
	if err := p.removeContainerCgroup(name); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(p.Dir(), "logs", name+".log")); err != nil && !isNotExist(err) {
		return err
	}
	return os.RemoveAll(dir)
}
