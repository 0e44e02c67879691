package analysis

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/opsight/opsight/releasegate/stats"
	"github.com/opsight/opsight/triage/internal/data"
)

// minLift is how many times more often a risk pattern must show on the
// candidate side, besides being significant, to count as risen: a pattern
// in 1% of lines instead of 0.9% is no lead.
const minLift = 2

// logSide says which side a record is on: by revision in revision mode
// (its time only checked when a window was given), by time in window mode.
func (a *analyzer) logSide(l *data.Log) (side int, untimed bool) {
	r := data.Resource{Service: l.Service, Namespace: l.Namespace, Cluster: l.Cluster, Revision: l.Revision}
	userWindow := !a.o.From.IsZero() || !a.o.To.IsZero()
	if l.Time.IsZero() && (a.c.windowMode || userWindow) {
		return -1, true
	}
	if !a.c.windowMode && !userWindow {
		// The data's own window: every record of the revisions counts.
		return a.c.side(&r, a.c.candFrom), false
	}
	return a.c.side(&r, l.Time.UnixNano()), false
}

// logSummary compares log volume and risk patterns of the two sides.
func (a *analyzer) logSummary() {
	var lines [2]int
	counts := [2]map[string]int{{}, {}}
	if lc := a.in.LogCounts; lc != nil {
		for sd := range 2 {
			lines[sd] = int(math.Round(lc.Lines[sd]))
			for p, n := range lc.Risk[sd] {
				if c := int(math.Round(n)); c > 0 {
					counts[sd][p] = c
				}
			}
		}
	}
	for i := range a.in.Logs {
		if a.in.LogCounts != nil {
			break // the counters counted every line; these are only the fetched traces'
		}
		l := &a.in.Logs[i]
		sd, untimed := a.logSide(l)
		if untimed {
			a.r.Logs.Untimed++
		}
		if sd < 0 {
			continue
		}
		lines[sd]++
		for _, p := range l.Risk {
			counts[sd][p]++
		}
	}
	s := &a.r.Logs
	s.BaselineLines, s.CandidateLines = lines[0], lines[1]
	if a.r.Baseline.Traces > 0 {
		s.BaselinePerTrace = float64(lines[0]) / float64(a.r.Baseline.Traces)
	}
	if a.r.Candidate.Traces > 0 {
		s.CandidatePerTrace = float64(lines[1]) / float64(a.r.Candidate.Traces)
	}
	s.Patterns = shifts(counts[0], counts[1], lines[0], lines[1], a.o.Alpha)
	if a.in.LogCounts != nil {
		s.BaselinePerTrace, s.CandidatePerTrace = 0, 0
		if root := a.rootCounts(); root[0] > 0 && root[1] > 0 {
			s.BaselinePerTrace, s.CandidatePerTrace = float64(lines[0])/root[0], float64(lines[1])/root[1]
		}
	}
	if len(a.in.Logs) > 0 && lines[0]+lines[1] == 0 {
		a.r.Warnings = append(a.r.Warnings, fmt.Sprintf("none of the %d log records is of service %q on either side: check --logs and --service", len(a.in.Logs), a.o.Service))
	}
	if s.Untimed > 0 {
		a.r.Notes = append(a.r.Notes, fmt.Sprintf("%d log lines carry no time and were left out of the windows", s.Untimed))
	}
	for _, p := range s.Patterns {
		if p.Rose && !a.patternInFindings(p.Pattern) {
			a.r.Warnings = append(a.r.Warnings, fmt.Sprintf("risk pattern %s rose (%d → %d lines, ×%.1f per line) though no span moved with it", p.Pattern, p.Baseline, p.Candidate, p.Lift))
		}
	}
}

// rootCounts is, in metrics mode, the span count of the busiest server
// span (a reconcile's root), standing for the number of traces.
func (a *analyzer) rootCounts() [2]float64 {
	var best [2]float64
	for _, p := range a.ops {
		if p.key.kind == "SPAN_KIND_SERVER" && p.cand.count > best[1] {
			best = [2]float64{p.base.count, p.cand.count}
		}
	}
	return best
}

// patternInFindings reports whether a pattern shows in the traces of a
// finding (checked after findingLogs ran for every finding): then the
// finding explains its rise, even when the baseline's traces of the same
// band show it as often (every failed reconcile logs "Reconciler error").
func (a *analyzer) patternInFindings(p string) bool {
	for _, f := range a.r.Findings {
		for _, s := range f.Logs.Patterns {
			if s.Pattern == p && s.Candidate > 0 {
				return true
			}
		}
	}
	return false
}

// shifts tests, per pattern, whether its share of n rose from the baseline
// (xb of nb) to the candidate (xc of nc); Holm over the patterns.
func shifts(base, cand map[string]int, nb, nc int, alpha float64) []PatternShift {
	names := map[string]bool{}
	for k := range base {
		names[k] = true
	}
	for k := range cand {
		names[k] = true
	}
	out := []PatternShift{}
	for k := range names {
		ps := PatternShift{Pattern: k, Baseline: base[k], Candidate: cand[k], P: 1}
		if nb > 0 {
			ps.BaseShare = float64(base[k]) / float64(nb)
		}
		if nc > 0 {
			ps.CandShare = float64(cand[k]) / float64(nc)
		}
		switch {
		case ps.BaseShare > 0:
			ps.Lift = ps.CandShare / ps.BaseShare
		case ps.CandShare > 0:
			ps.Lift = math.Inf(1)
		}
		if nb > 0 && nc > 0 {
			ps.P = stats.TwoProportionDelta(float64(base[k]), float64(nb), float64(cand[k]), float64(nc), 0).P
		}
		out = append(out, ps)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pattern < out[j].Pattern })
	ps := make([]float64, len(out))
	for i := range out {
		ps[i] = out[i].P
	}
	reject, _ := stats.Holm(ps, alpha)
	for i := range out {
		out[i].Rose = reject[i] && out[i].Lift >= minLift
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Rose != out[j].Rose {
			return out[i].Rose
		}
		if out[i].Rose && out[i].Lift != out[j].Lift {
			return out[i].Lift > out[j].Lift
		}
		return out[i].Candidate > out[j].Candidate
	})
	return out
}

// findingLogs reads the lines of the finding's traces: which risk patterns
// show in more of its traces than in the baseline's traces of the same band
// (slow ones for latency, failed ones for errors), and a few lines to read.
func (a *analyzer) findingLogs(f *Finding) {
	base, cand := map[string]map[[16]byte]bool{}, map[string]map[[16]byte]bool{}
	var candLines []*data.Log
	for i := range a.in.Logs {
		l := &a.in.Logs[i]
		if l.Trace.IsZero() {
			continue
		}
		var m map[string]map[[16]byte]bool
		switch {
		case f.candTraces[l.Trace]:
			m = cand
			f.Logs.Lines++
			candLines = append(candLines, l)
		case f.baseTraces[l.Trace]:
			m = base
			f.Logs.BaselineLines++
		default:
			continue
		}
		for _, p := range l.Risk {
			if m[p] == nil {
				m[p] = map[[16]byte]bool{}
			}
			m[p][l.Trace] = true
		}
	}
	bc, cc := map[string]int{}, map[string]int{}
	for p, ts := range base {
		bc[p] = len(ts)
	}
	for p, ts := range cand {
		cc[p] = len(ts)
	}
	f.Logs.Patterns = shifts(bc, cc, len(f.baseTraces), len(f.candTraces), a.o.Alpha)
	top := ""
	if len(f.Logs.Patterns) > 0 && f.Logs.Patterns[0].Rose {
		top = f.Logs.Patterns[0].Pattern
		if f.Cause == "" {
			f.Cause = "risk pattern " + top
		}
	}
	f.Logs.Sample = sample(candLines, top, 5)
}

// sample picks up to n lines to read: the top pattern's first, then errors
// and warnings, then the rest, each group in file order.
func sample(lines []*data.Log, top string, n int) []string {
	rank := func(l *data.Log) int {
		for _, p := range l.Risk {
			if p == top {
				return 0
			}
		}
		switch l.Level {
		case "error", "fatal", "panic", "dpanic":
			return 1
		case "warn", "warning":
			return 2
		}
		return 3
	}
	idx := make([]int, len(lines))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(i, j int) bool { return rank(lines[idx[i]]) < rank(lines[idx[j]]) })
	out := []string{}
	for _, i := range idx {
		if len(out) == n {
			break
		}
		out = append(out, Compact(lines[i]))
	}
	return out
}

// Compact spells a record for reading: time, level, message, the error
// and the risk patterns, instead of the whole JSON line (the Loki link has
// that).
func Compact(l *data.Log) string {
	var m map[string]any
	_ = json.Unmarshal([]byte(l.Line), &m) // the reader already parsed it
	str := func(k string) string {
		if v, ok := m[k].(string); ok {
			return v
		}
		return ""
	}
	var parts []string
	if !l.Time.IsZero() {
		parts = append(parts, l.Time.UTC().Format("15:04:05.000"))
	}
	if l.Level != "" {
		parts = append(parts, l.Level)
	}
	if l.Pod != "" {
		parts = append(parts, l.Pod)
	}
	msg := str("msg")
	if msg == "" {
		msg = str("line")
	}
	if msg == "" {
		msg = l.Line
	}
	if e := str("error"); e != "" {
		msg += ": " + e
	}
	if len(msg) > 240 {
		msg = msg[:240] + "…"
	}
	parts = append(parts, msg)
	if len(l.Risk) > 0 {
		parts = append(parts, "["+strings.Join(l.Risk, ",")+"]")
	}
	return strings.Join(parts, " ")
}
