package integration

import (
	"errors"
	"os/exec"
)

func cmdOf(name string, args ...string) *exec.Cmd { return exec.Command(name, args...) }

func errorsIs(err, target error) bool { return errors.Is(err, target) }
