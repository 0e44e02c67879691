package analysis

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/opsight/opsight/releasegate/stats"
	"github.com/opsight/opsight/triage/internal/data"
)

type dimension struct {
	name string
	get  func(*data.Resource) string
}

var dimensions = []dimension{
	{"revision", func(r *data.Resource) string { return r.Revision }},
	{"zone", func(r *data.Resource) string { return r.Zone }},
	{"pod", func(r *data.Resource) string { return r.Pod }},
}

// where tests the finding's moves on the candidate spans of each revision,
// zone and pod: did it start with a rollout, is it one zone, one pod? A zone
// is compared with the baseline's spans in the same zone (zones differ
// anyway: network distance to the API server), a pod with its zone's, when
// those are enough; else with the whole baseline. Holm runs over each
// dimension's tests.
func (a *analyzer) where(f *Finding) {
	p := a.byID[opKey{f.Span, f.Kind}]
	podZone := a.podZones(p)
	moved := map[string][]string{}
	total := map[string][]string{}
	for _, dim := range dimensions {
		groups := a.candGroups(p, dim)
		values := make([]string, 0, len(groups))
		for v := range groups {
			values = append(values, v)
		}
		sort.Strings(values)
		// Capacity fixed up front: the settle closures keep pointers into it.
		split := Split{Dimension: dim.name, Values: make([]SplitValue, 0, len(values))}
		var family []test
		for _, v := range values {
			cd := groups[v]
			sv := SplitValue{Value: v, N: cd.n(), Against: "all"}
			zone := ""
			switch dim.name {
			case "zone":
				zone = v
			case "pod":
				zone = podZone[v]
				sv.Zone = zone
			}
			bd := p.base
			if zone != "" {
				if same := a.baseInZone(p, zone); enough(same.n(), f.Moves) {
					bd, sv.Against = same, "same zone"
				}
			}
			split.Values = append(split.Values, sv)
			sp := &split.Values[len(split.Values)-1]
			tested := false
			for _, m := range f.Moves {
				var e Estimate
				if m.Measure == "errors" {
					e = errorShare(bd.nErr(), bd.n(), cd.nErr(), cd.n(), a.o.ErrorDelta)
				} else {
					var r *stats.Ratio
					e, r = latencyOf(bd, cd, m.Quantile, a.o.MinRatio)
					if r != nil {
						e.Low, e.High = r.Interval(a.o.Alpha)
					}
				}
				if !e.Tested {
					continue
				}
				tested = true
				sp.Estimates = append(sp.Estimates, e)
				k := len(sp.Estimates) - 1
				pv := e.PUp
				if m.Direction == "down" {
					pv = e.PDown
				}
				family = append(family, test{p: pv, settle: func(reject bool, _ float64) {
					if reject {
						sp.Moved = true
						sp.Estimates[k].Direction = m.Direction
					}
				}})
			}
			sp.TooFew = !tested
		}
		ps := make([]float64, len(family))
		for i, t := range family {
			ps[i] = t.p
		}
		reject, level := stats.Holm(ps, a.o.Alpha)
		for i, t := range family {
			t.settle(reject[i], level[i])
		}
		for _, v := range split.Values {
			total[dim.name] = append(total[dim.name], v.Value)
			if v.Moved {
				moved[dim.name] = append(moved[dim.name], v.Value)
			}
		}
		split.Summary = summarize(dim.name, split.Values)
		f.Where = append(f.Where, split)
	}
	if m := moved["revision"]; len(m) == 1 {
		f.singleRev = m[0]
	}
	if m := moved["zone"]; len(m) == 1 && len(total["zone"]) > 1 {
		f.singleZone = m[0]
	}
	f.WhereText = a.whereText(moved, total, podZone)
}

// enough reports whether n spans can test every latency move (errors need no minimum).
func enough(n int, ms []Estimate) bool {
	for _, m := range ms {
		if m.Measure != "errors" && n < stats.MinSamples(m.Quantile, stats.SETail) {
			return false
		}
	}
	return n > 0
}

// podZones maps the op's candidate pods to their zones.
func (a *analyzer) podZones(p *op) map[string]string {
	out := map[string]string{}
	if a.in.metrics() {
		for i := range a.in.Series {
			s := &a.in.Series[i]
			if s.Side == 1 && s.Span == p.key.name && s.Kind == p.key.kind {
				out[s.Res.Pod] = s.Res.Zone
			}
		}
		return out
	}
	for _, i := range p.cand.spans {
		r := a.in.Spans[i].Res
		out[r.Pod] = r.Zone
	}
	return out
}

// candGroups splits the op's candidate side by one dimension: its spans,
// or in metrics mode its series.
func (a *analyzer) candGroups(p *op, dim dimension) map[string]sideData {
	out := map[string]sideData{}
	if a.in.metrics() {
		for i := range a.in.Series {
			s := &a.in.Series[i]
			if s.Side == 1 && s.Span == p.key.name && s.Kind == p.key.kind {
				v := dim.get(&s.Res)
				d := out[v]
				d.addSeries(s)
				out[v] = d
			}
		}
		return out
	}
	idx := map[string][]int32{}
	for _, i := range p.cand.spans {
		v := dim.get(a.in.Spans[i].Res)
		idx[v] = append(idx[v], i)
	}
	for v, is := range idx {
		out[v] = a.sideOf(is)
	}
	return out
}

// baseInZone is the op's baseline side in one zone.
func (a *analyzer) baseInZone(p *op, zone string) sideData {
	if a.in.metrics() {
		var d sideData
		for i := range a.in.Series {
			s := &a.in.Series[i]
			if s.Side == 0 && s.Span == p.key.name && s.Kind == p.key.kind && s.Res.Zone == zone {
				d.addSeries(s)
			}
		}
		return d
	}
	var same []int32
	for _, i := range p.base.spans {
		if a.in.Spans[i].Res.Zone == zone {
			same = append(same, i)
		}
	}
	return a.sideOf(same)
}

func (a *analyzer) sideOf(idx []int32) sideData {
	d := sideData{spans: idx, durs: make([]float64, len(idx))}
	for k, i := range idx {
		s := &a.in.Spans[i]
		d.durs[k] = s.Duration()
		if s.Error {
			d.errs++
		}
	}
	slices.Sort(d.durs)
	return d
}

func summarize(dim string, vs []SplitValue) string {
	var moved, tooFew []string
	for _, v := range vs {
		if v.Moved {
			moved = append(moved, v.Value)
		}
		if v.TooFew {
			tooFew = append(tooFew, v.Value)
		}
	}
	var s string
	switch {
	case len(vs) == 1:
		s = fmt.Sprintf("one %s only: %s", dim, vs[0].Value)
	case len(moved) == len(vs):
		s = fmt.Sprintf("every %s (%d)", dim, len(vs))
	case len(moved) == 0:
		s = fmt.Sprintf("no single %s stands out", dim)
	default:
		s = fmt.Sprintf("%s %s (%d of %d)", dim, strings.Join(moved, ", "), len(moved), len(vs))
	}
	if len(tooFew) > 0 {
		s += fmt.Sprintf("; too few spans to tell for %d", len(tooFew))
	}
	return s
}

// whereText says in one line whether the move came with a rollout, and
// whether it is one zone or one pod.
func (a *analyzer) whereText(moved, total map[string][]string, podZone map[string]string) string {
	var parts []string
	newRevs := []string{}
	for _, r := range a.r.Candidate.Revisions {
		if !slices.Contains(a.r.Baseline.Revisions, r) {
			newRevs = append(newRevs, r)
		}
	}
	mr := moved["revision"]
	switch {
	case !a.c.windowMode && len(mr) > 0:
		parts = append(parts, fmt.Sprintf("revision %s (baseline %s)", strings.Join(mr, ", "), a.o.BaselineRevision))
	case a.c.windowMode && len(mr) > 0 && len(newRevs) > 0 && subset(mr, newRevs):
		parts = append(parts, fmt.Sprintf("started with the rollout of %s (%s)", strings.Join(mr, ", "), a.firstSeen(mr)))
	case a.c.windowMode && len(newRevs) == 0:
		parts = append(parts, "no rollout in the window (the same revisions before and during)")
	case len(mr) > 0:
		parts = append(parts, "revision "+strings.Join(mr, ", "))
	}
	mz, tz := moved["zone"], total["zone"]
	switch {
	case len(tz) > 1 && len(mz) > 0 && len(mz) < len(tz):
		parts = append(parts, fmt.Sprintf("zone %s only (%d of %d)", strings.Join(mz, ", "), len(mz), len(tz)))
	case len(tz) > 1 && len(mz) == len(tz):
		parts = append(parts, fmt.Sprintf("every zone (%d)", len(tz)))
	}
	mp, tp := moved["pod"], total["pod"]
	var inZones []string
	for _, p := range tp {
		if slices.Contains(mz, podZone[p]) {
			inZones = append(inZones, p)
		}
	}
	switch {
	case len(tp) > 1 && len(mp) == 1 && len(inZones) > 1:
		parts = append(parts, "one pod: "+mp[0])
	case len(mz) > 0 && len(mz) < len(tz) && len(mp) == len(inZones) && subset(mp, inZones):
		if len(inZones) > 1 {
			parts = append(parts, fmt.Sprintf("every pod there (%d)", len(mp)))
		} // one pod in the zone: the zone says it
	case len(tp) > 1 && len(mp) == len(tp):
		parts = append(parts, fmt.Sprintf("every pod (%d)", len(tp)))
	case len(mp) > 0 && len(tp) > 1:
		parts = append(parts, fmt.Sprintf("pods %s (%d of %d)", strings.Join(mp, ", "), len(mp), len(tp)))
	}
	if len(parts) == 0 {
		return "no single revision, zone or pod stands out"
	}
	return strings.Join(parts, "; ")
}

func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// firstSeen says when the first span of the revisions started.
func (a *analyzer) firstSeen(revs []string) string {
	var first int64
	for _, i := range a.sides[1] {
		s := &a.in.Spans[i]
		if slices.Contains(revs, s.Res.Revision) && (first == 0 || s.Start < first) {
			first = s.Start
		}
	}
	return "first span " + time.Unix(0, first).UTC().Format(time.RFC3339)
}
