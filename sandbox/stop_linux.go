package sandbox

import (
	"context"
	"fmt"
)

// Stop ends the pod's pause process, and with it every process of the pod,
// and gives back its address and published ports, but keeps the pod: its
// state directory, its network, IPC and UTS namespaces, its cgroup. The pod
// is listed as stopped until Start runs it again (on the same address when
// that is still free) or Remove removes it. Stopping a stopped pod does
// nothing. opts are as for Remove; its Trace is unused.
func (p *Pod) Stop(ctx context.Context, opts RemoveOptions) error {
	return opError("stop", p.name, "", p.stopPod(ctx, opts))
}

func (p *Pod) stopPod(ctx context.Context, opts RemoveOptions) error {
	d, err := p.lock(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	st, err := readState(d)
	if err != nil {
		return fmt.Errorf("no state (remove the pod): %w", err)
	}
	p.state = st
	if err := p.stop(d, opts); err != nil {
		return err
	}
	// The lease stays in the state: Start reattaches the pod to it.
	if st.Network != nil {
		if err := releaseNetwork(p.root, p.name, st.Network, opts.KeepNetwork); err != nil {
			return fmt.Errorf("release its network: %w", err)
		}
	}
	return nil
}
