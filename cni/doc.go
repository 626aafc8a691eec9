// Package cni hands a pod's network to CNI plugins: it loads a network
// configuration list from a directory of them (as kubelet setups keep in
// /etc/cni/net.d) and runs its plugins' ADD, CHECK and DEL on a network
// namespace, through libcni (github.com/containernetworking/cni).
//
// The network namespace is one the caller pinned (podsb's ROOT/POD/ns/net):
// this package never makes, joins or removes one, and runs no code in it;
// the plugins, separate executables, do. The pod's address is the ADD
// result's. Published ports go to the plugins as the portMappings
// capability (runtimeConfig), which the portmap plugin honours; libcni
// passes it only to a plugin that declares the capability.
//
// libcni caches each ADD's result and configuration in a cache directory
// (Options.CacheDir; podsb cri keeps it under its state directory, not in
// the host's /var/lib/cni), which DEL reads.
//
// Privileges: the plugins need root (CAP_NET_ADMIN, CAP_SYS_ADMIN to enter
// the namespace). No thread rules: nothing here changes a thread's
// namespaces.
package cni
