package analysis

import (
	"math"
	"sort"
	"strings"

	"github.com/opsight/opsight/triage/internal/data"
)

// Band sizes: enough traces that a mean means something, few enough that
// assembling them stays cheap on a million spans.
const (
	minBand = 20
	maxBand = 2000
)

// band picks the spans of one side that stand for the moved measure: for a
// latency move, those at or above the side's own q-quantile (the top of the
// distribution, so the candidate's p99 is compared with the baseline's p99,
// like with like); for an error move, the failed spans.
func (a *analyzer) band(d sideData, m Estimate) []int32 {
	idx := make([]int32, len(d.spans))
	copy(idx, d.spans)
	dur := func(i int32) float64 { return a.in.Spans[i].Duration() }
	sort.SliceStable(idx, func(i, j int) bool { return dur(idx[i]) > dur(idx[j]) })
	var out []int32
	if m.Measure == "errors" {
		for _, i := range idx {
			if a.in.Spans[i].Error {
				out = append(out, i)
			}
		}
	} else {
		th := d.quantile(m.Quantile)
		for _, i := range idx {
			if dur(i) < th && len(out) >= minBand {
				break
			}
			out = append(out, i)
		}
	}
	if len(out) > maxBand {
		// Evenly through the band, slowest first, so the mean keeps its shape.
		thin := make([]int32, 0, maxBand)
		for k := 0; k < maxBand; k++ {
			thin = append(thin, out[k*len(out)/maxBand])
		}
		out = thin
	}
	return out
}

// latencyMove is the move whose band is attributed: the highest quantile
// that moved (p99 before p50: the tail is where a person starts).
func latencyMove(ms []Estimate) (Estimate, bool) {
	best, ok := Estimate{}, false
	for _, m := range ms {
		if m.Measure != "errors" && (!ok || m.Quantile > best.Quantile) {
			best, ok = m, true
		}
	}
	return best, ok
}

// attribute fills the finding's traces and, for a latency move, where the
// added time went.
func (a *analyzer) attribute(f *Finding) {
	p := a.byID[opKey{f.Span, f.Kind}]
	m, isLatency := latencyMove(f.Moves)
	if !isLatency {
		m = f.Moves[0]
	}
	cb, bb := a.band(p.cand, m), a.band(p.base, m)
	f.TraceCount = len(cb)
	f.candTraces, f.baseTraces = traceSet(a.in.Spans, cb), traceSet(a.in.Spans, bb)
	seen := map[data.TraceID]bool{}
	for _, i := range cb {
		t := a.in.Spans[i].Trace
		if !seen[t] && len(f.Traces) < a.o.MaxTraces {
			seen[t] = true
			f.Traces = append(f.Traces, t.String())
		}
	}
	f.slowerThan = math.NaN()
	if !isLatency {
		return
	}
	f.slowerThan = p.cand.quantile(m.Quantile)
	byTrace := a.assemble(f.candTraces, f.baseTraces)
	cand := a.selfTimes(cb, byTrace)
	base := a.selfTimes(bb, byTrace)
	at := &Attribution{Measure: m.Measure, NCandidate: len(cb), NBaseline: len(bb),
		CandidateMean: meanDur(a.in.Spans, cb), BaselineMean: meanDur(a.in.Spans, bb)}
	at.Added = at.CandidateMean - at.BaselineMean
	keys := map[partKey]bool{}
	for k := range cand {
		keys[k] = true
	}
	for k := range base {
		keys[k] = true
	}
	for k := range keys {
		c := Contribution{Span: k.name, Kind: k.kind, Self: k.self,
			CandidateMean: cand[k] / float64(len(cb)), BaselineMean: base[k] / float64(len(bb))}
		c.Added = c.CandidateMean - c.BaselineMean
		if at.Added != 0 {
			c.Share = c.Added / at.Added
		}
		at.Parts = append(at.Parts, c)
	}
	sort.Slice(at.Parts, func(i, j int) bool {
		pi, pj := at.Parts[i], at.Parts[j]
		if pi.Added != pj.Added {
			return pi.Added > pj.Added
		}
		return pi.Span+pi.Kind < pj.Span+pj.Kind
	})
	if at.Added < 0 {
		// An improvement: the part that gave back the most time first.
		for i, j := 0, len(at.Parts)-1; i < j; i, j = i+1, j-1 {
			at.Parts[i], at.Parts[j] = at.Parts[j], at.Parts[i]
		}
	}
	f.Time = at
	if len(at.Parts) > 0 {
		f.Cause = partName(at.Parts[0])
	}
}

func partName(c Contribution) string {
	if c.Self {
		return c.Span + " (own time)"
	}
	return c.Span + " (" + ShortKind(c.Kind) + ")"
}

// ShortKind spells SPAN_KIND_CLIENT as client.
func ShortKind(k string) string {
	return strings.ToLower(strings.TrimPrefix(k, "SPAN_KIND_"))
}

func traceSet(spans []data.Span, idx []int32) map[[16]byte]bool {
	m := make(map[[16]byte]bool, len(idx))
	for _, i := range idx {
		m[spans[i].Trace] = true
	}
	return m
}

func meanDur(spans []data.Span, idx []int32) float64 {
	if len(idx) == 0 {
		return 0
	}
	var s float64
	for _, i := range idx {
		s += spans[i].Duration()
	}
	return s / float64(len(idx))
}

// assemble gathers every span of the wanted traces (one pass), as a
// backend returns a trace by id.
func (a *analyzer) assemble(sets ...map[[16]byte]bool) map[data.TraceID][]int32 {
	out := map[data.TraceID][]int32{}
	for i := range a.in.Spans {
		t := a.in.Spans[i].Trace
		for _, s := range sets {
			if s[t] {
				out[t] = append(out[t], int32(i))
				break
			}
		}
	}
	return out
}

type partKey struct {
	name, kind string
	self       bool
}

// selfTimes sums, over the band's spans, the self time on the critical path
// of every span in their subtrees, keyed by span name (the band span's own
// time apart, as self).
func (a *analyzer) selfTimes(band []int32, byTrace map[data.TraceID][]int32) map[partKey]float64 {
	out := map[partKey]float64{}
	for _, i := range band {
		root := &a.in.Spans[i]
		kids := map[data.SpanID][]*data.Span{}
		for _, j := range byTrace[root.Trace] {
			s := &a.in.Spans[j]
			if !s.Parent.IsZero() {
				kids[s.Parent] = append(kids[s.Parent], s)
			}
		}
		CriticalPath(root, kids, func(s *data.Span, self int64) {
			k := partKey{name: s.Name, kind: s.Kind}
			if s == root {
				k.self = true
			}
			out[k] += float64(self) / 1e9
		})
	}
	return out
}

// CriticalPath walks the critical path of root's subtree backwards from its
// end: the child that finished last before the current point is on it, the
// time between that child's end and the point is the parent's own (self)
// time, and the walk goes on into the child and then from the child's start.
// Children that run in parallel with the path add nothing, so the self
// times along the path sum to root's duration.
func CriticalPath(root *data.Span, kids map[data.SpanID][]*data.Span, add func(s *data.Span, self int64)) {
	var walk func(s *data.Span, until int64, depth int)
	walk = func(s *data.Span, until int64, depth int) {
		t := min(s.End, until)
		cs := append([]*data.Span(nil), kids[s.ID]...)
		sort.Slice(cs, func(i, j int) bool { return cs[i].End > cs[j].End })
		for _, c := range cs {
			if t <= s.Start {
				break
			}
			if c.Start >= t || c == s || depth > 64 {
				continue // after the point reached, or a cycle in bad data
			}
			ce := max(min(c.End, t), s.Start)
			if t > ce {
				add(s, t-ce)
			}
			walk(c, ce, depth+1)
			t = max(c.Start, s.Start)
		}
		if t > s.Start {
			add(s, t-s.Start)
		}
	}
	walk(root, root.End, 0)
}
