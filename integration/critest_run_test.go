//go:build critest

// TestCritest runs only with the critest build tag (make critest), until
// podsb cri passes it and CI runs it: without the tag it does not exist,
// rather than skip (CI fails on a skip) or pass without running.

package integration

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestCritest runs critest v1.37.0's groups of issue 14 against a podsb
// cri of the test's own, whose images come from a registry on 127.0.0.1
// (criregistry; nothing is pulled from the network), and fails on any
// spec failed that the skip list does not name, in a subtest per spec.
// PODSB_CRITEST_FOCUS=REGEXP runs only the specs it matches instead of the
// groups. PODSB_CRITEST_REPORT_DIR=DIR keeps critest's log and its JSON and JUnit
// reports there.
func TestCritest(t *testing.T) { runCritest(t, critestFocus, nil) }

// critestCNIFocus are the specs of critest that TestCritestCNI runs with
// the pods on a CNI network: those that use the pod's network.
var critestCNIFocus = []string{
	`\[k8s\.io\] Networking `,
	`\[k8s\.io\] PodSandbox runtime should support basic operations`,
	`\[k8s\.io\] Multiple Containers .* should support network`,
	`\[k8s\.io\] Streaming .* should support portforward`,
}

// TestCritestCNI runs critest's specs of the pod's network against a podsb
// cri whose pods are on a CNI network of the test's own (bridge,
// host-local, portmap; newCNINet), which leaves nothing in the host's
// firewall.
func TestCritestCNI(t *testing.T) {
	n := newCNINet(t, `{"type": "portmap", "capabilities": {"portMappings": true}}`)
	runCritest(t, critestCNIFocus, n.args())
}

// runCritest runs critest's specs of focusList against a podsb cri with
// the flags args more.
func runCritest(t *testing.T, focusList, args []string) {
	critest := critestBinary(t)
	skips := loadCritestSkips(t, critestSkipsFile)
	reg := startCRIRegistry(t)
	// critest's temporary files (log directories, volumes): made before
	// the server, so removed after it and its pods.
	tmp := t.TempDir()
	// podsb cri (newCRIEnv) takes --registries-conf from this.
	t.Setenv("PODSB_REGISTRIES_CONF", reg.conf)
	c := newCRIEnvArgs(t, args...)

	reports := os.Getenv("PODSB_CRITEST_REPORT_DIR")
	if reports == "" {
		reports = t.TempDir()
	} else if err := os.MkdirAll(reports, 0o755); err != nil {
		t.Fatal(err)
	}
	jsonReport := filepath.Join(reports, "critest.json")
	logPath := filepath.Join(reports, "critest.log")
	// Not a report of an earlier run in the same directory.
	if err := os.Remove(jsonReport); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	ep := "unix://" + c.sock
	args = []string{"--runtime-endpoint", ep, "--image-endpoint", ep, "--test-images-file", reg.testImages,
		"--ginkgo.no-color", "--ginkgo.json-report", jsonReport, "--ginkgo.junit-report", filepath.Join(reports, "critest-junit.xml")}
	if f := os.Getenv("PODSB_CRITEST_FOCUS"); f != "" {
		// One group while working on it: a regular expression over the
		// spec's full text, as a --ginkgo.focus.
		focusList = []string{f}
	}
	for _, f := range focusList {
		args = append(args, "--ginkgo.focus", f)
	}
	for _, s := range skips {
		args = append(args, "--ginkgo.skip", s.re.String())
	}
	ctx := context.Background()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-time.Minute))
		defer cancel()
	}
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, critest, args...)
	// critest looks for a crictl.yaml in its directory: one without any.
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	runErr := cmd.Run()
	t.Logf("critest %s ran for %v (%v); its log: %s", critestVersion, time.Since(start).Round(time.Second), runErr, logPath)

	if _, err := os.Stat(jsonReport); err != nil {
		t.Fatalf("critest wrote no report (%v): %v\n%s", runErr, err, tail(logPath, 40))
	}
	specs := readGinkgoReport(t, jsonReport)
	focus := regexp.MustCompile(strings.Join(focusList, "|"))
	var passed, failed, skipped int
	sort.SliceStable(specs, func(i, j int) bool { return specs[i].text() < specs[j].text() })
	for _, s := range specs {
		text := s.text()
		if s.LeafNodeType != "It" {
			// BeforeSuite and the like: a failure there fails every spec.
			if s.State != "passed" {
				t.Errorf("critest's %s: %s: %s", s.LeafNodeType, s.State, s.Failure.Message)
			}
			continue
		}
		if s.State == "skipped" && s.Failure.Message == "" {
			// Not run: out of focus, or skipped by a --ginkgo.skip (the
			// list's, or critest's own "benchmark").
			if sk := matchSkip(skips, text); sk != nil && focus.MatchString(text) {
				skipped++
				t.Logf("skipped (%s): %s: %s", critestSkipsFile, text, sk.reason)
			}
			continue
		}
		t.Run(strings.TrimPrefix(text, "[k8s.io] "), func(t *testing.T) {
			if s.State == "passed" {
				passed++
				return
			}
			failed++
			state := s.State
			if state == "skipped" {
				// critest's own Skip (an RPC Unimplemented that it
				// tolerates, a field left empty) fails here: a spec skipped
				// is one of the list, with its reason.
				state = "skipped by critest itself (make it pass, or list it in " + critestSkipsFile + " with the reason)"
			}
			t.Errorf("%s after %v at %s:%d:\n%s", state, s.RunTime.Round(time.Millisecond),
				filepath.Base(s.Failure.Location.FileName), s.Failure.Location.LineNumber, summary(s.Failure.Message))
		})
	}
	t.Logf("critest: %d passed, %d failed, %d skipped by %s", passed, failed, skipped, critestSkipsFile)
	if passed+failed == 0 {
		t.Errorf("critest ran no spec of the groups (%v):\n%s", runErr, tail(logPath, 40))
	} else if runErr != nil && failed == 0 {
		t.Errorf("critest: %v, with no spec failed:\n%s", runErr, tail(logPath, 40))
	}

	// critest removes what it made, but some specs not when they fail: a
	// pod left after every spec passed is one RemovePodSandbox left. The
	// env's cleanup removes them and checks that nothing of them is left.
	if out := strings.Fields(c.crictlMust("pods", "-q")); len(out) > 0 {
		for _, id := range out {
			c.use(id)
		}
		if failed == 0 {
			t.Errorf("pods left after critest: %v", out)
		} else {
			t.Logf("pods left after critest's failed specs: %v", out)
		}
	}
}

func matchSkip(skips []critestSkip, text string) *critestSkip {
	for i := range skips {
		if skips[i].re.MatchString(text) {
			return &skips[i]
		}
	}
	return nil
}

// summary shortens a failure message: gomega follows a gRPC error's line
// with a dump of the error's struct.
func summary(msg string) string {
	lines := strings.Split(strings.TrimSpace(msg), "\n")
	for i, l := range lines {
		if strings.Contains(l, "rpc error: code =") {
			return strings.Join(lines[:i+1], "\n")
		}
	}
	if len(lines) > 15 {
		lines = append(lines[:15], fmt.Sprintf("... (%d lines more)", len(lines)-15))
	}
	return strings.Join(lines, "\n")
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
