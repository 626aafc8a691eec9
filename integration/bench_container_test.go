package integration

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/podsb/podsb/internal/testenv"
)

// BenchmarkContainerStart measures `podsb run -d` (a container with a root
// of its own) against `podsb exec -d` (a process in the pod's root) and
// `crun run -d` of a bundle with the same read-only root, all starting the
// static catatonit -P, interleaved. Results: docs/performance.md.
func BenchmarkContainerStart(b *testing.B) {
	testenv.RequireRoot(b)
	rounds := benchRounds(b, 40)
	e := newEnv(b)
	pod := e.name()
	e.must("create", "-v", pauseBinary+":/catatonit:ro", pod)
	crun := newCrun(b)
	// The bundle's root, made acceptable to podsb (it wants a place for
	// programs): the same directory for both.
	root := crun.rootfs()
	if err := os.MkdirAll(filepath.Join(root, "usr", "bin"), 0o755); err != nil {
		b.Fatal(err)
	}
	var containers []string
	b.Cleanup(func() {
		for _, c := range containers {
			e.run("kill", pod, c, "KILL")
		}
	})
	tools := []tool{
		{
			name: "podsb-run",
			op: func(tb testing.TB, _ int, _ any) any {
				name := e.name()
				e.must("run", "-d", "--name", name, "--rootfs", root, "--read-only", pod, "--", "/catatonit", "-P")
				containers = append(containers, name)
				return nil
			},
		},
		{
			name: "podsb-exec",
			op: func(tb testing.TB, _ int, _ any) any {
				e.must("exec", "-d", pod, "--", "/catatonit", "-P")
				return nil
			},
		},
		{
			name: "crun",
			op: func(tb testing.TB, i int, _ any) any {
				if err := crun.run(crun.id(i)); err != nil {
					tb.Fatal(err)
				}
				return nil
			},
			teardown: func(tb testing.TB, i int, _ any) { crun.delete(crun.id(i)) },
		},
	}
	report(b, measure(b, rounds, tools), "crun")
}
