package integration

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/podsb/podsb/internal/testenv"
)

// BenchmarkFootprint compares the proportional set size (Pss, from
// /proc/PID/smaps_rollup) of a pod's pause with catatonit -P (podman's
// pause) and tini, each as PID 1 of a new PID namespace, in one run.
// Results: docs/performance.md.
func BenchmarkFootprint(b *testing.B) {
	testenv.RequireRoot(b)
	e := newEnv(b)
	const samples = 20
	var pause, cat, tini []int
	for range samples {
		_, d := e.create()
		pause = append(pause, pssKiB(b, d.Pid))
		cat = append(cat, peerPss(b, "catatonit", "-P"))
		tini = append(tini, peerPss(b, "tini", "-s", "--", "sleep", "1000"))
	}
	med := func(v []int) int {
		d := make([]time.Duration, len(v))
		for i, x := range v {
			d[i] = time.Duration(x)
		}
		return int(median(d))
	}
	b.ReportMetric(float64(med(pause)), "KiB-Pss/pause")
	b.ReportMetric(float64(med(cat)), "KiB-Pss/catatonit")
	b.ReportMetric(float64(med(tini)), "KiB-Pss/tini")
	b.Logf("\n| PID 1 of a pod | Pss (median of %d) | ratio to catatonit -P |\n| --- | ---: | ---: |\n| podsb pause | %d KiB | %.3f |\n| catatonit -P | %d KiB | 1.000 |\n| tini -s | %d KiB | %.3f |\n",
		samples, med(pause), float64(med(pause))/float64(med(cat)), med(cat), med(tini), float64(med(tini))/float64(med(cat)))
}

// peerPss starts args as PID 1 of a new PID namespace (under unshare),
// measures its Pss once it sleeps, and ends it.
func peerPss(tb testing.TB, args ...string) int {
	tb.Helper()
	cmd := exec.Command("unshare", append([]string{"--fork", "--pid", "--kill-child"}, args...)...)
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
		if f := strings.Fields(string(b)); len(f) == 1 {
			pid, _ := strconv.Atoi(f[0])
			if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); strings.Contains(string(st), ") S ") {
				time.Sleep(20 * time.Millisecond) // settled
				return pssKiB(tb, pid)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	tb.Fatalf("%v did not start", args)
	return 0
}

func pssKiB(tb testing.TB, pid int) int {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Pss:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return n
		}
	}
	tb.Fatalf("no Pss for %d", pid)
	return 0
}
