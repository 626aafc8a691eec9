package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// criBinary is the program podsb cri executes: the CRI server lives in a
// binary of its own so that grpc is not linked into podsb (docs/cri.md).
const criBinary = "podsb-cri"

func newCriCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cri [FLAGS]",
		Short: "Serve the Kubernetes CRI on a unix socket, in the foreground (runs podsb-cri; podsb cri --help lists its flags)",
		// podsb-cri parses its own flags.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := findCRI()
			if err != nil {
				return err
			}
			// Flags of podsb's before cri (--root X cri) reach args too, as
			// flag parsing is off: podsb-cri takes the same ones.
			argv := append([]string{path}, args...)
			return unix.Exec(path, argv, os.Environ())
		},
	}
}

// findCRI finds podsb-cri next to the running podsb, else in PATH.
func findCRI() (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), criBinary)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath(criBinary); err == nil {
		return p, nil
	}
	return "", errors.New("podsb cri needs the podsb-cri binary, next to podsb or in PATH: build it with make build (bin/podsb-cri) or go install ./cmd/podsb-cri")
}
