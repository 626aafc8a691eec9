package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// LogPath returns the log file of the command that Exec started detached
// with PID pid inside the pod; with pid 0, of the pod's only such command.
func (p *Pod) LogPath(pid int) (string, error) {
	dir := filepath.Join(p.Dir(), "logs")
	if pid > 0 {
		path := filepath.Join(dir, strconv.Itoa(pid)+".log")
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("pod %s has no log of PID %d", p.name, pid)
		}
		return path, nil
	}
	ents, _ := os.ReadDir(dir)
	var pids []string
	for _, e := range ents {
		// Detached commands' logs only: a container's is NAME.log.
		if n, ok := strings.CutSuffix(e.Name(), ".log"); ok && isNumber(n) {
			pids = append(pids, n)
		}
	}
	switch len(pids) {
	case 0:
		return "", fmt.Errorf("pod %s has no logs: start commands with exec -d", p.name)
	case 1:
		return filepath.Join(dir, pids[0]+".log"), nil
	}
	return "", invalidf("pod %s has %d logs: give a PID (%s)", p.name, len(pids), strings.Join(pids, ", "))
}

// Running tells whether the pod runs a process with PID pid (inside the
// pod).
func (p *Pod) Running(pid int) bool {
	procs, err := p.Processes()
	if err != nil {
		return false
	}
	for _, pr := range procs {
		if pr.PID == pid && !strings.HasPrefix(pr.State, "Z") {
			return true
		}
	}
	return false
}
