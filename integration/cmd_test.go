package integration

import "os/exec"

func cmdOf(name string, args ...string) *exec.Cmd { return exec.Command(name, args...) }
