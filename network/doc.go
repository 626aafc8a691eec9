// Package network gives pods a bridged network on the host, built directly
// on netlink and nftables, with no external binary at run time.
//
// A network belongs to one podsb state root and is kept in ROOT/.network: its
// configuration (bridge name and subnet, fixed on first use), address leases
// (one file per address, created with O_EXCL, naming the pod that holds it)
// and port reservations (likewise). A flock on that directory serializes
// changes, so concurrent creates never share an address or a port, and
// everything survives podsb exiting. The bridge carries an alias naming its
// state root, so two roots never share one. The kernel ignores an alias
// given when a link is made, so the bridge is made under a name of its
// root's own (pb and a hash of the root), given its alias and address, and
// only then renamed: a create killed half-way leaves a link that the root
// recognises, and deletes or completes.
//
// Per pod: a veth pair whose pod end is eth0, created directly in the pod's
// network namespace, an address from the subnet, a default route through the
// bridge's gateway address, and the bridge's MTU. Published ports are
// destination NAT rules in an nftables table of the network's own
// (ip podsb_BRIDGE), for traffic to a local address arriving from outside
// (prerouting) and sent by the host itself (output); connections from the
// host's own 127.0.0.1 work because the bridge allows loopback-sourced
// routing (route_localnet) and a masquerade rule rewrites the source of
// NATed traffic into the bridge. route_localnet would also let a pod's
// hand-made packets reach the host's services bound to 127.0.0.1; a filter
// rule of the same table (input chain) drops what arrives from the bridge
// for 127.0.0.0/8 unless it belongs to a NATed or established connection.
// The last pod to leave removes the bridge, the table and the network
// directory.
//
// Nothing else of the host is touched: no other link, route, rule or
// global sysctl (net.ipv4.ip_forward is left as it is; published ports are
// reached from this machine, and from elsewhere only where the
// administrator enables forwarding).
//
// Privileges: CAP_NET_ADMIN. Thread rules: nothing here changes the calling
// thread's namespaces; netlink handles are opened in the pod's namespace
// (netlink.NewHandleAt) instead.
package network
