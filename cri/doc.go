// Package cri serves the Kubernetes Container Runtime Interface (CRI, the
// k8s.io/cri-api v1 RuntimeService and ImageService) over gRPC on a unix
// socket, so that kubelet and crictl drive podsb pods. A CRI pod sandbox is
// a podsb pod (package sandbox) whose name is the CRI pod ID, 64 hex digits
// as they are; its images come from package image's store.
//
// What the CRI knows and podsb does not (metadata, labels, annotations,
// the log directory, the CRI state) is kept in one JSON record per pod
// under the server's state directory (Options.StateDir), written atomically
// and read back when the server starts: pods outlive the server, and a
// restarted server lists them with the same IDs.
//
// ExecSync runs a command in a container; Exec, Attach and PortForward
// answer URLs of a streaming server (k8s.io/cri-streaming) on loopback,
// whose streams run the command, or connect to a port on the pod's
// loopback (streaming.go, exec.go, portforward.go). Containers and stats
// are not served yet: those RPCs answer Unimplemented (the embedded
// Unimplemented*Server).
//
// This package links grpc and the CRI's protobuf types: it is imported by
// cmd/podsb-cri only, never by cmd/podsb, whose every command would pay
// their initialization (docs/cri.md).
//
// Privileges: root, as package sandbox needs.
//
// Thread rules: it changes no thread's namespaces itself: package sandbox
// joins pods on threads of its own, and PortForward dials on a thread that
// package nsenter joins to the pod's network namespace and destroys after.
// gRPC calls its methods from many goroutines at once, and calls on one pod
// are serialized by the server's per-pod lock.
package cri
