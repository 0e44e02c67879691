package analysis

import (
	"sort"

	"github.com/opsight/opsight/triage/internal/data"
)

// findings turns moved operations into findings. A span whose parent span
// moved the same way is not a finding of its own: it is listed under its
// parent's (the entry point a person starts from), whose attribution says
// how much of the added time it explains.
func (a *analyzer) findings() {
	var movers []*op
	for _, p := range a.ops {
		if p.res.Moved {
			movers = append(movers, p)
		}
	}
	if len(movers) == 0 {
		return
	}
	parent := a.parentOps(movers)
	moved := map[opKey][]Estimate{}
	for _, p := range movers {
		moved[p.key] = moves(p.res)
	}
	sameWay := func(child, par []Estimate) bool {
		for _, c := range child {
			for _, q := range par {
				if c.Direction == q.Direction && (c.Measure == "errors") == (q.Measure == "errors") {
					return true
				}
			}
		}
		return false
	}
	explained := map[opKey]opKey{}
	for _, p := range movers {
		// Walk up while the parent moved the same way.
		k := p.key
		for seen := 0; seen < 16; seen++ {
			pk, ok := parent[k]
			if !ok || len(moved[pk]) == 0 || !sameWay(moved[p.key], moved[pk]) {
				break
			}
			k = pk
		}
		if k != p.key {
			explained[p.key] = k
		}
	}
	for _, p := range movers {
		if _, ok := explained[p.key]; ok {
			continue
		}
		ms := moved[p.key]
		f := Finding{Span: p.key.name, Kind: p.key.kind, Moves: ms, Traces: []string{}, Where: []Split{}, Links: []Link{},
			score: ms[0].score, up: ms[0].Direction == "up"}
		for _, c := range movers {
			if explained[c.key] == p.key {
				cm := moved[c.key]
				f.Explains = append(f.Explains, Moved{Span: c.key.name, Kind: c.key.kind, Measure: cm[0]})
			}
		}
		a.r.Findings = append(a.r.Findings, f)
	}
	sort.SliceStable(a.r.Findings, func(i, j int) bool {
		fi, fj := a.r.Findings[i], a.r.Findings[j]
		if fi.up != fj.up {
			return fi.up
		}
		return fi.score > fj.score
	})
	for i := range a.r.Findings {
		a.r.Findings[i].Rank = i + 1
	}
}

// parentOps finds, for each mover, the span name its candidate spans most
// often hang under (from up to 2000 of them: one pass over the spans).
func (a *analyzer) parentOps(movers []*op) map[opKey]opKey {
	type ref struct {
		t data.TraceID
		s data.SpanID
	}
	want := map[ref][]opKey{}
	for _, p := range movers {
		step := max(1, len(p.cand.spans)/2000)
		for i := 0; i < len(p.cand.spans); i += step {
			s := &a.in.Spans[p.cand.spans[i]]
			if !s.Parent.IsZero() {
				r := ref{s.Trace, s.Parent}
				want[r] = append(want[r], p.key)
			}
		}
	}
	votes := map[opKey]map[opKey]int{}
	for _, idx := range a.sides[1] {
		s := &a.in.Spans[idx]
		ks, ok := want[ref{s.Trace, s.ID}]
		if !ok {
			continue
		}
		for _, k := range ks {
			if votes[k] == nil {
				votes[k] = map[opKey]int{}
			}
			votes[k][opKey{s.Name, s.Kind}]++
		}
	}
	out := map[opKey]opKey{}
	for k, v := range votes {
		best, n := opKey{}, 0
		for pk, c := range v {
			if c > n || (c == n && (pk.name < best.name || (pk.name == best.name && pk.kind < best.kind))) {
				best, n = pk, c
			}
		}
		if best != k {
			out[k] = best
		}
	}
	return out
}
