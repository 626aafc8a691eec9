package integration

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A tool is one contender in a latency comparison. Only op and rm are timed;
// setup and teardown run untimed around them, so that a contender can prepare
// a fresh bundle or name, or clean up leftovers, without paying for it.
type tool struct {
	name string
	// setup, if set, prepares round i; its result is passed to op.
	setup func(tb testing.TB, i int) any
	// op is the timed operation, for a sandbox: create until ready. Its
	// result (for a sandbox: what identifies it) goes to rm and teardown.
	op func(tb testing.TB, i int, st any) any
	// rm, if set, is a second timed phase that undoes op, for a sandbox:
	// remove. A tool with rm reports the series name/create, name/rm and
	// name/create+rm; a tool without it reports the series name.
	rm func(tb testing.TB, i int, st any)
	// teardown, if set, runs after each round with op's result.
	teardown func(tb testing.TB, i int, st any)
}

// Series names of a tool with an rm phase, relative to the tool's name.
const (
	phaseCreate = "create"
	phaseRm     = "rm"
	phaseTotal  = "create+rm"
)

// measure runs rounds rounds of every tool, interleaved: each round runs every
// tool once, so that a burst of machine noise hits all contenders alike
// instead of whichever one happened to be running. The order rotates from
// round to round so that no tool always runs right after the same other one
// (and inherits its warm caches or its pending reclaim work).
//
// An untimed warm-up round with i = 0 comes first; measured rounds have
// i = 1..rounds. measure returns the samples of every series (see tool.rm).
func measure(tb testing.TB, rounds int, tools []tool) map[string][]time.Duration {
	tb.Helper()
	if rounds < 1 {
		tb.Fatalf("measure: rounds = %d, want at least 1", rounds)
	}
	samples := make(map[string][]time.Duration)
	for i := 0; i <= rounds; i++ {
		for k := range tools {
			t := &tools[(i+k)%len(tools)]
			create, rm := runRound(tb, t, i)
			if i == 0 {
				continue
			}
			if t.rm == nil {
				samples[t.name] = append(samples[t.name], create)
				continue
			}
			samples[t.name+"/"+phaseCreate] = append(samples[t.name+"/"+phaseCreate], create)
			samples[t.name+"/"+phaseRm] = append(samples[t.name+"/"+phaseRm], rm)
			samples[t.name+"/"+phaseTotal] = append(samples[t.name+"/"+phaseTotal], create+rm)
		}
	}
	return samples
}

// runRound runs one round of t and returns the durations of op and of rm
// (zero without rm).
func runRound(tb testing.TB, t *tool, i int) (create, rm time.Duration) {
	tb.Helper()
	var st any
	if t.setup != nil {
		st = t.setup(tb, i)
	}
	start := time.Now()
	res := t.op(tb, i, st)
	create = time.Since(start)
	if t.rm != nil {
		start = time.Now()
		t.rm(tb, i, res)
		rm = time.Since(start)
	}
	if t.teardown != nil {
		t.teardown(tb, i, res)
	}
	return create, rm
}

// median returns the median of d, the mean of the two middle samples when
// len(d) is even, and 0 for no samples. d is not modified.
func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(d))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return s[n/2-1] + (s[n/2]-s[n/2-1])/2
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of d, or
// 0 for no samples. d is not modified.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(d))
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// metricReporter is the part of *testing.B that report uses, so that report
// also takes a *testing.T (which only gets the table).
type metricReporter interface {
	ReportMetric(n float64, unit string)
}

// report logs a markdown table of every series with its median, p90 and the
// ratio of its median to that of the series ref, in seriesOrder. For a
// benchmark it also reports the metrics ms-median/SERIES and
// ratio-to-REF/SERIES, and suppresses ns/op, which times a whole measure()
// call and means nothing.
func report(tb testing.TB, samples map[string][]time.Duration, ref string) {
	tb.Helper()
	refMedian := median(samples[ref])
	if refMedian <= 0 {
		tb.Fatalf("report: reference series %q has no samples", ref)
	}
	medians := make(map[string]time.Duration, len(samples))
	for name, d := range samples {
		medians[name] = median(d)
	}
	var table strings.Builder
	fmt.Fprintf(&table, "\n| series | runs | median | p90 | ratio to %s |\n", ref)
	table.WriteString("| --- | ---: | ---: | ---: | ---: |\n")
	mr, isBench := tb.(metricReporter)
	for _, name := range seriesOrder(medians) {
		d, med := samples[name], medians[name]
		ratio := float64(med) / float64(refMedian)
		fmt.Fprintf(&table, "| %s | %d | %s | %s | %.2f |\n",
			name, len(d), formatMs(med), formatMs(percentile(d, 90)), ratio)
		if isBench {
			mr.ReportMetric(float64(med)/float64(time.Millisecond), "ms-median/"+name)
			mr.ReportMetric(ratio, "ratio-to-"+ref+"/"+name)
		}
	}
	if isBench {
		mr.ReportMetric(0, "ns/op")
	}
	tb.Log(table.String())
}

// seriesOrder returns the names of the series with the given medians in
// report's order: tools fastest first, by the median of their first phase,
// each with its phases in the order create, rm, create+rm.
func seriesOrder(medians map[string]time.Duration) []string {
	// toolOf("runc/create") = "runc"; firstPhase("runc") is the median of
	// "runc" or, for a tool with phases, of "runc/create".
	toolOf := func(name string) string { tool, _, _ := strings.Cut(name, "/"); return tool }
	firstPhase := func(tool string) time.Duration {
		if d, ok := medians[tool]; ok {
			return d
		}
		return medians[tool+"/"+phaseCreate]
	}
	phases := []string{"", phaseCreate, phaseRm, phaseTotal}
	names := slices.Collect(maps.Keys(medians))
	slices.SortFunc(names, func(a, b string) int {
		toolA, toolB := toolOf(a), toolOf(b)
		_, pa, _ := strings.Cut(a, "/")
		_, pb, _ := strings.Cut(b, "/")
		return cmp.Or(
			cmp.Compare(firstPhase(toolA), firstPhase(toolB)),
			strings.Compare(toolA, toolB),
			cmp.Compare(slices.Index(phases, pa), slices.Index(phases, pb)),
			strings.Compare(pa, pb),
		)
	})
	return names
}

// formatMs formats d in milliseconds with two decimals.
func formatMs(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// benchRounds returns the number of measured rounds: PODSB_BENCH_ROUNDS if
// set, else def.
func benchRounds(tb testing.TB, def int) int {
	tb.Helper()
	s := os.Getenv("PODSB_BENCH_ROUNDS")
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		tb.Fatalf("PODSB_BENCH_ROUNDS=%q: want a positive integer", s)
	}
	return n
}

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		in   []time.Duration
		want time.Duration
	}{
		{"empty", nil, 0},
		{"one", []time.Duration{7}, 7},
		{"odd unsorted", []time.Duration{9, 1, 5}, 5},
		{"even takes the mean of the middle two", []time.Duration{4, 1, 10, 2}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.in)
			if got := median(in); got != tt.want {
				t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
			}
			if !slices.Equal(in, tt.in) {
				t.Errorf("median modified its input: %v, was %v", in, tt.in)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	d := []time.Duration{10, 1, 9, 2, 8, 3, 7, 4, 6, 5}
	tests := []struct {
		p    float64
		want time.Duration
	}{{90, 9}, {100, 10}, {50, 5}, {1, 1}}
	for _, tt := range tests {
		t.Run(strconv.FormatFloat(tt.p, 'f', -1, 64), func(t *testing.T) {
			if got := percentile(d, tt.p); got != tt.want {
				t.Errorf("percentile(%v) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

func TestSeriesOrder(t *testing.T) {
	medians := map[string]time.Duration{
		"runc/create": 20, "runc/rm": 100, "runc/create+rm": 120,
		"unshare":     3,
		"crun/create": 15, "crun/rm": 5, "crun/create+rm": 20,
	}
	want := []string{
		"unshare",
		"crun/create", "crun/rm", "crun/create+rm",
		"runc/create", "runc/rm", "runc/create+rm",
	}
	if got := seriesOrder(medians); !slices.Equal(got, want) {
		t.Errorf("seriesOrder = %v, want %v", got, want)
	}
}

// TestMeasure checks the bookkeeping of measure: interleaving, the warm-up
// round, the hand-over of state between phases and the series names.
func TestMeasure(t *testing.T) {
	var calls []string
	record := func(format string, args ...any) { calls = append(calls, fmt.Sprintf(format, args...)) }
	tools := []tool{
		{
			name: "a",
			op:   func(tb testing.TB, i int, st any) any { record("a.op %d", i); return nil },
		},
		{
			name:  "b",
			setup: func(tb testing.TB, i int) any { record("b.setup %d", i); return i * 10 },
			op: func(tb testing.TB, i int, st any) any {
				record("b.op %d %v", i, st)
				return st.(int) + 1
			},
			rm:       func(tb testing.TB, i int, st any) { record("b.rm %d %v", i, st) },
			teardown: func(tb testing.TB, i int, st any) { record("b.teardown %d %v", i, st) },
		},
	}
	samples := measure(t, 2, tools)

	want := []string{
		"a.op 0", "b.setup 0", "b.op 0 0", "b.rm 0 1", "b.teardown 0 1",
		"b.setup 1", "b.op 1 10", "b.rm 1 11", "b.teardown 1 11", "a.op 1",
		"a.op 2", "b.setup 2", "b.op 2 20", "b.rm 2 21", "b.teardown 2 21",
	}
	if !slices.Equal(calls, want) {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(calls, "\n"), strings.Join(want, "\n"))
	}
	wantSeries := []string{"a", "b/create", "b/create+rm", "b/rm"}
	var series []string
	for name, d := range samples {
		series = append(series, name)
		if len(d) != 2 {
			t.Errorf("series %s has %d samples, want 2 (the warm-up is not counted)", name, len(d))
		}
	}
	slices.Sort(series)
	if !slices.Equal(series, wantSeries) {
		t.Errorf("series = %v, want %v", series, wantSeries)
	}
	for i := range samples["b/create+rm"] {
		if got, want := samples["b/create+rm"][i], samples["b/create"][i]+samples["b/rm"][i]; got != want {
			t.Errorf("b/create+rm[%d] = %v, want create+rm = %v", i, got, want)
		}
	}
}
