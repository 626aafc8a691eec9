package integration

// critest v1.37.0 and its images, for TestCritest (critest_run_test.go,
// build tag critest) and for the tests here, which CI runs: the skip list
// names specs critest has, and podsb cri pulls the names critest uses
// from the local registry.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/podsb/podsb/internal/testenv"
)

const critestVersion = "v1.37.0"

// critestFocus are the groups of critest that issue 14 asks podsb cri to
// pass, each a --ginkgo.focus over the spec's full text. The other groups
// (Security Context, SELinux, AppArmor, OOM, NRI, Image
// Volume, mount propagation, readonly mounts) are the next issue's; Networking
// is issue 15's.
var critestFocus = []string{
	`\[k8s\.io\] Runtime info `,
	`\[k8s\.io\] PodSandbox `,
	`\[k8s\.io\] Container runtime should support (basic operations|adding volume|log)`,
	`\[k8s\.io\] Multiple Containers `,
	`\[k8s\.io\] Idempotence `,
	`\[k8s\.io\] Image Manager `,
	`\[k8s\.io\] Image Consistency `,
	`\[k8s\.io\] Image Identifier Consistency `,
	`\[k8s\.io\] Streaming `,
	`\[k8s\.io\] Networking `,
}

// critestSkipsFile is the one list of the specs skipped, with the reasons
// (docs/cri.md#conformance-critest).
const critestSkipsFile = "testdata/critest-skips.txt"

var (
	critestOnce sync.Once
	critestPath string
	critestErr  error
)

// critestBinary returns critest v1.37.0: $PODSB_CRITEST_BIN, else the one
// make tools keeps in $PODSB_TOOLS_DIR (/var/cache/podsb-tools), built
// there first if it is missing (scripts/cri-tools.sh).
func critestBinary(t *testing.T) string {
	t.Helper()
	critestOnce.Do(func() {
		if p := os.Getenv("PODSB_CRITEST_BIN"); p != "" {
			critestPath = p
			return
		}
		dir := os.Getenv("PODSB_TOOLS_DIR")
		if dir == "" {
			dir = "/var/cache/podsb-tools"
		}
		critestPath = filepath.Join(dir, "critest-"+critestVersion)
		if _, err := os.Stat(critestPath); err == nil {
			return
		}
		out, err := exec.Command("make", "-s", "-C", "..", "tools", "TOOLS_DIR="+dir).CombinedOutput()
		if err != nil {
			critestErr = fmt.Errorf("make tools: %v: %s", err, out)
		}
	})
	if critestErr != nil {
		t.Fatal(critestErr)
	}
	return critestPath
}

// critestSkip is one line of the skip list.
type critestSkip struct {
	re     *regexp.Regexp
	reason string
}

// loadCritestSkips reads the skip list: "REGEXP # REASON" lines, blank
// lines and # comments. A line without a reason is an error.
func loadCritestSkips(t *testing.T, path string) []critestSkip {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var skips []critestSkip
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		expr, reason, ok := strings.Cut(line, " # ")
		if !ok || strings.TrimSpace(reason) == "" {
			t.Fatalf("%s:%d: no reason (REGEXP # REASON): %s", path, n, line)
		}
		re, err := regexp.Compile(strings.TrimSpace(expr))
		if err != nil {
			t.Fatalf("%s:%d: %v", path, n, err)
		}
		skips = append(skips, critestSkip{re, strings.TrimSpace(reason)})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return skips
}

// criRegistry is a criregistry of the test's own: the images critest
// pulls, on 127.0.0.1, and the registries config and test-images file
// that name them.
type criRegistry struct {
	host, conf, testImages string
}

// startCRIRegistry builds and starts integration/internal/criregistry,
// and stops it when the test ends.
func startCRIRegistry(t *testing.T) criRegistry {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "criregistry")
	if out, err := exec.Command("go", "build", "-o", bin, "./internal/criregistry").CombinedOutput(); err != nil {
		t.Fatalf("build criregistry: %v: %s", err, out)
	}
	cmd := exec.Command(bin, dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("criregistry: %v: %s", err, stderr.String())
		}
	})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
		io.Copy(io.Discard, stdout)
	}()
	select {
	case s := <-line:
		host, ok := strings.CutPrefix(strings.TrimSpace(s), "serving ")
		if !ok {
			t.Fatalf("criregistry said %q: %s", s, stderr.String())
		}
		return criRegistry{host: host, conf: filepath.Join(dir, "registries.conf"), testImages: filepath.Join(dir, "test-images.yaml")}
	case <-time.After(time.Minute):
		t.Fatalf("criregistry did not serve within a minute: %s", stderr.String())
	}
	return criRegistry{}
}

// ginkgoSpec is the part of a spec's entry in ginkgo's JSON report that
// TestCritest reads.
type ginkgoSpec struct {
	ContainerHierarchyTexts []string
	LeafNodeType            string
	LeafNodeText            string
	State                   string
	RunTime                 time.Duration
	Failure                 struct {
		Message  string
		Location struct {
			FileName   string
			LineNumber int
		}
	}
}

// readGinkgoReport reads the specs of a --ginkgo.json-report.
func readGinkgoReport(t *testing.T, path string) []ginkgoSpec {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var suites []struct{ SpecReports []ginkgoSpec }
	if err := json.Unmarshal(b, &suites); err != nil || len(suites) != 1 {
		t.Fatalf("ginkgo report %s: %d suites, %v", path, len(suites), err)
	}
	return suites[0].SpecReports
}

func (s ginkgoSpec) text() string {
	return strings.TrimSpace(strings.Join(append(append([]string{}, s.ContainerHierarchyTexts...), s.LeafNodeText), " "))
}

// Every line of the skip list names a spec that critest v1.37.0 has in
// the groups TestCritest runs, and every group has specs: a list or
// focus gone stale (a spec renamed by a new critest) fails here, in CI,
// without running critest's specs (--ginkgo.dry-run).
func TestCritestSkipList(t *testing.T) {
	testenv.RequireRoot(t)
	critest := critestBinary(t)
	skips := loadCritestSkips(t, critestSkipsFile)
	dir := t.TempDir()
	report := filepath.Join(dir, "dry-run.json")
	args := []string{"--ginkgo.dry-run", "--ginkgo.no-color", "--ginkgo.json-report", report}
	for _, f := range critestFocus {
		args = append(args, "--ginkgo.focus", f)
	}
	cmd := exec.Command(critest, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("critest --ginkgo.dry-run: %v\n%s", err, out)
	}
	var texts []string
	for _, s := range readGinkgoReport(t, report) {
		// Run (in a dry run: passed) are the specs of the focus.
		if s.LeafNodeType == "It" && s.State == "passed" {
			texts = append(texts, s.text())
		}
	}
	for _, f := range critestFocus {
		re := regexp.MustCompile(f)
		if !slices.ContainsFunc(texts, re.MatchString) {
			t.Errorf("no spec of critest %s in the group %s", critestVersion, f)
		}
	}
	for _, s := range skips {
		if !slices.ContainsFunc(texts, s.re.MatchString) {
			t.Errorf("%s: %q names no spec of critest %s in the groups TestCritest runs", critestSkipsFile, s.re, critestVersion)
		}
	}
	t.Logf("%d specs in the groups, %d lines in the skip list", len(texts), len(skips))
}

// podsb cri pulls the names critest uses (registry.k8s.io, k8s.gcr.io,
// gcr.io) from the local registry criregistry serves, through the
// mirrors of --registries-conf, and keeps them under those names; a name
// the local registry lacks is an error, not a pull from the network.
func TestCRIMirrors(t *testing.T) {
	reg := startCRIRegistry(t)
	t.Setenv("PODSB_REGISTRIES_CONF", reg.conf)
	c := newCRIEnv(t)

	ids := map[string]string{}
	for _, ref := range []string{"registry.k8s.io/e2e-test-images/busybox:1.29-2", "registry.k8s.io/pause:3.9", "k8s.gcr.io/pause:3.9",
		"gcr.io/k8s-staging-cri-tools/test-image-tags:1"} {
		out := c.crictlMust("pull", ref)
		id, ok := strings.CutPrefix(strings.TrimSpace(out), "Image is up to date for ")
		if !ok || !strings.HasPrefix(id, "sha256:") {
			t.Fatalf("crictl pull %s: %q", ref, out)
		}
		ids[ref] = id
	}
	if ids["registry.k8s.io/pause:3.9"] != ids["k8s.gcr.io/pause:3.9"] {
		t.Errorf("one image from two registries has two IDs: %v", ids)
	}
	var imgs struct {
		Images []struct {
			ID       string   `json:"id"`
			RepoTags []string `json:"repoTags"`
		} `json:"images"`
	}
	if err := json.Unmarshal([]byte(c.crictlMust("images", "-o", "json")), &imgs); err != nil {
		t.Fatal(err)
	}
	tags := map[string]string{}
	for _, im := range imgs.Images {
		for _, tag := range im.RepoTags {
			tags[tag] = im.ID
		}
	}
	for ref, id := range ids {
		if tags[ref] != id {
			t.Errorf("crictl images: %s is %q, pulled as %s", ref, tags[ref], id)
		}
	}
	for ref := range tags {
		if strings.Contains(ref, reg.host) {
			t.Errorf("crictl images: %s is named by the local registry", ref)
		}
	}

	r := c.crictlRun("pull", "registry.k8s.io/e2e-test-images/nosuch:1")
	if r.code == 0 || !strings.Contains(r.stderr, reg.host) {
		t.Errorf("pull of a name the local registry lacks: exit %d: %s", r.code, r.stderr)
	}
	// RemoveImage removes an image by all its names: pause:3.9 goes
	// with either name.
	rm := map[string]bool{}
	for _, id := range ids {
		if !rm[id] {
			c.crictlMust("rmi", id)
			rm[id] = true
		}
	}
	if out := c.crictlMust("images", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("crictl images after rmi: %q", out)
	}
}
