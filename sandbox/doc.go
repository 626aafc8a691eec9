// Package sandbox creates, finds, inspects and removes pods.
//
// A pod is a pause process running as PID 1 of new PID, UTS, IPC, mount and
// network namespaces, inside its own root filesystem. The namespaces are
// pinned by bind mounts of /proc/PID/ns/* under the pod's state directory
// (ROOT/NAME/ns/*), so they outlive any one command and other tools
// (nsenter, ip netns) can join them. The pod's network namespace is also
// registered in /run/netns under the pod's name.
//
// State lives under a state root (DefaultRoot, or Config.Root): one directory
// per pod holding state.json, written atomically, and the namespace handles.
// Operations on one pod are serialized with flock(2) on its directory.
//
// Privileges: root (CAP_SYS_ADMIN for mounts and namespaces, CAP_KILL).
//
// Re-exec: Create starts the pod's init by re-executing the running binary
// (/proc/self/exe). This package's init function recognises that re-exec and
// turns the process into the pod's init before main runs, so any program that
// imports sandbox, a test binary included, can create pods with no extra
// set-up. The init prepares the root filesystem, sets the hostname, brings up
// loopback and then replaces itself with the pause program from
// package reaper.
//
// Thread rules: nothing in this package changes the namespaces of the calling
// process or of any of its threads.
package sandbox
