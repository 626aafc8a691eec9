package integration

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/podsb/podsb/internal/testenv"
	"github.com/podsb/podsb/sandbox"
)

// podsbTools returns podsb as contenders: the CLI (create / rm -f, each a
// process of its own, as runc and crun are measured) and the Go API
// (sandbox.Create / Remove in this process, as a test suite uses it).
func podsbTools(tb testing.TB) []tool {
	e := newEnv(tb)
	lib := tb.TempDir()
	tb.Cleanup(func() { checkNoLeaks(tb, lib, nil, nil) })
	// Names unique to this run: /run/netns is shared by every state root.
	run := e.name()
	name := func(prefix string, i int) string { return fmt.Sprintf("%s%s%d", run, prefix, i) }
	return []tool{
		{
			name: "podsb",
			op: func(tb testing.TB, i int, _ any) any {
				n := name("b", i)
				e.use(n)
				// Loopback only, as the peers' containers have.
				if out, err := exec.Command(e.bin, "--root", e.root, "create", "--network", "none", n).CombinedOutput(); err != nil {
					tb.Fatalf("podsb create: %v: %s", err, out)
				}
				return n
			},
			rm: func(tb testing.TB, _ int, n any) {
				if out, err := exec.Command(e.bin, "--root", e.root, "rm", "-f", n.(string)).CombinedOutput(); err != nil {
					tb.Fatalf("podsb rm: %v: %s", err, out)
				}
			},
		},
		{
			name: "podsb-lib",
			op: func(tb testing.TB, i int, _ any) any {
				p, err := sandbox.Create(context.Background(), sandbox.Config{Root: lib, Name: name("l", i)})
				if err != nil {
					tb.Fatal(err)
				}
				return p
			},
			rm: func(tb testing.TB, _ int, p any) {
				if err := p.(*sandbox.Pod).Remove(context.Background(), sandbox.RemoveOptions{Force: true}); err != nil {
					tb.Fatal(err)
				}
			},
		},
	}
}

// BenchmarkCreateRm measures create-to-ready and rm latency of podsb against
// runc, crun and the bare unshare floor, interleaved in the same run.
// Results: docs/performance.md.
func BenchmarkCreateRm(b *testing.B) {
	testenv.RequireRoot(b)
	rounds := benchRounds(b, 50)
	tools := append(podsbTools(b), peerTools(b)...)
	report(b, measure(b, rounds, tools), "unshare")
}

// BenchmarkCreateSteps profiles where sandbox.Create spends its time, step
// by step (median of each), through Config.Trace. Results:
// docs/performance.md.
func BenchmarkCreateSteps(b *testing.B) {
	testenv.RequireRoot(b)
	rounds := benchRounds(b, 50)
	root := b.TempDir()
	steps := map[string][]time.Duration{}
	var order []string
	trace := func(step string, d time.Duration) {
		if _, ok := steps[step]; !ok {
			order = append(order, step)
		}
		steps[step] = append(steps[step], d)
	}
	ctx := context.Background()
	for i := range rounds + 1 {
		start := time.Now()
		p, err := sandbox.Create(ctx, sandbox.Config{Root: root, Trace: trace})
		if err != nil {
			b.Fatal(err)
		}
		trace("total", time.Since(start))
		if err := p.Remove(ctx, sandbox.RemoveOptions{Force: true}); err != nil {
			b.Fatal(err)
		}
		if i == 0 { // warm-up
			steps, order = map[string][]time.Duration{}, nil
		}
	}
	checkNoLeaks(b, root, nil, nil)
	var sb strings.Builder
	sb.WriteString("\n| step of sandbox.Create | median |\n| --- | ---: |\n")
	for _, s := range order {
		fmt.Fprintf(&sb, "| %s | %s |\n", s, formatMs(median(steps[s])))
	}
	b.Log(sb.String())
}
