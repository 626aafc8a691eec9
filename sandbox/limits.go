package sandbox

import (
	"math"
	"runtime"
	"strconv"
	"strings"
)

// Limits are a pod's resource limits, enforced with a cgroup that holds
// every process of the pod: pause, and what exec and run start. A field
// left 0 sets no limit; a set one must be within the bounds below.
type Limits struct {
	// Pids is the most processes the pod may have, pause included: 1 to
	// MaxPids; 0 for no limit.
	Pids int64 `json:"pids,omitempty"`
	// Memory is the most memory in bytes, at least MinMemory; 0 for no
	// limit.
	Memory int64 `json:"memory,omitempty"`
	// CPUs is the CPU time the pod may use, in CPUs (0.5 is half of one):
	// from MinCPUs to the number of CPUs this process may run on; 0 for no
	// limit.
	CPUs float64 `json:"cpus,omitempty"`
}

const (
	// MaxPids is the kernel's largest PID (PID_MAX_LIMIT on 64-bit
	// systems), the largest value pids.max takes.
	MaxPids = 4 << 20
	// MinMemory is the smallest memory limit: less cannot hold pause and
	// a shell.
	MinMemory = 4 << 20
	// MinCPUs is the smallest CPU limit: a quota of 1 ms per 100 ms
	// period, the kernel's smallest quota.
	MinCPUs = 0.01
)

// cpuPeriod is the CFS period the CPU limit is a quota of, in µs.
const cpuPeriod = 100000

func (l Limits) none() bool { return l == Limits{} }

// check refuses limits the kernel would refuse, misread or silently
// ignore: each with one error naming the CLI flag.
func (l Limits) check() error {
	if l.Pids < 0 || l.Pids > MaxPids {
		return invalidf("--pids-limit %d: want 1 to %d processes", l.Pids, MaxPids)
	}
	if l.Memory < 0 || (l.Memory > 0 && l.Memory < MinMemory) {
		return invalidf("--memory %d: want at least 4 MiB", l.Memory)
	}
	if max := maxCPUs(); math.IsNaN(l.CPUs) || l.CPUs < 0 || (l.CPUs > 0 && l.CPUs < MinCPUs) || l.CPUs > float64(max) {
		return invalidf("--cpus %g: want %g to %d CPUs", l.CPUs, MinCPUs, max)
	}
	return nil
}

// maxCPUs is the most CPUs a pod may be given: those this process may run
// on (as Docker bounds --cpus).
func maxCPUs() int { return runtime.NumCPU() }

// ParsePids reads the value of --pids-limit: 1 to MaxPids.
func ParsePids(s string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 1 || n > MaxPids {
		return 0, invalidf("--pids-limit %q: want 1 to %d processes", s, MaxPids)
	}
	return n, nil
}

// ParseMemory reads the value of --memory: bytes, or a whole number of
// kibibytes, mebibytes or gibibytes (1048576, 1024k, 64m, 1g), at least
// MinMemory.
func ParseMemory(s string) (int64, error) {
	bad := func(why string) (int64, error) {
		return 0, invalidf("--memory %q: %s", s, why)
	}
	mult := int64(1)
	num := strings.ToLower(s)
	switch {
	case strings.HasSuffix(num, "k"):
		mult, num = 1<<10, strings.TrimSuffix(num, "k")
	case strings.HasSuffix(num, "m"):
		mult, num = 1<<20, strings.TrimSuffix(num, "m")
	case strings.HasSuffix(num, "g"):
		mult, num = 1<<30, strings.TrimSuffix(num, "g")
	}
	n, err := strconv.ParseInt(num, 10, 64)
	switch {
	case err != nil && strings.Trim(num, "0123456789") == "" && num != "":
		return bad("too large")
	case err != nil || n <= 0:
		return bad("want a positive number of bytes, or with k, m or g")
	case n > math.MaxInt64/mult:
		return bad("too large")
	case n*mult < MinMemory:
		return bad("want at least 4 MiB")
	}
	return n * mult, nil
}

// ParseCPUs reads the value of --cpus: a decimal number of CPUs from
// MinCPUs to the number this process may run on.
func ParseCPUs(s string) (float64, error) {
	n, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	// Only decimal digits and a point: no NaN, Inf, hex or exponents.
	if err != nil || strings.Trim(strings.TrimSpace(s), "0123456789.") != "" {
		return 0, invalidf("--cpus %q: want a decimal number of CPUs", s)
	}
	if max := maxCPUs(); n < MinCPUs || n > float64(max) {
		return 0, invalidf("--cpus %s: want %g to %d CPUs", s, MinCPUs, max)
	}
	return n, nil
}
