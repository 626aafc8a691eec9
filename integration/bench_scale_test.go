package integration

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/podsb/podsb/internal/testenv"
)

// BenchmarkScale holds PODSB_SCALE_PODS pods (default 1000) on this machine:
// it creates them with the default root, runs one exec in each, lists them,
// removes them all, and checks that nothing leaked; then runc does the same
// with catatonit -P as each container's process, in the same run. Results:
// docs/performance.md.
func BenchmarkScale(b *testing.B) {
	testenv.RequireRoot(b)
	n := 1000
	if s := os.Getenv("PODSB_SCALE_PODS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n <= 0 {
			b.Fatalf("PODSB_SCALE_PODS=%q", s)
		}
	}
	var rows [][2]string
	row := func(k string, v string) { rows = append(rows, [2]string{k, v}) }
	perPod := func(d time.Duration) string {
		return fmt.Sprintf("%s total, %s per pod", d.Round(time.Millisecond), (d / time.Duration(n)).Round(time.Microsecond))
	}

	// podsb.
	e := newEnv(b)
	names := make([]string, n)
	for i := range names {
		names[i] = e.name()
	}
	mem0 := memAvailable(b)
	start := time.Now()
	for _, name := range names {
		e.must("create", name)
	}
	row("podsb create", perPod(time.Since(start)))
	mem1 := memAvailable(b)
	row("podsb memory per pod (MemAvailable drop)", fmt.Sprintf("%d KiB", (mem0-mem1)/int64(n)))
	start = time.Now()
	for _, name := range names {
		e.must("exec", name, "--", "true")
	}
	row("podsb exec", perPod(time.Since(start)))
	var psTimes []time.Duration
	for range 5 {
		start = time.Now()
		out := e.must("ps")
		psTimes = append(psTimes, time.Since(start))
		if got := strings.Count(out, "\n") - 1; got != n {
			b.Fatalf("ps lists %d pods, want %d", got, n)
		}
	}
	row(fmt.Sprintf("podsb ps with %d pods (median of 5)", n), median(psTimes).Round(time.Millisecond).String())
	for _, name := range names {
		e.inspect(name) // remember pause for the leak check
	}
	start = time.Now()
	e.must("rm", "--all")
	row("podsb rm --all", perPod(time.Since(start)))
	checkNoLeaks(b, e.root, e.names, e.pids)
	row("podsb leaks after rm --all", "none (mounts, /run/netns, processes, state checked)")

	// runc, the same way.
	rt := newRunc(b)
	mem0 = memAvailable(b)
	start = time.Now()
	for i := range n {
		if err := rt.run(rt.id(i)); err != nil {
			b.Fatal(err)
		}
	}
	row("runc run -d (catatonit -P)", perPod(time.Since(start)))
	mem1 = memAvailable(b)
	row("runc memory per container (MemAvailable drop)", fmt.Sprintf("%d KiB", (mem0-mem1)/int64(n)))
	start = time.Now()
	for i := range n {
		if err := rt.command(nil, "exec", rt.id(i), "/catatonit", "--version"); err != nil {
			b.Fatal(err)
		}
	}
	row("runc exec", perPod(time.Since(start)))
	start = time.Now()
	if err := exec.Command(rt.bin, append(slices.Clone(rt.global), "list", "-q")...).Run(); err != nil {
		b.Fatal(err)
	}
	row(fmt.Sprintf("runc list with %d containers", n), time.Since(start).Round(time.Millisecond).String())
	// kill, then delete: delete -f would sleep 100 ms per container.
	start = time.Now()
	for i := range n {
		if err := rt.command(nil, "kill", rt.id(i), "KILL"); err != nil {
			b.Fatal(err)
		}
	}
	for i := range n {
		if rt.command(nil, "delete", rt.id(i)) != nil {
			if err := rt.delete(rt.id(i)); err != nil {
				b.Fatal(err)
			}
		}
	}
	row("runc kill + delete, every container", perPod(time.Since(start)))

	var sb strings.Builder
	sb.WriteString("\n| measure | value |\n| --- | --- |\n")
	for _, r := range rows {
		fmt.Fprintf(&sb, "| %s | %s |\n", r[0], r[1])
	}
	b.Log(sb.String())
}

// memAvailable returns MemAvailable from /proc/meminfo, in KiB.
func memAvailable(tb testing.TB) int64 {
	tb.Helper()
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb
		}
	}
	tb.Fatal("no MemAvailable in /proc/meminfo")
	return 0
}
