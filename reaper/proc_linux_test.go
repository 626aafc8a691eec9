package reaper_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// This file reads the host's /proc: the tests look at pause from outside its
// namespaces, the way an operator would.

// procStatus returns the "Key:\tvalue" lines of /proc/PID/status.
func procStatus(pid int) (map[string]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	m := make(map[string]string)
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m, nil
}

// procStat is the part of /proc/PID/stat the tests use.
type procStat struct {
	comm    string
	state   byte // R, S, Z, ...
	ppid    int
	cminflt uint64 // minor faults of the children this process has waited for
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// comm is in parentheses and may itself contain ") ".
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("parse /proc/%d/stat: %q", pid, s)
	}
	f := strings.Fields(s[end+1:]) // f[0] is field 3 (state)
	if len(f) < 9 {
		return procStat{}, fmt.Errorf("parse /proc/%d/stat: %q", pid, s)
	}
	st := procStat{comm: s[open+1 : end], state: f[0][0]}
	if st.ppid, err = strconv.Atoi(f[1]); err != nil {
		return procStat{}, fmt.Errorf("parse ppid in /proc/%d/stat: %w", pid, err)
	}
	if st.cminflt, err = strconv.ParseUint(f[8], 10, 64); err != nil {
		return procStat{}, fmt.Errorf("parse cminflt in /proc/%d/stat: %w", pid, err)
	}
	return st, nil
}

// pssKB returns the proportional set size of pid in KiB: its private pages
// plus its share of the pages it maps together with other processes.
func pssKB(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Pss:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("no Pss in /proc/%d/smaps_rollup", pid)
}

// pidNS returns the identity of pid's PID namespace, e.g. "pid:[4026532270]".
func pidNS(pid int) (string, error) {
	return os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
}

// nsProcs returns the processes (host PIDs) in the PID namespace ns, zombies
// included, except the one with host PID except.
func nsProcs(ns string, except int) (map[int]procStat, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	procs := make(map[int]procStat)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == except {
			continue
		}
		// Processes come and go while /proc is read: skip those that left.
		if n, err := pidNS(pid); err != nil || n != ns {
			continue
		}
		if st, err := readStat(pid); err == nil {
			procs[pid] = st
		}
	}
	return procs, nil
}

// waitFor polls cond every millisecond until it returns "" or timeout passes;
// it then fails t with cond's last description of what it is waiting for.
func waitFor(t *testing.T, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		why := cond()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, why)
		}
		time.Sleep(time.Millisecond)
	}
}
