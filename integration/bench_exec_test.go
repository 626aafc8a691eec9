package integration

import (
	"context"
	"os/exec"
	"strconv"
	"testing"

	"github.com/podsb/podsb/internal/testenv"
	"github.com/podsb/podsb/sandbox"
)

// execArgs is the command every contender runs in its sandbox: the same
// static binary everywhere (catatonit, printing its version), so that only
// the cost of getting into the sandbox differs.
var execArgs = []string{"/catatonit", "--version"}

// BenchmarkExec measures `podsb exec POD -- CMD` against `nsenter -t
// PAUSEPID -a CMD`, `runc exec` and `crun exec`, interleaved in one run.
// Results: docs/performance.md.
func BenchmarkExec(b *testing.B) {
	testenv.RequireRoot(b)
	rounds := benchRounds(b, 100)
	e := newEnv(b)
	name := e.name()
	e.must("create", "-v", pauseBinary+":/catatonit:ro", name)
	d := e.inspect(name)
	pod, err := sandbox.Load(e.root, name)
	if err != nil {
		b.Fatal(err)
	}
	run := func(tb testing.TB, cmd *exec.Cmd) {
		if out, err := cmd.CombinedOutput(); err != nil {
			tb.Fatalf("%v: %v: %s", cmd.Args, err, out)
		}
	}
	tools := []tool{
		{
			name: "podsb",
			op: func(tb testing.TB, _ int, _ any) any {
				run(tb, exec.Command(e.bin, append([]string{"--root", e.root, "exec", name, "--"}, execArgs...)...))
				return nil
			},
		},
		{
			name: "podsb-lib",
			op: func(tb testing.TB, _ int, _ any) any {
				p, err := pod.Exec(context.Background(), sandbox.ExecConfig{Args: execArgs})
				if err != nil {
					tb.Fatal(err)
				}
				if code, err := p.Wait(); code != 0 || err != nil {
					tb.Fatalf("exit %d: %v", code, err)
				}
				return nil
			},
		},
		{
			name: "nsenter",
			op: func(tb testing.TB, _ int, _ any) any {
				run(tb, exec.Command("nsenter", append([]string{"-t", strconv.Itoa(d.Pid), "-a"}, execArgs...)...))
				return nil
			},
		},
	}
	for _, rt := range []*ociRuntime{newRunc(b), newCrun(b)} {
		id := rt.id(0)
		if err := rt.run(id); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { rt.delete(id) })
		tools = append(tools, tool{
			name: rt.name,
			op: func(tb testing.TB, _ int, _ any) any {
				if err := rt.command(nil, append([]string{"exec", id}, execArgs...)...); err != nil {
					tb.Fatal(err)
				}
				return nil
			},
		})
	}
	report(b, measure(b, rounds, tools), "nsenter")
}
