package sandbox

import (
	"sort"
	"strings"
)

// Sysctl is a kernel parameter set in a pod's namespaces when it is
// created: Key as sysctl(8) names it (net.ipv4.ip_forward, or with slashes,
// net/ipv4/conf/eth0.1/rp_filter, where dots are part of a name).
type Sysctl struct {
	Key, Value string
}

// ipcSysctls are the kernel.* sysctls of an IPC namespace.
var ipcSysctls = map[string]bool{
	"kernel.sem": true, "kernel.shm_rmid_forced": true, "kernel.shmmax": true, "kernel.shmall": true,
	"kernel.shmmni": true, "kernel.msgmax": true, "kernel.msgmnb": true, "kernel.msgmni": true,
}

// sysctlOwner names which of the pod's namespaces a sysctl belongs to, or
// "" if it is not namespaced (the host's, which no pod may change).
func sysctlOwner(comps []string) string {
	key := strings.Join(comps, ".")
	switch {
	case comps[0] == "net" && len(comps) > 1:
		return "network"
	case comps[0] == "fs" && len(comps) > 2 && comps[1] == "mqueue":
		return "ipc"
	case ipcSysctls[key]:
		return "ipc"
	case key == "kernel.domainname":
		return "uts"
	}
	return ""
}

// sysctlComponents splits a sysctl's key into the names of its path below
// /proc/sys, each checked: no empty name, no . or .., only letters,
// digits, _ - (and . in the slash form).
func sysctlComponents(key string) ([]string, bool) {
	sep, extra := ".", ""
	if strings.Contains(key, "/") {
		sep, extra = "/", "."
	}
	comps := strings.Split(key, sep)
	for _, c := range comps {
		if c == "" || c == "." || c == ".." {
			return nil, false
		}
		for _, r := range c {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || strings.ContainsRune(extra, r)) {
				return nil, false
			}
		}
	}
	return comps, true
}

// sysctlPaths checks a pod's sysctls and returns the file below /proc/sys
// of each and its value, sorted by key. Only sysctls of the pod's own
// namespaces may be set: net.* with a network namespace of its own (not
// hostNet), the IPC ones (kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*)
// with an IPC namespace of its own (not hostIPC), kernel.domainname with a
// UTS namespace of its own (which a host-network pod shares with the host).
// kernel.hostname is the pod's hostname, not a sysctl. A value may not hold
// a newline or a NUL.
func sysctlPaths(sysctls []Sysctl, hostNet, hostIPC bool) ([][2]string, error) {
	sorted := append([]Sysctl(nil), sysctls...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Key < sorted[j].Key })
	seen := map[string]bool{}
	var out [][2]string
	for _, s := range sorted {
		comps, ok := sysctlComponents(s.Key)
		if !ok {
			return nil, invalidf("sysctl %q: not a sysctl name", s.Key)
		}
		path := strings.Join(comps, "/")
		if seen[path] {
			return nil, invalidf("sysctl %q: given twice", s.Key)
		}
		seen[path] = true
		if s.Value == "" || strings.ContainsAny(s.Value, "\n\x00") {
			return nil, invalidf("sysctl %s: value %q is empty or has a newline or NUL", s.Key, s.Value)
		}
		switch owner := sysctlOwner(comps); {
		case owner == "":
			return nil, invalidf("sysctl %s: not namespaced: a pod may set only net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.* and kernel.domainname", s.Key)
		case owner == "network" && hostNet:
			return nil, invalidf("sysctl %s: the pod uses the host's network namespace", s.Key)
		case owner == "ipc" && hostIPC:
			return nil, invalidf("sysctl %s: the pod uses the host's IPC namespace", s.Key)
		case owner == "uts" && hostNet:
			return nil, invalidf("sysctl %s: the pod uses the host's UTS namespace (host network)", s.Key)
		}
		out = append(out, [2]string{path, s.Value})
	}
	return out, nil
}
