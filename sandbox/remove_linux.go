package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// DefaultStopTimeout is how long pause gets to exit after SIGTERM before
// Remove sends SIGKILL.
const DefaultStopTimeout = 10 * time.Second

// RemoveOptions tune Remove.
type RemoveOptions struct {
	// Timeout is the grace period between SIGTERM and SIGKILL;
	// DefaultStopTimeout if zero, none if negative.
	Timeout time.Duration
	// Force sends SIGKILL at once.
	Force bool
}

// Remove stops the pod's pause process, which ends every process of the pod,
// then removes its ip netns entry, its namespace handles and its state
// directory. It works on running pods, pods whose pause died, and pods left
// half-made by a crash.
func (p *Pod) Remove(ctx context.Context, opts RemoveOptions) error {
	dir := p.Dir()
	lock, err := lockDir(ctx, dir, p.name)
	if err != nil {
		return err
	}
	defer lock.Close()
	// What we loaded may be stale: the lock's holder may have changed it.
	st, err := readState(dir)
	if err != nil && !isNotExist(err) {
		return err
	}
	p.state = st
	if err := p.stop(opts); err != nil {
		return err
	}
	if st != nil && st.Network != nil {
		if err := releaseNetwork(p.root, p.name, st.Network); err != nil {
			return err
		}
	}
	if err := removeCgroup(st); err != nil {
		return err
	}
	if err := teardown(dir, p.name); err != nil {
		return fmt.Errorf("remove pod %s: %w", p.name, err)
	}
	if st == nil {
		// A create that died before its first state write may hold an
		// address: free what belongs to pods that are gone.
		if err := releaseNetwork(p.root, p.name, nil); err != nil {
			return err
		}
	}
	return nil
}

// stop ends the pod's pause process and waits until it is dead. Signals go
// through a pidfd opened before the identity check, so a PID reused after
// the check is never signalled.
func (p *Pod) stop(opts RemoveOptions) error {
	pid, same := p.pause()
	if pid == 0 {
		p.reapZombie()
		return nil
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(pidfd)
	if !same() {
		return nil
	}
	timeout := opts.Timeout
	switch {
	case timeout == 0:
		timeout = DefaultStopTimeout
	case timeout < 0:
		timeout = 0
	}
	sig := unix.SIGTERM
	if opts.Force {
		sig = unix.SIGKILL
	}
	for _, s := range []unix.Signal{sig, unix.SIGKILL} {
		if err := unix.PidfdSendSignal(pidfd, s, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("signal pause of %s: %w", p.name, err)
		}
		if exited(pidfd, timeout) {
			// Reap pause if it is our child (a pod made by this process);
			// otherwise its parent does.
			var info unix.Siginfo
			unix.Waitid(unix.P_PIDFD, pidfd, &info, unix.WEXITED|unix.WNOHANG, nil)
			return nil
		}
		timeout = DefaultStopTimeout
	}
	return fmt.Errorf("pause of %s (pid %d) did not exit after SIGKILL", p.name, pid)
}

// reapZombie reaps a pause that died on its own while this process, which
// created the pod, is its parent: nobody else can.
func (p *Pod) reapZombie() {
	st := p.state
	if st == nil || st.Pid <= 0 || st.BootID != bootID() {
		return
	}
	if ps, err := readStat(st.Pid); err == nil && ps.state == 'Z' && ps.startTime == st.StartTime && ps.ppid == os.Getpid() {
		var info unix.Siginfo
		unix.Waitid(unix.P_PID, st.Pid, &info, unix.WEXITED|unix.WNOHANG, nil)
	}
}

// pause finds the pod's live pause process: from the state, or, for a pod
// whose create died before it wrote any, as PID 1 of the pinned PID
// namespace. It returns 0 if there is none, and a check that the PID still
// is that process.
func (p *Pod) pause() (int, func() bool) {
	if p.state != nil {
		if !p.alive() {
			return 0, nil
		}
		return p.state.Pid, p.alive
	}
	handle := p.NamespacePath("pid")
	var fs unix.Statfs_t
	if err := unix.Statfs(handle, &fs); err != nil || fs.Type != unix.NSFS_MAGIC {
		return 0, nil // never pinned
	}
	ino, err := nsInode(handle)
	if err != nil {
		return 0, nil
	}
	pids, err := listPIDs()
	if err != nil {
		return 0, nil
	}
	for _, pid := range pids {
		if i, ok := pidNSInode(pid); !ok || i != ino {
			continue
		}
		if s, err := readStatus(pid); err == nil && len(s.nspid) > 0 && s.nspid[len(s.nspid)-1] == 1 {
			same := func() bool { i, ok := pidNSInode(pid); return ok && i == ino }
			n, _ := strconv.Atoi(pid)
			return n, same
		}
	}
	return 0, nil
}

// exited waits up to d for the process behind pidfd to exit.
func exited(pidfd int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		ms := int(time.Until(deadline).Milliseconds())
		if ms < 0 {
			ms = 0
		}
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, ms)
		if err == nil {
			return n > 0
		}
		if !errors.Is(err, unix.EINTR) {
			return false
		}
	}
}

// GC removes, under a state root, every pod that is not running (stopped,
// or left half-made by a create that died) and that nobody is working on,
// then frees what the network holds for pods that are gone. It returns the
// names of the pods it removed.
func GC(ctx context.Context, root string) ([]string, error) {
	pods, err := List(root)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, p := range pods {
		if p.Status() == specs.StateRunning {
			continue
		}
		// A create or rm in progress holds the lock: leave its pod be.
		busy, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		err := p.Remove(busy, RemoveOptions{Force: true})
		cancel()
		switch {
		case err == nil:
			removed = append(removed, p.Name())
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, ErrNotFound):
		default:
			errs = append(errs, err)
		}
	}
	if err := PruneNetwork(root); err != nil {
		errs = append(errs, err)
	}
	return removed, errors.Join(errs...)
}
