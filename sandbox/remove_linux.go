package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/network"
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
	// KeepNetwork leaves the state root's bridge network (bridge, NAT
	// table) in place even if this was its last pod, for a caller that
	// makes pods again soon: podsb cri, which prunes it when it stops
	// (PruneNetwork). Otherwise the last pod's removal or stop removes it.
	KeepNetwork bool
	// Trace, if set, is called after each step of the removal with its
	// name and duration, as Config.Trace is for Create.
	Trace func(step string, d time.Duration)
	// Batch, if set, leaves the pod's veth pair, address and ports to
	// Batch.Flush, which the caller calls after its last Remove.
	Batch *RemoveBatch
}

// A RemoveBatch deletes the veth pairs of many removed pods at once: one
// veth deleted on its own costs RCU grace periods (about 25 ms), a batch
// of them about the same. Until Flush, the removed pods' addresses and
// ports stay leased; if the remover dies first, gc releases them. A pod
// whose removal fails after its network step keeps its lease (start
// attaches it again). A batch is for one goroutine at a time.
type RemoveBatch struct {
	links *network.Batch
}

// NewRemoveBatch returns an empty batch.
func NewRemoveBatch() *RemoveBatch { return &RemoveBatch{links: network.NewBatch()} }

// Flush deletes the veth pairs of the pods removed with the batch in root,
// and releases their addresses and ports (and those of any other pod that
// is gone); the network itself goes with its last pod unless keepNetwork.
func (b *RemoveBatch) Flush(root string, keepNetwork bool) error {
	if err := b.links.Flush(root, keepNetwork, func(pod string) bool { return isPodDir(root, pod) }); err != nil {
		return fmt.Errorf("release network of removed pods: %w", err)
	}
	return nil
}

// removeWorkers is how many pods RemoveAll removes at once. A removal is
// mostly waiting (for pause and its namespaces to end, for the RCU grace
// period of each unmount), and waits overlap, on any number of CPUs.
const removeWorkers = 8

// RemoveAll removes each of pods as Remove does, several at a time; errs[i]
// is pods[i]'s error. Give opts a Batch for more than a few bridged pods.
func RemoveAll(ctx context.Context, pods []*Pod, opts RemoveOptions) []error {
	errs := make([]error, len(pods))
	eachOn(removeWorkers, len(pods), func(i int) { errs[i] = pods[i].Remove(ctx, opts) })
	return errs
}

// Remove stops the pod's pause process, which ends every process of the pod,
// then removes its ip netns entry, its namespace handles and its state
// directory. It works on running pods, pods whose pause died, and pods left
// half-made by a crash.
func (p *Pod) Remove(ctx context.Context, opts RemoveOptions) error {
	return opError("rm", p.name, "", p.remove(ctx, opts))
}

func (p *Pod) remove(ctx context.Context, opts RemoveOptions) error {
	d, err := p.lock(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	// What we loaded may be stale: the lock's holder may have changed it.
	// A state that cannot be read does not keep the pod: its pause is
	// then found through the pinned PID namespace.
	st, err := readState(d)
	if err != nil {
		st = nil
	}
	p.state = st
	return p.removeLocked(d, opts)
}

// removeLocked removes the pod, whose lock d is.
func (p *Pod) removeLocked(d *podDir, opts RemoveOptions) error {
	st := p.state
	step := traceFunc(opts.Trace)
	if err := p.stop(d, opts); err != nil {
		return err
	}
	step("stop pause")
	if st != nil && st.Network != nil {
		var links *network.Batch
		if opts.Batch != nil {
			links = opts.Batch.links
		}
		if err := releaseNetworkTo(p.root, p.name, st.Network, opts.KeepNetwork, links); err != nil {
			return err
		}
		step("release network")
	}
	if err := p.removeCgroup(st); err != nil {
		return err
	}
	step("remove cgroup")
	if err := teardown(d); err != nil {
		return err
	}
	if st == nil {
		// A create that died before its first state write may hold an
		// address: free what belongs to pods that are gone.
		if err := releaseNetwork(p.root, p.name, nil, opts.KeepNetwork); err != nil {
			return err
		}
	}
	return nil
}

// stop ends the pod's pause process and waits until it is dead. Signals go
// through a pidfd opened before the identity check (findPause), so a PID
// reused after the check is never signalled. A pause that is stopped or
// traced cannot act on SIGTERM: it gets SIGKILL at once.
func (p *Pod) stop(d *podDir, opts RemoveOptions) error {
	// pause's exit does not end them.
	p.killHostPIDContainers()
	pid, pidfd := p.findPause(d)
	if pidfd < 0 {
		p.reapZombie()
		return nil
	}
	defer unix.Close(pidfd)
	timeout := opts.Timeout
	switch {
	case timeout == 0:
		timeout = DefaultStopTimeout
	case timeout < 0:
		timeout = 0
	}
	sig := unix.SIGTERM
	if opts.Force || stopped(pid) {
		sig = unix.SIGKILL
	}
	for _, s := range []unix.Signal{sig, unix.SIGKILL} {
		if err := unix.PidfdSendSignal(pidfd, s, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("signal pause of %s: %w", p.name, err)
		}
		if awaitExit(pidfd, pid, timeout, s != unix.SIGKILL) {
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

// findPause finds the pod's live pause and opens a pidfd to it before it
// checks its identity: the process the state names if it is the pod's
// pause (isPause), else PID 1 of the pinned PID namespace (for a create
// that died before it wrote any state, or a state that names another
// process). It returns a pidfd of -1 if there is none.
func (p *Pod) findPause(d *podDir) (pid, pidfd int) {
	if st := p.state; st != nil && st.Pid > 0 {
		if fd, err := unix.PidfdOpen(st.Pid, 0); err == nil {
			if isPause(d.dir, "ns/pid", st.Pid, st.StartTime, st.BootID) {
				return st.Pid, fd
			}
			unix.Close(fd)
		}
	}
	ino, ok := pinnedInode(d.dir, "ns/pid")
	if !ok {
		return 0, -1 // never pinned, or unpinned
	}
	pids, err := listPIDs()
	if err != nil {
		return 0, -1
	}
	for _, s := range pids {
		if i, ok := pidNSInode(s); !ok || i != ino || !isInit(s) {
			continue
		}
		n, _ := strconv.Atoi(s)
		fd, err := unix.PidfdOpen(n, 0)
		if err != nil {
			continue
		}
		// Checked again with the pidfd open: once the namespace's init
		// is dead, no process can be PID 1 of it.
		if i, ok := pidNSInode(s); ok && i == ino && isInit(s) {
			return n, fd
		}
		unix.Close(fd)
	}
	return 0, -1
}

// pauseLives tells whether the pod has a live pause (findPause): the one
// its state names, or PID 1 of its pinned PID namespace.
func (p *Pod) pauseLives(d *podDir) bool {
	_, pidfd := p.findPause(d)
	if pidfd < 0 {
		return false
	}
	unix.Close(pidfd)
	return true
}

// stopped tells whether pid is stopped (by a signal, or by a tracer).
func stopped(pid int) bool {
	ps, err := readStat(pid)
	return err == nil && (ps.state == 'T' || ps.state == 't')
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

// awaitExit waits up to d for the process behind pidfd (pid) to exit. With
// early, it gives up as soon as the process is stopped: a pending signal
// other than SIGKILL waits until it is continued.
func awaitExit(pidfd, pid int, d time.Duration, early bool) bool {
	deadline := time.Now().Add(d)
	for {
		ms := min(int(time.Until(deadline).Milliseconds()), 100)
		if ms < 0 {
			ms = 0
		}
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, ms)
		switch {
		case err == nil && n > 0:
			return true
		case err != nil && !errors.Is(err, unix.EINTR):
			return false
		case time.Now().After(deadline), early && stopped(pid):
			return false
		}
	}
}
