package integration

import (
	"context"
	"fmt"
	"os/exec"
	"testing"

	"podsb/internal/testenv"
	"podsb/sandbox"
)

// podsbTools returns podsb as contenders: the CLI (create / rm -f, each a
// process of its own, as runc and crun are measured) and the Go API
// (sandbox.Create / Remove in this process, as a test suite uses it).
func podsbTools(tb testing.TB) []tool {
	e := newEnv(tb)
	lib := tb.TempDir()
	tb.Cleanup(func() { checkNoLeaks(tb, lib, nil, nil) })
	name := func(prefix string, i int) string { return fmt.Sprintf("%s%d", prefix, i) }
	return []tool{
		{
			name: "podsb",
			op: func(tb testing.TB, i int, _ any) any {
				n := name("b", i)
				e.use(n)
				if out, err := exec.Command(e.bin, "--root", e.root, "create", n).CombinedOutput(); err != nil {
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
