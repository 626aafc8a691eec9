package integration

import (
	"fmt"
	"os/exec"
	"testing"

	"github.com/podsb/podsb/internal/testenv"
	"github.com/podsb/podsb/rootfs"
	"github.com/podsb/podsb/sandbox"
)

// BenchmarkUserNSCreate measures podsb create (and rm -f) of a pod with
// --userns auto against one without, interleaved in one run (issue 17: at
// most 1.3 times). Both have the default root and loopback only. Results:
// docs/performance.md.
func BenchmarkUserNSCreate(b *testing.B) {
	testenv.RequireRoot(b)
	rounds := benchRounds(b, 50)
	e := newEnv(b)
	run := e.name()
	pod := func(userns string) tool {
		return tool{
			name: "userns-" + userns,
			op: func(tb testing.TB, i int, _ any) any {
				n := fmt.Sprintf("%s%s%d", run, userns, i)
				e.use(n)
				if out, err := exec.Command(e.bin, "--root", e.root, "create", "--network", "none", "--userns", userns, n).CombinedOutput(); err != nil {
					tb.Fatalf("podsb create: %v: %s", err, out)
				}
				return n
			},
			rm: func(tb testing.TB, _ int, n any) {
				if out, err := exec.Command(e.bin, "--root", e.root, "rm", "-f", n.(string)).CombinedOutput(); err != nil {
					tb.Fatalf("podsb rm: %v: %s", err, out)
				}
			},
		}
	}
	report(b, measure(b, rounds, []tool{pod("host"), pod("auto")}), "userns-host/create")
}

// BenchmarkUserNSExec measures podsb exec into a --userns auto pod against
// one into a pod without a user namespace, interleaved in one run (issue
// 17: at most 1.1 times): as podsb runs it (the fast path, which both
// pods' join records allow), and in Go alone (PODSB_FASTEXEC=0). Results:
// docs/performance.md.
func BenchmarkUserNSExec(b *testing.B) {
	testenv.RequireRoot(b)
	rounds := benchRounds(b, 100)
	e := newEnv(b)
	host, _ := e.create("-v", pauseBinary+":/catatonit:ro")
	auto, _ := e.create("--userns", "auto", "-v", pauseBinary+":/catatonit:ro")
	execIn := func(name, pod string, env ...string) tool {
		return tool{
			name: name,
			op: func(tb testing.TB, _ int, _ any) any {
				cmd := exec.Command(e.bin, append([]string{"--root", e.root, "exec", pod, "--"}, execArgs...)...)
				cmd.Env = env
				if out, err := cmd.CombinedOutput(); err != nil {
					tb.Fatalf("%v: %v: %s", cmd.Args, err, out)
				}
				return nil
			},
		}
	}
	report(b, measure(b, rounds, []tool{
		execIn("host", host),
		execIn("userns", auto),
		execIn("host-go", host, "PODSB_FASTEXEC=0"),
		execIn("userns-go", auto, "PODSB_FASTEXEC=0"),
	}), "host")
}

// BenchmarkUserNSRun measures running `true` in a container of a
// --userns auto pod against the same in a pod without a user namespace,
// interleaved in one run, through the Go API and waited for: with a root
// of two image layers (idmapped in the userns pod), a --rootfs directory
// (idmapped) and the default root (its host directories idmapped).
// Results: docs/performance.md.
func BenchmarkUserNSRun(b *testing.B) {
	testenv.RequireRoot(b)
	rounds := benchRounds(b, 30)
	e := newEnv(b)
	img := testImage(b)
	img.Config = rootfs.ImageConfig{}
	base := img.Layers[0]
	var tools []tool
	for _, mode := range []string{"host", "auto"} {
		name, _ := e.create("--network", "none", "--userns", mode)
		pod, err := sandbox.Load(e.root, name)
		if err != nil {
			b.Fatal(err)
		}
		run := func(cc sandbox.ContainerConfig) func(tb testing.TB, _ int, _ any) any {
			return func(tb testing.TB, _ int, _ any) any {
				runTrue(tb, pod, cc)
				return nil
			}
		}
		tools = append(tools,
			tool{name: mode + "-image", op: run(sandbox.ContainerConfig{Image: img})},
			tool{name: mode + "-rootfs", op: run(sandbox.ContainerConfig{Rootfs: base})},
			tool{name: mode + "-default", op: run(sandbox.ContainerConfig{})})
	}
	report(b, measure(b, rounds, tools), "host-image")
}

// BenchmarkRootless measures a rootless create (as nobody, the single-ID
// map, --network none) against root's create with --userns auto and
// without, each with rm, interleaved in one run; and a rootless exec (it
// executes itself again to join the pod's user namespace, then runs on
// the fast path; and with PODSB_FASTEXEC=0, in Go) against root's exec
// into a --userns auto pod (the fast path, and Go).
// Results: docs/performance.md.
func BenchmarkRootless(b *testing.B) {
	testenv.RequireRoot(b)
	rounds := benchRounds(b, 50)
	e, r := newEnv(b), newRootlessEnv(b)
	run := e.name()
	podsb := func(name string, rootless bool, args ...string) tool {
		cmd := func(args ...string) *exec.Cmd {
			if rootless {
				return r.cmd(args...)
			}
			return exec.Command(e.bin, append([]string{"--root", e.root}, args...)...)
		}
		return tool{
			name: name,
			op: func(tb testing.TB, i int, _ any) any {
				n := fmt.Sprintf("%s%s%d", run, name, i)
				e.use(n)
				r.names[n] = true
				if out, err := cmd(append(append([]string{"create", "--network", "none"}, args...), n)...).CombinedOutput(); err != nil {
					tb.Fatalf("podsb create: %v: %s", err, out)
				}
				return n
			},
			rm: func(tb testing.TB, _ int, n any) {
				if out, err := cmd("rm", "-f", n.(string)).CombinedOutput(); err != nil {
					tb.Fatalf("podsb rm: %v: %s", err, out)
				}
			},
		}
	}
	report(b, measure(b, rounds, []tool{
		podsb("root-host", false, "--userns", "host"),
		podsb("root-auto", false, "--userns", "auto"),
		podsb("rootless", true),
	}), "root-auto/create")

	auto, _ := e.create("--userns", "auto")
	rl := r.name()
	r.must("create", "--network", "none", rl)
	execIn := func(name string, cmd func() *exec.Cmd) tool {
		return tool{
			name: name,
			op: func(tb testing.TB, _ int, _ any) any {
				c := cmd()
				if out, err := c.CombinedOutput(); err != nil {
					tb.Fatalf("%v: %v: %s", c.Args, err, out)
				}
				return nil
			},
		}
	}
	report(b, measure(b, 2*rounds, []tool{
		execIn("root-auto-exec", func() *exec.Cmd {
			return exec.Command(e.bin, "--root", e.root, "exec", auto, "--", "true")
		}),
		execIn("root-auto-exec-go", func() *exec.Cmd {
			c := exec.Command(e.bin, "--root", e.root, "exec", auto, "--", "true")
			c.Env = []string{"PODSB_FASTEXEC=0"}
			return c
		}),
		execIn("rootless-exec", func() *exec.Cmd { return r.cmd("exec", rl, "--", "true") }),
		// The exec in Go once it has joined: two Go starts, as before
		// the fast path served rootless pods.
		execIn("rootless-exec-go", func() *exec.Cmd {
			c := r.cmd("exec", rl, "--", "true")
			c.Env = append(c.Env, "PODSB_FASTEXEC=0")
			return c
		}),
	}), "root-auto-exec")
}
