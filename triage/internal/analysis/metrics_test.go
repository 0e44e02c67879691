package analysis

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/opsight/opsight/releasegate/stats"
	"github.com/opsight/opsight/triage/internal/data"
)

// podSpans makes n reconciles (a server span with one client GET each) of
// one pod, durations log-normal around 20 ms stretched by slow.
func podSpans(rng *rand.Rand, res *data.Resource, n int, slow float64, t0 int64) []data.Span {
	var out []data.Span
	for i := 0; i < n; i++ {
		d := int64(20e6 * math.Exp(0.5*rng.NormFloat64()) * slow)
		var tr data.TraceID
		tr[0], tr[1], tr[2] = byte(i), byte(i>>8), byte(len(res.Pod))
		tr[3] = res.Pod[len(res.Pod)-1]
		start := t0 + int64(i)*1e6
		root := data.Span{Trace: tr, Name: "Reconcile", Kind: "SPAN_KIND_SERVER", Res: res, Start: start, End: start + d}
		root.ID[0] = 1
		get := data.Span{Trace: tr, Name: "GET", Kind: "SPAN_KIND_CLIENT", Res: res, Start: start + d/4, End: start + d/2, Parent: root.ID}
		get.ID[0] = 2
		out = append(out, root, get)
	}
	return out
}

// seriesOf is what the span metrics would hold for these spans: one
// series per span name, kind, revision and pod, in native-histogram-like
// buckets (factor 2^(1/8)).
func seriesOf(spans []data.Span, side func(*data.Span) int) []data.Series {
	type key struct {
		name, kind string
		res        *data.Resource
	}
	idx := map[key]int{}
	var out []data.Series
	f := math.Pow(2, 1.0/8)
	for i := range spans {
		s := &spans[i]
		k := key{s.Name, s.Kind, s.Res}
		j, ok := idx[k]
		if !ok {
			out = append(out, data.Series{Side: side(s), Span: s.Name, Kind: s.Kind, Res: data.Resource{Revision: s.Res.Revision, Pod: s.Res.Pod, Zone: s.Res.Zone},
				Hist: &stats.Histogram{Exponential: true}})
			j = len(out) - 1
			idx[k] = j
		}
		e := math.Ceil(math.Log(s.Duration()) / math.Log(f))
		se := &out[j]
		se.Hist.Buckets = append(se.Hist.Buckets, stats.Bucket{Lower: math.Pow(f, e-1), Upper: math.Pow(f, e), Count: 1})
		se.Count++
		if s.Error {
			se.Errors++
		}
	}
	for i := range out {
		out[i].Hist.Normalize()
	}
	return out
}

// TestMetricsMode: the span metrics (histograms by revision and pod) and
// the spans themselves name the same move and the same pod; an A/A on
// histograms names nothing.
func TestMetricsMode(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	base := &data.Resource{Service: "op", Revision: "v1", Pod: "base-a", Zone: "a"}
	baseB := &data.Resource{Service: "op", Revision: "v1", Pod: "base-b", Zone: "b"}
	c1 := &data.Resource{Service: "op", Revision: "v2", Pod: "cand-a1", Zone: "a"}
	c2 := &data.Resource{Service: "op", Revision: "v2", Pod: "cand-a2", Zone: "a"}
	c3 := &data.Resource{Service: "op", Revision: "v2", Pod: "cand-b", Zone: "b"}
	t0 := time.Date(2026, 12, 1, 14, 0, 0, 0, time.UTC).UnixNano()
	var spans []data.Span
	for _, p := range []struct {
		r    *data.Resource
		slow float64
	}{{base, 1}, {baseB, 1}, {c1, 1}, {c2, 2.5}, {c3, 1}} {
		spans = append(spans, podSpans(rng, p.r, 1500, p.slow, t0)...)
	}
	bySide := func(s *data.Span) int {
		if s.Res.Revision == "v1" {
			return 0
		}
		return 1
	}
	o := Options{Service: "op", BaselineRevision: "v1", From: time.Unix(0, t0-1e9), To: time.Unix(0, t0+10e9)}
	raw, err := Run(Input{Spans: spans}, o)
	if err != nil {
		t.Fatal(err)
	}
	met, err := Run(Input{Spans: spans, Series: seriesOf(spans, bySide)}, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Report{raw, met} {
		if len(r.Findings) != 1 || r.Findings[0].Span != "Reconcile" || r.Findings[0].Moves[0].Direction != "up" {
			t.Fatalf("findings %+v, want one: Reconcile slower", r.Findings)
		}
		var moved []string
		for _, s := range r.Findings[0].Where {
			if s.Dimension == "pod" {
				for _, v := range s.Values {
					if v.Moved {
						moved = append(moved, v.Value)
					}
				}
			}
		}
		if len(moved) != 1 || moved[0] != "cand-a2" {
			t.Errorf("pods moved %v, want [cand-a2]", moved)
		}
	}
	if !met.Candidate.Fetched || met.Candidate.Spans != 9000 || met.Operations[0].NCand != 4500 {
		t.Errorf("metrics side %+v, ops %+v: want the series' counts", met.Candidate, met.Operations[0])
	}
	rm, mm := raw.Findings[0].Moves[0], met.Findings[0].Moves[0]
	for _, m := range met.Findings[0].Moves {
		if m.Measure == rm.Measure {
			mm = m
		}
	}
	if math.Abs(mm.Value/rm.Value-1) > 0.1 {
		t.Errorf("%s ratio from histograms %.3f, from spans %.3f: want within 10%%", rm.Measure, mm.Value, rm.Value)
	}
	if met.Findings[0].Time == nil || !met.Findings[0].Time.Parts[0].Self {
		t.Errorf("attribution %+v: want own time first", met.Findings[0].Time)
	}

	// A/A: the candidates' spans relabelled as the baseline's twin.
	var aa []data.Span
	twin := &data.Resource{Service: "op", Revision: "v2", Pod: "twin", Zone: "a"}
	aa = append(aa, podSpans(rng, base, 3000, 1, t0)...)
	aa = append(aa, podSpans(rng, twin, 3000, 1, t0)...)
	r, err := Run(Input{Spans: aa, Series: seriesOf(aa, bySide)}, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Findings) != 0 {
		t.Errorf("A/A on histograms: %d findings", len(r.Findings))
	}
	if _, err := Run(Input{Series: seriesOf(aa, bySide)}, Options{Service: "op", BaselineRevision: "v1"}); err == nil {
		t.Error("series without a window: no error")
	}
}
