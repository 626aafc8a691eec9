package integration

import (
	"bufio"
	"fmt"
	mrand "math/rand/v2"
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
// removes them all, and checks that nothing leaked; then runc (crun with
// PODSB_SCALE_PEERS=crun, none with 0) does the same with catatonit -P as
// each container's process, in the same run. Results: docs/performance.md.
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

	// podsb, on a bridge network of the test's own (the default network
	// mode), with room for n pods.
	e, net := scaleNetEnv(b, n+1)
	names := make([]string, n)
	for i := range names {
		names[i] = e.name()
	}
	// Create with none alive: pods made and removed one at a time. The
	// first makes the bridge, which a pod then holds.
	e.must(append([]string{"create"}, append(net, e.name())...)...)
	lone := sampleCreates(b, e, 50, net...)
	row("podsb create, no pod alive (50 create+rm)", stats(lone))
	mem0, slab0, slabs0 := memAvailable(b), meminfo(b, "Slab:"), slabinfo(b)
	creates := make([]time.Duration, 0, n)
	start := time.Now()
	for _, name := range names {
		t0 := time.Now()
		e.must(append([]string{"create"}, append(net, name)...)...)
		creates = append(creates, time.Since(t0))
	}
	row("podsb create", perPod(time.Since(start)))
	row(fmt.Sprintf("podsb create, 0 to %d pods alive", n), stats(creates))
	mem1, slab1 := memAvailable(b), meminfo(b, "Slab:")
	row("podsb memory per pod (MemAvailable drop)", fmt.Sprintf("%d KiB", (mem0-mem1)/int64(n)))
	row("podsb Slab growth per pod", fmt.Sprintf("%d KiB", (slab1-slab0)/int64(n)))
	row("podsb Slab growth per pod, largest caches", slabGrowth(slabs0, slabinfo(b), n, 10))
	full := sampleCreates(b, e, 50, net...)
	row(fmt.Sprintf("podsb create, %d pods alive (50 create+rm)", n), stats(full))
	row(fmt.Sprintf("create with %d alive / with none (p50; p99 over p50 with none)", n),
		fmt.Sprintf("%.2f×; %.2f×", float64(median(full))/float64(median(lone)), float64(percentile(full, 99))/float64(median(lone))))
	execs := make([]time.Duration, 0, n)
	start = time.Now()
	for _, name := range names {
		t0 := time.Now()
		e.must("exec", name, "--", "true")
		execs = append(execs, time.Since(t0))
	}
	row("podsb exec", perPod(time.Since(start)))
	row(fmt.Sprintf("podsb exec, %d pods alive", n), stats(execs))
	var psTimes []time.Duration
	for range 5 {
		start = time.Now()
		out := e.must("ps")
		psTimes = append(psTimes, time.Since(start))
		if got := strings.Count(out, "\n") - 2; got != n { // and keeper
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
	checkNoNetworkLeaks(b, e.root, e.bridge, e.names)
	row("podsb leaks after rm --all", "none (mounts, /run/netns, processes, state, cgroups, links, NAT table checked)")
	if os.Getenv("PODSB_SCALE_PEERS") == "0" {
		b.Log(table(rows))
		return
	}

	// runc (or crun, PODSB_SCALE_PEERS=crun), the same way.
	rt := newRunc(b)
	if os.Getenv("PODSB_SCALE_PEERS") == "crun" {
		rt = newCrun(b)
	}
	mem0 = memAvailable(b)
	start = time.Now()
	for i := range n {
		if err := rt.run(rt.id(i)); err != nil {
			b.Fatal(err)
		}
	}
	row(rt.name+" run -d (catatonit -P)", perPod(time.Since(start)))
	mem1 = memAvailable(b)
	row(rt.name+" memory per container (MemAvailable drop)", fmt.Sprintf("%d KiB", (mem0-mem1)/int64(n)))
	start = time.Now()
	for i := range n {
		if err := rt.command(nil, "exec", rt.id(i), "/catatonit", "--version"); err != nil {
			b.Fatal(err)
		}
	}
	row(rt.name+" exec", perPod(time.Since(start)))
	start = time.Now()
	if err := exec.Command(rt.bin, append(slices.Clone(rt.global), "list", "-q")...).Run(); err != nil {
		b.Fatal(err)
	}
	row(fmt.Sprintf("%s list with %d containers", rt.name, n), time.Since(start).Round(time.Millisecond).String())
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
	row(rt.name+" kill + delete, every container", perPod(time.Since(start)))

	b.Log(table(rows))
}

// table formats rows as a markdown table.
func table(rows [][2]string) string {
	var sb strings.Builder
	sb.WriteString("\n| measure | value |\n| --- | --- |\n")
	for _, r := range rows {
		fmt.Fprintf(&sb, "| %s | %s |\n", r[0], r[1])
	}
	return sb.String()
}

// scaleNetEnv returns an env and the create flags of a bridge network of
// its own, for n pods (its subnet, a /18, has 16,381 addresses).
//
// PODSB_SCALE_NETWORK=none gives pods loopback only: a Linux bridge holds
// at most 1023 ports, so more pods than that need it.
func scaleNetEnv(tb testing.TB, n int) (*env, []string) {
	tb.Helper()
	if os.Getenv("PODSB_SCALE_NETWORK") == "none" {
		return newEnv(tb), []string{"--network", "none"}
	}
	if n > 1023 {
		tb.Fatalf("%d pods: a Linux bridge holds at most 1023 ports (PODSB_SCALE_NETWORK=none)", n)
	}
	e := newEnv(tb)
	e.bridge = fmt.Sprintf("pt%06x", mrand.IntN(1<<24))
	subnet := fmt.Sprintf("10.%d.%d.0/18", 150+mrand.IntN(40), 64*mrand.IntN(4))
	return e, []string{"--network", "bridge", "--bridge", e.bridge, "--subnet", subnet}
}

// slabinfo returns the memory of each slab cache of /proc/slabinfo, in
// bytes (active objects times object size).
func slabinfo(tb testing.TB) map[string]int64 {
	tb.Helper()
	b, err := os.ReadFile("/proc/slabinfo")
	if err != nil {
		tb.Fatal(err)
	}
	m := map[string]int64{}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 4 || strings.HasPrefix(f[0], "#") || f[0] == "slabinfo" {
			continue
		}
		active, _ := strconv.ParseInt(f[1], 10, 64)
		size, _ := strconv.ParseInt(f[3], 10, 64)
		m[f[0]] += active * size
	}
	return m
}

// slabGrowth formats the k caches that grew most from before to after,
// per pod of n, in KiB, and their sum.
func slabGrowth(before, after map[string]int64, n, k int) string {
	type c struct {
		name string
		d    int64
	}
	var cs []c
	var sum int64
	for name, v := range after {
		if d := v - before[name]; d > 0 {
			cs = append(cs, c{name, d})
			sum += d
		}
	}
	slices.SortFunc(cs, func(a, b c) int { return int(b.d - a.d) })
	var parts []string
	for _, x := range cs[:min(k, len(cs))] {
		parts = append(parts, fmt.Sprintf("%s %.1f", x.name, float64(x.d)/1024/float64(n)))
	}
	return fmt.Sprintf("%.0f KiB in all: %s", float64(sum)/1024/float64(n), strings.Join(parts, ", "))
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

// meminfo returns a field of /proc/meminfo (such as "Slab:"), in KiB.
func meminfo(tb testing.TB, field string) int64 {
	tb.Helper()
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb
		}
	}
	tb.Fatalf("no %s in /proc/meminfo", field)
	return 0
}

// sampleCreates times k creates of a pod with the create flags args, each
// removed before the next.
func sampleCreates(tb testing.TB, e *env, k int, args ...string) []time.Duration {
	tb.Helper()
	var d []time.Duration
	for range k {
		name := e.name()
		t0 := time.Now()
		e.must(append(append([]string{"create"}, args...), name)...)
		d = append(d, time.Since(t0))
		e.must("rm", "-f", name)
	}
	return d
}

// stats formats p50, p99 and max of d.
func stats(d []time.Duration) string {
	return fmt.Sprintf("p50 %s, p99 %s, max %s", median(d).Round(10*time.Microsecond),
		percentile(d, 99).Round(10*time.Microsecond), slices.Max(d).Round(10*time.Microsecond))
}

// BenchmarkScaleChurn keeps PODSB_SCALE_ALIVE pods (default 500) alive
// while it creates and removes a pod PODSB_SCALE_CHURN times (default
// 10000), and reports each create's p50, p99 and max, and how many took
// more than a second (issue 16: none may). Results: docs/performance.md.
func BenchmarkScaleChurn(b *testing.B) {
	testenv.RequireRoot(b)
	alive, churn := envInt(b, "PODSB_SCALE_ALIVE", 500), envInt(b, "PODSB_SCALE_CHURN", 10000)
	e, net := scaleNetEnv(b, alive+1)
	for range alive {
		e.must(append(append([]string{"create"}, net...), e.name())...)
	}
	d := sampleCreates(b, e, churn, net...)
	slow := 0
	for _, x := range d {
		if x > time.Second {
			slow++
		}
	}
	b.Logf("\n| churn: %d create+rm, %d pods alive | value |\n| --- | --- |\n| create | %s |\n| creates over 1 s | %d |\n",
		churn, alive, stats(d), slow)
	e.must("rm", "--all")
	checkNoLeaks(b, e.root, e.names, e.pids)
	checkNoNetworkLeaks(b, e.root, e.bridge, e.names)
}

// envInt reads a positive number from the environment, or gives def.
func envInt(tb testing.TB, key string, def int) int {
	tb.Helper()
	s := os.Getenv(key)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		tb.Fatalf("%s=%q: want a positive number", key, s)
	}
	return n
}
