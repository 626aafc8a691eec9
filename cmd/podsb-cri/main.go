// Command podsb-cri serves the Kubernetes CRI for podsb pods (package
// cri). It is a binary of its own, which podsb cri executes, so that grpc
// and the CRI's types are not linked into podsb, whose every command would
// pay their initialization (docs/cri.md).
package main

import (
	"os"

	"github.com/podsb/podsb/cri"
)

func main() { os.Exit(cri.Main(os.Args[1:], os.Stderr)) }
