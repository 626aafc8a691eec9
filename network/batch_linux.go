package network

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// A Batch defers the deletion of the veth pairs of pods being removed, and
// the release of their addresses and ports, to one Flush: deleting a
// network device waits for RCU grace periods (about 25 ms on a small
// machine), and the kernel waits once for every device one request
// deletes. Flush deletes them all with one RTM_DELLINK of a device group
// that Release gave them.
//
// Until Flush a removed pod's address and ports stay leased, so no new pod
// can take them while the old veth exists. If the remover dies first, gc
// (Prune) releases them and deletes the veths one by one.
type Batch struct {
	// group is a device group of the batch's own: a random number with
	// the top bit set, far from the small numbers people give groups.
	group uint32
	mu    sync.Mutex // guards n: pods are removed concurrently (sandbox.RemoveAll)
	n     int
}

// NewBatch returns an empty batch.
func NewBatch() *Batch { return &Batch{group: 1<<31 | rand.Uint32()>>1} }

// hold puts the pod's veth into the batch's group; it leaves the lease.
func (b *Batch) hold(l *Lease) error {
	link, err := netlink.LinkByName(l.Veth)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return err
	}
	if err := netlink.LinkSetGroup(link, int(b.group)); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("veth %s: set group: %w", l.Veth, err)
	}
	b.mu.Lock()
	b.n++
	b.mu.Unlock()
	return nil
}

// Flush deletes the batch's veth pairs, then releases the leases and ports
// of the state root's pods that no longer exist (exists tells which do):
// those of the batch, and any a killed remover left. keepEmpty is
// Options.KeepEmpty.
func (b *Batch) Flush(root string, keepEmpty bool, exists func(pod string) bool) error {
	if b.n > 0 {
		if err := deleteGroup(b.group); err != nil {
			return err
		}
		b.n = 0
	}
	n, err := Open(root, Options{Existing: true, KeepEmpty: keepEmpty})
	if errors.Is(err, ErrNoNetwork) {
		return nil
	}
	if err != nil {
		return err
	}
	err = n.Prune(exists)
	if cerr := n.Close(); err == nil {
		err = cerr
	}
	return err
}

// deleteGroup deletes every link of the host's network namespace in
// device group g, in one request (ip link delete group G); none is fine.
func deleteGroup(g uint32) error {
	req := nl.NewNetlinkRequest(unix.RTM_DELLINK, unix.NLM_F_ACK)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_GROUP, nl.Uint32Attr(g)))
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete veths of group %d: %w", g, err)
	}
	return nil
}
