// The CRI figures of issue 14: podsb cri against containerd (containerd_test.go),
// both measured in the same run. Results: docs/performance.md, "CRI: podsb
// cri against containerd".
package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podsb/podsb/internal/testenv"
)

// criServer is a CRI server under a tini subreaper of the benchmark's own,
// so that every process it adds is a descendant of tini.
type criServer struct {
	name     string
	endpoint string
	tini     *exec.Cmd
	server   int // the server's PID: tini's child
	crictl   string
}

func (s *criServer) crictlCmd(args ...string) *exec.Cmd {
	return exec.Command(s.crictl, append([]string{"--runtime-endpoint", s.endpoint, "--image-endpoint", s.endpoint, "--timeout", "60s"}, args...)...)
}

func (s *criServer) crictlMust(tb testing.TB, args ...string) string {
	tb.Helper()
	var out, errb bytes.Buffer
	cmd := s.crictlCmd(args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		tb.Fatalf("crictl %s (%s): %v: %s", strings.Join(args, " "), s.name, err, errb.String())
	}
	return strings.TrimSpace(out.String())
}

// removePods stops and removes every pod of the server.
func (s *criServer) removePods(tb testing.TB) {
	tb.Helper()
	for _, id := range strings.Fields(s.crictlMust(tb, "pods", "-q")) {
		s.crictlMust(tb, "stopp", id)
		s.crictlMust(tb, "rmp", id)
	}
}

// newPodsbCRI starts podsb cri under tini -s with a state root, image root,
// record directory and bridge of its own (as newCRIEnv does). Its cleanup
// removes the pods, stops the server by PID and checks for leaks.
func newPodsbCRI(tb testing.TB, crictl string) *criServer {
	tb.Helper()
	requirePeer(tb, "tini")
	e := newEnv(tb)
	e.bridge = fmt.Sprintf("pt%06x", rand.IntN(1<<24))
	subnet := fmt.Sprintf("10.%d.%d.0/24", 200+rand.IntN(50), rand.IntN(256))
	dir := tb.TempDir()
	sock := filepath.Join(dir, "cri.sock")
	s := &criServer{name: "podsb", endpoint: "unix://" + sock, crictl: crictl}
	log := &bytes.Buffer{}
	s.tini = exec.Command("tini", "-s", "--", e.bin, "cri", "--listen", s.endpoint, "--root", e.root,
		"--image-root", filepath.Join(dir, "images"), "--state", filepath.Join(dir, "state"), "--bridge", e.bridge, "--subnet", subnet)
	s.tini.Stderr = log
	if err := s.tini.Start(); err != nil {
		tb.Fatal(err)
	}
	// Registered after the env's cleanup, so it runs first.
	tb.Cleanup(func() {
		if out, err := s.crictlCmd("pods", "-q").Output(); err == nil {
			for _, id := range strings.Fields(string(out)) {
				e.use(id)
				s.crictlCmd("stopp", id).Run()
				if out, err := s.crictlCmd("rmp", id).CombinedOutput(); err != nil {
					tb.Errorf("podsb cri: rmp %s: %v: %s", id, err, out)
				}
			}
		}
		syscall.Kill(s.tini.Process.Pid, syscall.SIGTERM) // tini passes it on to podsb cri
		if err := s.tini.Wait(); err != nil {
			tb.Errorf("podsb cri after SIGTERM: %v", err)
		}
		if tb.Failed() {
			tb.Logf("podsb cri's log:\n%s", log)
		}
	})
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if s.crictlCmd("version").Run() == nil {
			s.server = s.tini.Process.Pid // until the child is found
			if d := descendants(s.tini.Process.Pid); len(d) == 1 {
				s.server = d[0]
			}
			return s
		}
		if time.Now().After(deadline) {
			tb.Fatalf("podsb cri did not serve %s: %s", sock, log)
		}
	}
}

// crictlTB is crictlBinary for a benchmark: $PODSB_CRICTL, else crictl
// in $PODSB_TOOLS_DIR, built there by make tools if it is missing.
func crictlTB(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("PODSB_CRICTL"); p != "" {
		return p
	}
	dir := os.Getenv("PODSB_TOOLS_DIR")
	if dir == "" {
		dir = "/var/cache/podsb-tools"
	}
	p := filepath.Join(dir, "crictl-v1.37.0")
	if _, err := os.Stat(p); err != nil {
		if out, err := exec.Command("make", "-s", "-C", "..", "tools", "TOOLS_DIR="+dir).CombinedOutput(); err != nil {
			tb.Fatalf("make tools: %v: %s", err, out)
		}
	}
	return p
}

// critestForBench returns critest v1.37.0: $PODSB_CRITEST_BIN, else the one
// make tools keeps in $PODSB_TOOLS_DIR (/var/cache/podsb-tools).
func critestForBench(tb testing.TB) string {
	tb.Helper()
	p := os.Getenv("PODSB_CRITEST_BIN")
	if p == "" {
		dir := os.Getenv("PODSB_TOOLS_DIR")
		if dir == "" {
			dir = "/var/cache/podsb-tools"
		}
		p = filepath.Join(dir, "critest-v1.37.0")
	}
	if _, err := os.Stat(p); err != nil {
		if testenv.Integration() {
			tb.Fatalf("PODSB_INTEGRATION=1 but no critest (make tools builds it): %v", err)
		}
		tb.Skipf("no critest (make tools builds it): %v", err)
	}
	return p
}

// lifecycle is critest's benchmark output (pkg/benchmark's
// LifecycleBenchmarksResultsSet): per sample, the nanoseconds of each
// operation.
type lifecycle struct {
	OperationsNames []string `json:"operationsNames"`
	Datapoints      []struct {
		OperationsDurationsNs []int64 `json:"operationsDurationsNs"`
	} `json:"datapoints"`
}

// critestBench runs critest -benchmark against s with n pods and n
// containers, one at a time, and returns its pod and container results.
func critestBench(tb testing.TB, critest string, s *criServer, n int, imagesFile string) (pod, ctr lifecycle) {
	tb.Helper()
	dir := tb.TempDir()
	params := filepath.Join(dir, "params.yaml")
	must(tb, os.WriteFile(params, []byte(fmt.Sprintf("podsNumber: %d\npodsNumberParallel: 1\ncontainersNumber: %d\ncontainersNumberParallel: 1\n"+
		// Its pod-and-container-from-scratch spec fails past this; on a
		// loaded machine containerd can take longer than its default 5 s.
		"podContainerStartBenchmarkTimeoutSeconds: 600\n", n, n)), 0o644))
	out := filepath.Join(dir, "out")
	must(tb, os.Mkdir(out, 0o755))
	cmd := exec.Command(critest, "-benchmark", "--runtime-endpoint", s.endpoint, "--image-endpoint", s.endpoint,
		"--test-images-file", imagesFile, "--benchmarking-params-file", params, "--benchmarking-output-dir", out)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("critest -benchmark against %s: %v\n%s", s.name, err, b)
	}
	for f, v := range map[string]*lifecycle{"pod_benchmark_data.json": &pod, "container_benchmark_data.json": &ctr} {
		b, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			tb.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		if len(v.Datapoints) != n {
			tb.Fatalf("%s of %s: %d samples, want %d", f, s.name, len(v.Datapoints), n)
		}
	}
	return pod, ctr
}

// sums returns, per sample, the total of the named operations.
func (l lifecycle) sums(tb testing.TB, ops ...string) []time.Duration {
	tb.Helper()
	var out []time.Duration
	for _, dp := range l.Datapoints {
		var sum int64
		for _, op := range ops {
			i := slices.Index(l.OperationsNames, op)
			if i < 0 || i >= len(dp.OperationsDurationsNs) {
				tb.Fatalf("critest's output has no %s: %v", op, l.OperationsNames)
			}
			sum += dp.OperationsDurationsNs[i]
		}
		out = append(out, time.Duration(sum))
	}
	return out
}

// warmUp pulls busybox and runs and removes one pod with a container, so
// that images are in place (containerd pulls its pause image on the first
// pod) before anything is measured.
func warmUp(tb testing.TB, s *criServer, host string) {
	tb.Helper()
	s.crictlMust(tb, "pull", host+"/busybox:1")
	pod, ctr := criPodFiles(tb, "warm", host)
	id := s.crictlMust(tb, "runp", pod)
	c := s.crictlMust(tb, "create", id, ctr, pod)
	s.crictlMust(tb, "start", c)
	s.crictlMust(tb, "stopp", id)
	s.crictlMust(tb, "rmp", id)
}

// criPodFiles writes crictl's pod and container configs: a pod named name
// whose container sleeps, logging to the pod's log directory.
func criPodFiles(tb testing.TB, name, host string) (pod, ctr string) {
	tb.Helper()
	dir := tb.TempDir()
	pod, ctr = filepath.Join(dir, "pod.json"), filepath.Join(dir, "ctr.json")
	must(tb, os.WriteFile(pod, []byte(`{"metadata": {"name": "`+name+`", "namespace": "bench", "uid": "`+name+`", "attempt": 0},
		"log_directory": "`+dir+`", "linux": {}}`), 0o644))
	must(tb, os.WriteFile(ctr, []byte(`{"metadata": {"name": "sleep"}, "image": {"image": "`+host+`/busybox:1"},
		"command": ["sleep", "3600"], "log_path": "sleep.log", "linux": {}}`), 0o644))
	return pod, ctr
}

// BenchmarkCRILifecycle drives podsb cri and containerd with critest's
// benchmark mode (critest -benchmark, v1.37.0), alternately, in the same
// run: the pod sandbox lifecycle (RunPodSandbox, StopPodSandbox,
// RemovePodSandbox) and the container one (CreateContainer, StartContainer,
// StopContainer, RemoveContainer), one at a time, PODSB_BENCH_ROUNDS samples
// (default 10) per runtime and round, two rounds. Results:
// docs/performance.md.
func BenchmarkCRILifecycle(b *testing.B) {
	testenv.RequireRoot(b)
	critest := critestForBench(b)
	crictl := crictlTB(b)
	host := serveImages(b, peerImages(b))
	images := filepath.Join(b.TempDir(), "images.yaml")
	must(b, os.WriteFile(images, []byte("defaultTestContainerImage: "+host+"/busybox:1\n"), 0o644))
	n := benchRounds(b, 10)
	cd := newContainerd(b, crictl, host)
	servers := []*criServer{newPodsbCRI(b, crictl), {name: "containerd", endpoint: cd.endpoint(), tini: cd.tini, server: cd.pid(), crictl: crictl}}
	for _, s := range servers {
		warmUp(b, s, host)
	}
	loadBefore := loadavg()
	pod, ctr := map[string][]time.Duration{}, map[string][]time.Duration{}
	parts := map[string][]time.Duration{}
	for range 2 {
		for _, s := range servers {
			p, c := critestBench(b, critest, s, n, images)
			pod[s.name] = append(pod[s.name], p.sums(b, "CreatePod", "StopPod", "RemovePod")...)
			ctr[s.name] = append(ctr[s.name], c.sums(b, "CreateContainer", "StartContainer", "StopContainer", "RemoveContainer")...)
			for _, op := range []string{"CreatePod", "StopPod", "RemovePod"} {
				parts[s.name+" "+op] = append(parts[s.name+" "+op], p.sums(b, op)...)
			}
			for _, op := range []string{"CreateContainer", "StartContainer", "StopContainer", "RemoveContainer"} {
				parts[s.name+" "+op] = append(parts[s.name+" "+op], c.sums(b, op)...)
			}
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nload average before: %s", loadBefore)
	fmt.Fprintf(&sb, "\ncritest -benchmark, %d samples per runtime, medians (p90)\n| lifecycle | podsb cri | containerd | containerd / podsb |\n| --- | ---: | ---: | ---: |\n", 2*n)
	row := func(name string, m map[string][]time.Duration) float64 {
		p, c := median(m["podsb"]), median(m["containerd"])
		ratio := float64(c) / float64(p)
		fmt.Fprintf(&sb, "| %s | %s (%s) | %s (%s) | %.1f× |\n", name, formatMs(p), formatMs(percentile(m["podsb"], 90)),
			formatMs(c), formatMs(percentile(m["containerd"], 90)), ratio)
		return ratio
	}
	b.ReportMetric(row("pod sandbox run+stop+remove", pod), "x-pod")
	b.ReportMetric(row("container create+start+stop+remove", ctr), "x-container")
	for _, op := range []string{"CreatePod", "StopPod", "RemovePod", "CreateContainer", "StartContainer", "StopContainer", "RemoveContainer"} {
		row(op, map[string][]time.Duration{"podsb": parts["podsb "+op], "containerd": parts["containerd "+op]})
	}
	fmt.Fprintf(&sb, "load average after: %s\n", loadavg())
	b.Log(sb.String())
}

// loadavg is /proc/loadavg's first three fields, for the figures' record.
func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// treePss sums the Pss of every process below tini (not tini itself),
// and of the server alone, and counts them and their Pss by name.
func treePss(tb testing.TB, tini, srv int) (kib, server int, procs map[string][2]int) {
	tb.Helper()
	procs = map[string][2]int{}
	for _, p := range descendants(tini) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", p))
		if err != nil {
			continue // gone since the listing, or a kernel thread
		}
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "Pss:"); ok {
				n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
				kib += n
				c := procs[comm(p)]
				procs[comm(p)] = [2]int{c[0] + 1, c[1] + n}
				if p == srv {
					server += n
				}
			}
		}
	}
	return kib, server, procs
}

// podsMemory measures s idle (after a warm-up pod, removed), then with n
// pods each running one sleeping container, and removes them.
func podsMemory(tb testing.TB, s *criServer, host string, n int) (idle, loaded, server int, procs map[string][2]int) {
	tb.Helper()
	warmUp(tb, s, host)
	time.Sleep(2 * time.Second) // let the removed pod's processes exit
	idle, _, idleProcs := treePss(tb, s.tini.Process.Pid, s.server)
	// podsb cri's node logger (one per server, started with its first
	// container: the warm-up's) is part of the idle server, as containerd
	// writes logs from its own process.
	extra := len(idleProcs) - 1
	if _, ok := idleProcs["podsb-logger"]; ok && s.name == "podsb" {
		extra--
	}
	if extra != 0 {
		tb.Errorf("%s idle has more than its server: %v", s.name, idleProcs)
	}
	for i := range n {
		pod, ctr := criPodFiles(tb, fmt.Sprintf("mem%d", i), host)
		id := s.crictlMust(tb, "runp", pod)
		s.crictlMust(tb, "start", s.crictlMust(tb, "create", id, ctr, pod))
	}
	time.Sleep(2 * time.Second) // settled: every container sleeps
	loaded, server, procs = treePss(tb, s.tini.Process.Pid, s.server)
	s.removePods(tb)
	return idle, loaded, server, procs
}

// BenchmarkCRIMemory measures the memory a running pod costs on podsb cri
// and on containerd, in the same run: n pods (PODSB_BENCH_PODS, default
// 10), each with one container running sleep 3600 and a log path, on one
// runtime at a time; the Pss (/proc/PID/smaps_rollup) of the server and
// every process it added (all descendants of the tini it runs under:
// containerd, its shims, pause and the containers; podsb cri, pause, the
// containers and any log writer), minus the idle server's, divided by n.
// Results: docs/performance.md.
func BenchmarkCRIMemory(b *testing.B) {
	testenv.RequireRoot(b)
	crictl := crictlTB(b)
	host := serveImages(b, peerImages(b))
	n := 10
	if v, err := strconv.Atoi(os.Getenv("PODSB_BENCH_PODS")); err == nil && v > 0 {
		n = v
	}
	cd := newContainerd(b, crictl, host)
	servers := []*criServer{newPodsbCRI(b, crictl), {name: "containerd", endpoint: cd.endpoint(), tini: cd.tini, server: cd.pid(), crictl: crictl}}
	per := map[string]int{}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nload average before: %s", loadavg())
	fmt.Fprintf(&sb, "\n%d running pods, one sleeping container each; Pss of the server and every process it added\n| runtime | idle server | with %d pods | of which the server | per pod | processes with the pods: Pss |\n| --- | ---: | ---: | ---: | ---: | --- |\n", n, n)
	for _, s := range servers {
		idle, loaded, server, procs := podsMemory(b, s, host, n)
		per[s.name] = (loaded - idle) / n
		var names []string
		for name, k := range procs {
			names = append(names, fmt.Sprintf("%s ×%d: %d KiB", name, k[0], k[1]))
		}
		sort.Strings(names)
		fmt.Fprintf(&sb, "| %s | %d KiB | %d KiB | %d KiB | %d KiB | %s |\n", s.name, idle, loaded, server, per[s.name], strings.Join(names, ", "))
	}
	ratio := float64(per["podsb"]) / float64(per["containerd"])
	fmt.Fprintf(&sb, "podsb / containerd per pod: %.3f (1/%.1f); load average after: %s\n", ratio, 1/ratio, loadavg())
	b.ReportMetric(float64(per["podsb"]), "KiB/pod-podsb")
	b.ReportMetric(float64(per["containerd"]), "KiB/pod-containerd")
	b.ReportMetric(ratio, "ratio")
	b.Log(sb.String())
}

// critestGroups are issue 14's critest groups, as one --ginkgo.focus.
const critestGroups = `\[k8s\.io\] (Runtime info |PodSandbox |Container runtime should support (basic operations|adding volume|log)|Multiple Containers |Idempotence |Image Manager |Image Consistency |Image Identifier Consistency |Streaming )`

// critestPasses runs critest's conformance specs of critestGroups
// against s and returns the numbers passed and failed, from its summary.
func critestPasses(tb testing.TB, critest string, s *criServer, imagesFile string) (passed, failed int, out string) {
	tb.Helper()
	cmd := exec.Command(critest, "--runtime-endpoint", s.endpoint, "--image-endpoint", s.endpoint,
		"--test-images-file", imagesFile, "--ginkgo.focus", critestGroups, "--ginkgo.no-color")
	cmd.Dir = tb.TempDir()
	b, _ := cmd.CombinedOutput() // a failed spec exits 1
	out = string(b)
	i := strings.LastIndex(out, " Passed | ")
	if i < 0 {
		tb.Fatalf("critest against %s: no summary:\n%s", s.name, out)
	}
	line := out[strings.LastIndex(out[:i], "\n")+1:]
	if j := strings.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	if _, err := fmt.Sscanf(line[strings.Index(line, "-- ")+3:], "%d Passed | %d Failed", &passed, &failed); err != nil {
		tb.Fatalf("critest summary %q: %v", line, err)
	}
	return passed, failed, out
}

// BenchmarkCRICritestPasses runs critest's conformance groups of issue 14
// against podsb cri and containerd in the same run, with the same images
// file (the default container image from the local registry; the other
// images critest names are not served, so their specs fail on both), and
// reports how many pass on each. It is a benchmark only so that make test
// does not run it (it takes minutes). Results: docs/performance.md.
func BenchmarkCRICritestPasses(b *testing.B) {
	testenv.RequireRoot(b)
	critest := critestForBench(b)
	crictl := crictlTB(b)
	host := serveImages(b, peerImages(b))
	images := filepath.Join(b.TempDir(), "images.yaml")
	must(b, os.WriteFile(images, []byte("defaultTestContainerImage: "+host+"/busybox:1\n"), 0o644))
	cd := newContainerd(b, crictl, host)
	servers := []*criServer{newPodsbCRI(b, crictl), {name: "containerd", endpoint: cd.endpoint(), tini: cd.tini, server: cd.pid(), crictl: crictl}}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\ncritest %s\n| runtime | passed | failed |\n| --- | ---: | ---: |\n", critestGroups)
	for _, s := range servers {
		p, f, out := critestPasses(b, critest, s, images)
		fmt.Fprintf(&sb, "| %s | %d | %d |\n", s.name, p, f)
		b.ReportMetric(float64(p), "passed-"+s.name)
		var fails []string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "  [FAIL] ") {
				fails = append(fails, strings.TrimPrefix(l, "  [FAIL] "))
			}
		}
		b.Logf("%s failed:\n%s", s.name, strings.Join(fails, "\n"))
	}
	b.Log(sb.String())
}
