// Package analysis is the triage: what moved between a baseline and a
// candidate (span latency quantiles and error shares, with intervals, Holm
// over every test), where (revision, zone, pod), where the added time went
// (self time on the critical path of slow traces against baseline traces at
// the same quantile), what the logs of those traces say, and links to
// continue by hand. The statistics are the release gate's
// (releasegate/stats): Harrell–Davis quantiles, order-statistic intervals,
// Holm's step-down.
package analysis

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/opsight/opsight/releasegate/gate"
	"github.com/opsight/opsight/releasegate/stats"
	"github.com/opsight/opsight/triage/internal/data"
	"github.com/opsight/opsight/triage/internal/links"
)

// Options say what to compare.
type Options struct {
	Service   string
	Namespace string // "" = any
	Cluster   string // "" = any
	// BaselineRevision set: revision mode, the baseline revision against
	// CandidateRevision ("" = every other revision) in the same window.
	// Empty: window mode, the window against the one just before it.
	BaselineRevision  string
	CandidateRevision string
	// From, To bound the (candidate) window. Zero: all data in revision
	// mode; in window mode To defaults to the last span's end and From to
	// the middle of the data, so the second half is compared with the first.
	From, To   time.Time
	Quantiles  []float64 // default p50, p90, p99
	MinRatio   float64   // smallest latency ratio reported (default 1.10)
	ErrorDelta float64   // smallest rise of an error share reported, absolute (default 0.01)
	Alpha      float64   // familywise false-finding rate over all tests (default 0.01)
	MaxTraces  int       // trace ids listed per finding (default 5)
	Links      links.Config
}

func (o *Options) defaults() {
	if len(o.Quantiles) == 0 {
		o.Quantiles = []float64{0.5, 0.9, 0.99}
	}
	if o.MinRatio == 0 {
		o.MinRatio = 1.10
	}
	if o.ErrorDelta == 0 {
		o.ErrorDelta = 0.01
	}
	if o.Alpha == 0 {
		o.Alpha = 0.01
	}
	if o.MaxTraces == 0 {
		o.MaxTraces = 5
	}
}

// Exit codes: one meaning each.
const (
	ExitNothingMoved = 0
	ExitFindings     = 1
	ExitError        = 3
)

// opKey is a span name and kind: what the span metrics label span_name, span_kind.
type opKey struct{ name, kind string }

type sideData struct {
	spans []int32 // indexes into Input.Spans
	durs  []float64
	errs  int
	// Metrics mode (Input.Series): the span metrics' histogram, span and
	// error counts; spans and durs are then only the fetched traces'.
	hist            *stats.Histogram
	count, errCount float64
}

// n is the number of spans the side's statistics stand on.
func (d *sideData) n() int {
	if d.hist != nil {
		return int(math.Round(d.count))
	}
	return len(d.durs)
}

func (d *sideData) nErr() int {
	if d.hist != nil {
		return int(math.Round(d.errCount))
	}
	return d.errs
}

// quantile is the side's q-quantile: of the histogram in metrics mode.
func (d *sideData) quantile(q float64) float64 {
	if d.hist != nil {
		h := normalized(d.hist)
		return h.Quantile(q)
	}
	return stats.Quantile(d.durs, q)
}

// normalized is a sorted, merged copy of a histogram summed from series.
func normalized(h *stats.Histogram) stats.Histogram {
	c := stats.Histogram{Buckets: append([]stats.Bucket(nil), h.Buckets...), Exponential: h.Exponential}
	c.Normalize()
	return c
}

// addSeries adds one series' counts to a metrics-mode side.
func (d *sideData) addSeries(s *data.Series) {
	if d.hist == nil {
		d.hist = &stats.Histogram{}
	}
	if s.Hist != nil {
		d.hist.Buckets = append(d.hist.Buckets, s.Hist.Buckets...)
		d.hist.Exponential = d.hist.Exponential || s.Hist.Exponential
	}
	d.count += s.Count
	d.errCount += s.Errors
}

type op struct {
	key        opKey
	base, cand sideData
	res        Operation
}

// Input is what a triage reads.
type Input struct {
	Spans []data.Span
	Logs  []data.Log
	// Series, when set, are the span metrics of both sides (online:
	// Prometheus): what moved and where are decided on them, and Spans are
	// only the traces fetched to attribute the added time and read the
	// logs of. Options.From and To must then be set.
	Series []data.Series
	// LogCounts, when set, give the whole windows' log volume and risk
	// patterns (online: the sidecar's counters); Logs are then only the
	// lines of the fetched traces.
	LogCounts *data.LogCounts
}

// metrics reports metrics mode.
func (in *Input) metrics() bool { return len(in.Series) > 0 }

// side of a span or log record: 0 baseline, 1 candidate, -1 neither.
type classifier struct {
	o                Options
	baseFrom, baseTo int64
	candFrom, candTo int64
	windowMode       bool
}

func (c *classifier) side(r *data.Resource, t int64) int {
	if c.o.Service != "" && r.Service != c.o.Service {
		return -1
	}
	if c.o.Namespace != "" && r.Namespace != c.o.Namespace {
		return -1
	}
	if c.o.Cluster != "" && r.Cluster != c.o.Cluster {
		return -1
	}
	if c.windowMode {
		switch {
		case t >= c.baseFrom && t < c.baseTo:
			return 0
		case t >= c.candFrom && t <= c.candTo:
			return 1
		}
		return -1
	}
	if t < c.candFrom || t > c.candTo {
		return -1
	}
	if r.Revision == c.o.BaselineRevision {
		return 0
	}
	if c.o.CandidateRevision == "" || r.Revision == c.o.CandidateRevision {
		return 1
	}
	return -1
}

// Run triages in. It fails only when there is nothing to compare.
func Run(in Input, o Options) (*Report, error) {
	o.defaults()
	if o.Service == "" {
		return nil, errors.New("no service given: pass --service (the service.name of the spans, service_name in Loki)")
	}
	c, err := newClassifier(in, o)
	if err != nil {
		return nil, err
	}
	r := &Report{Service: o.Service, Namespace: o.Namespace, Cluster: o.Cluster, Quantiles: o.Quantiles,
		MinRatio: o.MinRatio, ErrorDelta: o.ErrorDelta, Alpha: o.Alpha, Findings: []Finding{}, Warnings: []string{}, Notes: []string{}}
	a := &analyzer{in: in, o: o, c: c, r: r}
	if err := a.split(); err != nil {
		return nil, err
	}
	a.compare()
	a.findings()
	for i := range r.Findings {
		f := &r.Findings[i]
		a.attribute(f)
		a.where(f)
		a.findingLogs(f)
		f.Headline = headline(f)
		f.Links = a.links(f)
	}
	a.logSummary()
	r.ExitCode = ExitNothingMoved
	if len(r.Findings) > 0 {
		r.ExitCode = ExitFindings
	}
	return r, nil
}

func newClassifier(in Input, o Options) (*classifier, error) {
	spans := in.Spans
	c := &classifier{o: o, windowMode: o.BaselineRevision == ""}
	if in.metrics() {
		if o.From.IsZero() || o.To.IsZero() || !o.To.After(o.From) {
			return nil, errors.New("span metrics need the window: --from and --to (or --window)")
		}
		c.candFrom, c.candTo = o.From.UnixNano(), o.To.UnixNano()
		if c.windowMode {
			c.baseFrom, c.baseTo = c.candFrom-(c.candTo-c.candFrom), c.candFrom
		}
		return c, nil
	}
	var lo, hi int64 = math.MaxInt64, math.MinInt64
	for i := range spans {
		s := &spans[i]
		if o.Service != "" && s.Res.Service != o.Service {
			continue
		}
		lo = min(lo, s.Start)
		hi = max(hi, s.End)
	}
	if lo > hi {
		return nil, fmt.Errorf("no spans of service %q: check --service (the spans' service.name) and the trace files", o.Service)
	}
	from, to := lo, hi
	if !o.From.IsZero() {
		from = o.From.UnixNano()
	}
	if !o.To.IsZero() {
		to = o.To.UnixNano()
	}
	if c.windowMode && o.From.IsZero() {
		from = lo + (to-lo)/2
	}
	if to <= from {
		return nil, fmt.Errorf("empty window %s..%s: --from must be before --to", time.Unix(0, from).UTC().Format(time.RFC3339), time.Unix(0, to).UTC().Format(time.RFC3339))
	}
	c.candFrom, c.candTo = from, to
	if c.windowMode {
		c.baseFrom, c.baseTo = from-(to-from), from
	}
	return c, nil
}

type analyzer struct {
	in   Input
	o    Options
	c    *classifier
	r    *Report
	ops  []*op
	byID map[opKey]*op
	// Per side: spans kept, traces, roots (spans without a parent).
	sides [2][]int32
}

func (a *analyzer) split() error {
	a.byID = map[opKey]*op{}
	var traces [2]map[data.TraceID]bool
	traces[0], traces[1] = map[data.TraceID]bool{}, map[data.TraceID]bool{}
	var revs, zones, pods [2]map[string]bool
	for i := range revs {
		revs[i], zones[i], pods[i] = map[string]bool{}, map[string]bool{}, map[string]bool{}
	}
	var first, last [2]int64
	var counts [2]float64
	for i := range a.in.Series {
		s := &a.in.Series[i]
		if s.Side != 0 && s.Side != 1 {
			continue
		}
		k := opKey{s.Span, s.Kind}
		p := a.byID[k]
		if p == nil {
			p = &op{key: k, base: sideData{hist: &stats.Histogram{}}, cand: sideData{hist: &stats.Histogram{}}}
			a.byID[k] = p
			a.ops = append(a.ops, p)
		}
		d := &p.base
		if s.Side == 1 {
			d = &p.cand
		}
		d.addSeries(s)
		counts[s.Side] += s.Count
		revs[s.Side][s.Res.Revision], zones[s.Side][s.Res.Zone], pods[s.Side][s.Res.Pod] = true, true, true
	}
	for i := range a.in.Spans {
		s := &a.in.Spans[i]
		sd := a.c.side(s.Res, s.Start)
		if sd < 0 {
			continue
		}
		k := opKey{s.Name, s.Kind}
		p := a.byID[k]
		if p == nil && a.in.metrics() {
			continue // fetched spans explain the metrics' ops, they add none
		}
		if p == nil {
			p = &op{key: k}
			a.byID[k] = p
			a.ops = append(a.ops, p)
		}
		d := &p.base
		if sd == 1 {
			d = &p.cand
		}
		d.spans = append(d.spans, int32(i))
		d.durs = append(d.durs, s.Duration())
		if s.Error {
			d.errs++
		}
		a.sides[sd] = append(a.sides[sd], int32(i))
		traces[sd][s.Trace] = true
		if !a.in.metrics() {
			revs[sd][s.Res.Revision], zones[sd][s.Res.Zone], pods[sd][s.Res.Pod] = true, true, true
		}
		if first[sd] == 0 || s.Start < first[sd] {
			first[sd] = s.Start
		}
		last[sd] = max(last[sd], s.End)
	}
	names := [2]string{"previous window", "window"}
	if !a.c.windowMode {
		names[0] = a.o.BaselineRevision
		names[1] = a.o.CandidateRevision
		if names[1] == "" {
			names[1] = "other revisions"
		}
	}
	for i, dst := range []*Side{&a.r.Baseline, &a.r.Candidate} {
		*dst = Side{Name: names[i], Spans: len(a.sides[i]), Traces: len(traces[i]),
			Revisions: keys(revs[i]), Zones: keys(zones[i]), Pods: keys(pods[i])}
		if a.in.metrics() {
			dst.Spans, dst.Fetched = int(math.Round(counts[i])), true
		}
		if a.c.windowMode || a.in.metrics() {
			from, to := a.c.baseFrom, a.c.baseTo
			if !a.c.windowMode {
				from, to = a.c.candFrom, a.c.candTo
			}
			if i == 1 {
				from, to = a.c.candFrom, a.c.candTo
			}
			dst.From, dst.To = time.Unix(0, from).UTC(), time.Unix(0, to).UTC()
		} else if first[i] != 0 {
			dst.From, dst.To = time.Unix(0, first[i]).UTC(), time.Unix(0, last[i]).UTC()
		}
	}
	a.r.Mode = "revision"
	if a.c.windowMode {
		a.r.Mode = "window"
	}
	if a.in.metrics() {
		a.r.Notes = append(a.r.Notes, fmt.Sprintf("what moved and where: the span metrics (%d spans baseline, %d candidate); the traces counted are those fetched to explain a move", a.r.Baseline.Spans, a.r.Candidate.Spans))
	}
	if a.r.Baseline.Spans == 0 || a.r.Candidate.Spans == 0 {
		which := "baseline"
		if a.r.Baseline.Spans > 0 {
			which = "candidate"
		}
		hint := "check --baseline-revision and --candidate-revision against the spans' service.version"
		if a.c.windowMode {
			hint = "widen --window or pass --from/--to that cover the data, or compare revisions with --baseline-revision"
		}
		return fmt.Errorf("no %s spans of %q (baseline %d, candidate %d spans): %s", which, a.o.Service, a.r.Baseline.Spans, a.r.Candidate.Spans, hint)
	}
	sort.Slice(a.ops, func(i, j int) bool {
		if a.ops[i].key.name != a.ops[j].key.name {
			return a.ops[i].key.name < a.ops[j].key.name
		}
		return a.ops[i].key.kind < a.ops[j].key.kind
	})
	for _, p := range a.ops {
		slices.Sort(p.base.durs)
		slices.Sort(p.cand.durs)
	}
	return nil
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		if k != "" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// test is one hypothesis in the Holm family.
type test struct {
	p      float64
	settle func(reject bool, level float64)
}

// latencyOf compares one quantile of two sides: their histograms in
// metrics mode (the gate's NewHistogramRatio, buckets up to the threshold's
// factor interpolated), else their raw durations.
func latencyOf(b, c sideData, q, minRatio float64) (Estimate, *stats.Ratio) {
	if b.hist == nil || c.hist == nil {
		return latency(b.durs, c.durs, q, minRatio)
	}
	e := Estimate{Measure: gate.QuantileName(q), Quantile: q, PUp: 1, PDown: 1}
	need := stats.MinSamples(q, stats.SETail)
	nb, nc := b.n(), c.n()
	bh, ch := normalized(b.hist), normalized(c.hist)
	if nb < need || nc < need {
		e.Reason = fmt.Sprintf("too few spans for %s: need %d per side, have %d and %d", e.Measure, need, nb, nc)
		if nb > 0 && nc > 0 {
			e.Baseline, e.Candidate = bh.Quantile(q), ch.Quantile(q)
			e.Value = e.Candidate / e.Baseline
		}
		return e, nil
	}
	r := stats.NewHistogramRatio(&bh, &ch, q, minRatio)
	if !r.Valid() {
		e.Reason = "the histograms give no quantile"
		return e, nil
	}
	e.Tested = true
	e.Baseline, e.Candidate, e.Value = r.Base, r.Cand, r.Value()
	e.PUp = r.PValueAbove(minRatio)
	e.PDown = stats.NewHistogramRatio(&ch, &bh, q, minRatio).PValueAbove(minRatio)
	return e, r
}

// latency compares one quantile of two sorted duration sets: up when the
// candidate is slower than minRatio allows, down when faster (the same
// comparison with the sides swapped, so both use PValueAbove).
func latency(base, cand []float64, q, minRatio float64) (Estimate, *stats.Ratio) {
	e := Estimate{Measure: gate.QuantileName(q), Quantile: q, PUp: 1, PDown: 1}
	need := stats.MinSamples(q, stats.SETail)
	if len(base) < need || len(cand) < need {
		e.Reason = fmt.Sprintf("too few spans for %s: need %d per side, have %d and %d", e.Measure, need, len(base), len(cand))
		if len(base) > 0 && len(cand) > 0 {
			e.Baseline, e.Candidate = stats.Quantile(base, q), stats.Quantile(cand, q)
			e.Value = e.Candidate / e.Baseline
		}
		return e, nil
	}
	r := stats.NewRawRatio(base, cand, q)
	e.Tested = true
	e.Baseline, e.Candidate, e.Value = r.Base, r.Cand, r.Value()
	e.PUp = r.PValueAbove(minRatio)
	e.PDown = stats.NewRawRatio(cand, base, q).PValueAbove(minRatio)
	return e, r
}

// minErrorSpans is the fewest spans per side an error share is compared
// on: below it a normal approximation says little.
const minErrorSpans = 30

// errorShare compares error shares: up when the candidate's rose by more
// than delta, down when it fell by more. The test is the gate's
// (stats.TwoProportionDelta) on Agresti–Caffo counts — one error and one
// success added to each side — so a side with no errors is not taken as
// knowing its share exactly (0 of 8 is not a 0% error rate).
func errorShare(xb, nb, xc, nc int, delta float64) Estimate {
	e := Estimate{Measure: "errors", PUp: 1, PDown: 1}
	if nb == 0 || nc == 0 {
		e.Reason = "no spans on one side"
		return e
	}
	e.Baseline, e.Candidate = float64(xb)/float64(nb), float64(xc)/float64(nc)
	e.Value = e.Candidate - e.Baseline
	ab, an, cb, cn := float64(xb+1), float64(nb+2), float64(xc+1), float64(nc+2)
	up := stats.TwoProportionDelta(ab, an, cb, cn, delta)
	down := stats.TwoProportionDelta(cb, cn, ab, an, delta)
	e.Low, e.High = up.Lo, up.Hi
	switch {
	case nb < minErrorSpans || nc < minErrorSpans:
		e.Reason = fmt.Sprintf("too few spans for an error share: need %d per side, have %d and %d", minErrorSpans, nb, nc)
		return e
	case xb+xc == 0:
		e.Reason = "no errors on either side"
		return e
	}
	e.Tested = true
	e.PUp, e.PDown = up.P, down.P
	return e
}

func (a *analyzer) compare() {
	var family []test
	for _, p := range a.ops {
		// Capacity fixed up front: the settle closures keep pointers into it.
		p.res = Operation{Span: p.key.name, Kind: p.key.kind, NBaseline: p.base.n(), NCand: p.cand.n(),
			Latency: make([]Estimate, 0, len(a.o.Quantiles))}
		for _, q := range a.o.Quantiles {
			e, ratio := latencyOf(p.base, p.cand, q, a.o.MinRatio)
			p.res.Latency = append(p.res.Latency, e)
			if ratio == nil {
				continue
			}
			ep := &p.res.Latency[len(p.res.Latency)-1]
			ep.Level = a.o.Alpha
			ep.Low, ep.High = ratio.Interval(a.o.Alpha)
			for _, up := range []bool{true, false} {
				pv := ep.PDown
				if up {
					pv = ep.PUp
				}
				family = append(family, test{p: pv, settle: func(reject bool, level float64) {
					if !reject {
						return
					}
					ep.Level = level
					ep.Low, ep.High = ratio.Interval(level)
					if up {
						ep.Direction, ep.score = "up", ep.Low
					} else {
						ep.Direction, ep.score = "down", 1/ep.High
					}
				}})
			}
		}
		p.res.Errors = errorShare(p.base.nErr(), p.base.n(), p.cand.nErr(), p.cand.n(), a.o.ErrorDelta)
		if e := &p.res.Errors; e.Tested {
			for _, up := range []bool{true, false} {
				pv := e.PDown
				if up {
					pv = e.PUp
				}
				family = append(family, test{p: pv, settle: func(reject bool, _ float64) {
					if !reject {
						return
					}
					// How many times the baseline's share, at least (the
					// interval's near end; a baseline of 0 counts as half an error).
					floor := math.Max(e.Baseline, 0.5/float64(p.base.n()))
					if up {
						e.Direction, e.score = "up", (e.Baseline+e.Low)/floor
					} else {
						e.Direction, e.score = "down", floor/math.Max(e.Candidate, 0.5/float64(p.cand.n()))
					}
				}})
			}
		}
	}
	ps := make([]float64, len(family))
	for i, t := range family {
		ps[i] = t.p
	}
	reject, level := stats.Holm(ps, a.o.Alpha)
	for i, t := range family {
		t.settle(reject[i], level[i])
	}
	a.r.Notes = append(a.r.Notes, fmt.Sprintf("%d tests (%d span names × %s and errors, up and down) share a familywise false-finding rate of %.3g (Holm); latency moves count from ×%.2f, error shares from %+.1f pp",
		len(family), len(a.ops), quantileList(a.o.Quantiles), a.o.Alpha, a.o.MinRatio, 100*a.o.ErrorDelta))
	few := 0
	for _, p := range a.ops {
		for _, e := range append(slices.Clone(p.res.Latency), p.res.Errors) {
			if e.Direction != "" {
				p.res.Moved = true
			}
			if strings.HasPrefix(e.Reason, "too few") {
				few++
			}
		}
		a.r.Operations = append(a.r.Operations, p.res)
	}
	if few > 0 {
		a.r.Warnings = append(a.r.Warnings, fmt.Sprintf("%d comparisons had too few spans to test (marked \"few\" or n/a): they can hide a move; widen the window", few))
	}
}

func quantileList(qs []float64) string {
	s := ""
	for i, q := range qs {
		if i > 0 {
			s += "/"
		}
		s += gate.QuantileName(q)
	}
	return s
}

// moves returns the moved estimates of an operation, strongest first.
func moves(res Operation) []Estimate {
	var out []Estimate
	for _, e := range append(slices.Clone(res.Latency), res.Errors) {
		if e.Direction != "" {
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if (out[i].Direction == "up") != (out[j].Direction == "up") {
			return out[i].Direction == "up"
		}
		return out[i].score > out[j].score
	})
	return out
}
