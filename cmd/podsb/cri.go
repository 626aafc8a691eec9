package main

import (
	"fmt"
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
			path, err := findHelper(criBinary, "podsb cri")
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

// findHelper finds the binary name (podsb-cri, podsb-image) next to the
// running podsb, else in PATH; what names the command that needs it.
func findHelper(name, what string) (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s needs the %s binary, next to podsb or in PATH: build it with make build (bin/%s) or go install ./cmd/%s", what, name, name, name)
}
