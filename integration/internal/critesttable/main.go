// Command critesttable prints, as a Markdown table, how many specs of each
// critest group passed in two or more ginkgo JSON reports (critest's
// --ginkgo.json-report), one column per report: the table of docs/cri.md.
//
//	go run ./integration/internal/critesttable [-skips FILE] podsb=A.json containerd=B.json
//
// With -skips (integration/testdata/critest-skips.txt), the specs the list
// names count nowhere, as if skipped in every run.
//
// A spec that was not run (out of focus, or skipped by --ginkgo.skip)
// counts nowhere; one that critest skipped itself counts as run and not
// passed, as TestCritest counts it.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
)

type spec struct {
	ContainerHierarchyTexts []string
	LeafNodeType            string
	LeafNodeText            string
	State                   string
	Failure                 struct{ Message string }
}

type count struct{ run, passed int }

func main() {
	skipsFile := flag.String("skips", "", "a skip list: the specs it names count nowhere")
	flag.Parse()
	if flag.NArg() < 1 {
		fmt.Fprintln(os.Stderr, "usage: critesttable [-skips FILE] NAME=REPORT.json...")
		os.Exit(2)
	}
	var skips []*regexp.Regexp
	if *skipsFile != "" {
		f, err := os.Open(*skipsFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "critesttable:", err)
			os.Exit(1)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			if re, _, ok := strings.Cut(line, " # "); ok && !strings.HasPrefix(line, "#") {
				skips = append(skips, regexp.MustCompile(strings.TrimSpace(re)))
			}
		}
		f.Close()
	}
	var names, groups []string
	counts := map[string]map[string]count{} // group, then report
	for _, arg := range flag.Args() {
		name, path, ok := strings.Cut(arg, "=")
		if !ok {
			fmt.Fprintf(os.Stderr, "critesttable: %q: want NAME=REPORT.json\n", arg)
			os.Exit(2)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "critesttable:", err)
			os.Exit(1)
		}
		var suites []struct{ SpecReports []spec }
		if err := json.Unmarshal(b, &suites); err != nil || len(suites) != 1 {
			fmt.Fprintf(os.Stderr, "critesttable: %s: not a ginkgo JSON report of one suite (%v)\n", path, err)
			os.Exit(1)
		}
		names = append(names, name)
		for _, s := range suites[0].SpecReports {
			if s.LeafNodeType != "It" || len(s.ContainerHierarchyTexts) == 0 ||
				(s.State == "skipped" && s.Failure.Message == "") {
				continue
			}
			text := strings.Join(append(append([]string{}, s.ContainerHierarchyTexts...), s.LeafNodeText), " ")
			skipped := false
			for _, re := range skips {
				skipped = skipped || re.MatchString(text)
			}
			if skipped {
				continue
			}
			g := strings.TrimPrefix(s.ContainerHierarchyTexts[0], "[k8s.io] ")
			if counts[g] == nil {
				counts[g] = map[string]count{}
				groups = append(groups, g)
			}
			c := counts[g][name]
			c.run++
			if s.State == "passed" {
				c.passed++
			}
			counts[g][name] = c
		}
	}
	fmt.Printf("| group | %s |\n|---|%s\n", strings.Join(names, " | "), strings.Repeat("---:|", len(names)))
	total := map[string]count{}
	for _, g := range groups {
		row := []string{g}
		for _, n := range names {
			c := counts[g][n]
			row = append(row, fmt.Sprintf("%d / %d", c.passed, c.run))
			total[n] = count{total[n].run + c.run, total[n].passed + c.passed}
		}
		fmt.Printf("| %s |\n", strings.Join(row, " | "))
	}
	row := []string{"**all**"}
	for _, n := range names {
		row = append(row, fmt.Sprintf("**%d / %d**", total[n].passed, total[n].run))
	}
	fmt.Printf("| %s |\n", strings.Join(row, " | "))
}
