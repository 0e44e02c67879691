package online

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/releasegate/stats"
	"github.com/opsight/opsight/triage/internal/analysis"
	"github.com/opsight/opsight/triage/internal/data"
	"github.com/opsight/opsight/triage/internal/links"
)

// Sources are the backends of an online triage.
type Sources struct {
	Prometheus, Tempo, Loki string // base URLs
	HTTP                    *http.Client
	// Traces is how many traces are fetched per side of a finding (the
	// band attributed; default 30), Findings how many findings get traces
	// (default 3), Parallel how many requests run at once (default 4).
	Traces, Findings, Parallel int
}

func (s *Sources) defaults() {
	if s.Traces == 0 {
		s.Traces = 30
	}
	if s.Findings == 0 {
		s.Findings = 3
	}
	if s.Parallel == 0 {
		s.Parallel = 4
	}
}

// minExemplars is how many trace ids a side wants from the exemplars
// before a Tempo search adds more: the analysis' smallest band.
const minExemplars = 20

type recorder struct {
	mu sync.Mutex
	qs []analysis.Query
}

func (r *recorder) client(backend, base string, hc *http.Client) Client {
	return Client{URL: base, HTTP: hc, Record: func(api, q, answer string) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.qs = append(r.qs, analysis.Query{Backend: backend, API: api, Query: q, Answer: answer})
	}}
}

// window is one side's time range.
type window struct{ from, to time.Time }

// Run is the online triage. What moved and where come from the span
// metrics in Prometheus (by revision and pod; zones from the traces' pods);
// for each finding, trace ids from the exemplars of its slow buckets (or
// failed calls) on both sides, from a Tempo search when the exemplars are
// fewer than 20; those traces from Tempo; their lines from Loki by trace_id;
// log volume and risk patterns of the windows from the sidecar's counters.
// o.From and o.To bound the (candidate) window.
func Run(ctx context.Context, src Sources, o analysis.Options) (*analysis.Report, error) {
	src.defaults()
	if src.Prometheus == "" {
		return nil, errors.New("online: --prometheus is required (the span metrics say what moved)")
	}
	if o.Service == "" {
		return nil, errors.New("online: --service is required (service_name of the span metrics)")
	}
	if o.From.IsZero() || o.To.IsZero() || !o.To.After(o.From) {
		return nil, errors.New("online: a window is required: --window (ending at --to or now) or --from and --to")
	}
	rec := &recorder{}
	prom := rec.client("prometheus", src.Prometheus, src.HTTP)
	var warnings []string

	sides := [2]window{{o.From, o.To}, {o.From, o.To}}
	if o.BaselineRevision == "" {
		sides[0] = window{o.From.Add(-o.To.Sub(o.From)), o.From}
	}
	base := Matchers{Eq(conventions.LabelServiceName, o.Service)}
	if o.Namespace != "" {
		base = base.With(Eq(conventions.LabelNamespace, o.Namespace))
	}
	if o.Cluster != "" {
		base = base.With(Eq(conventions.LabelCluster, o.Cluster))
	}
	sels := bySide(base, o)
	// The sidecar's log counters carry the revision and the scrape's target
	// labels (service_name, namespace, pod), not the cluster, which is
	// usually an external label of the Prometheus itself.
	logBase := Matchers{Eq(conventions.LabelServiceName, o.Service)}
	if o.Namespace != "" {
		logBase = logBase.With(Eq(conventions.LabelNamespace, o.Namespace))
	}
	logSels := bySide(logBase, o)

	var in analysis.Input
	lc := &data.LogCounts{}
	for sd := range 2 {
		ss, err := prom.SpanSeries(ctx, sels[sd], sd, sides[sd].from, sides[sd].to)
		if err != nil {
			return nil, err
		}
		in.Series = append(in.Series, ss...)
		if lc.Lines[sd], lc.Risk[sd], err = prom.LogCounts(ctx, logSels[sd], sides[sd].from, sides[sd].to); err != nil {
			return nil, err
		}
	}
	if lc.Lines[0]+lc.Lines[1] > 0 {
		in.LogCounts = lc
	} else {
		warnings = append(warnings, fmt.Sprintf("the sidecar's log counters (%s) have no lines for %s: the log volume shown is that of the fetched traces only", conventions.MetricLogRecords, logSels[1]))
	}
	first, err := analysis.Run(in, o)
	if err != nil {
		return nil, err
	}

	// Trace ids per finding and side: exemplars first, Tempo search after.
	want := map[data.TraceID]bool{}
	var order []data.TraceID
	add := func(id data.TraceID) {
		if !id.IsZero() && !want[id] {
			want[id] = true
			order = append(order, id)
		}
	}
	podTrace := map[string]data.TraceID{} // one trace per pod: its zone
	var tempo Client
	if src.Tempo != "" {
		tempo = rec.client("tempo", src.Tempo, src.HTTP)
	}
	sel := links.Selector{Service: o.Service, Namespace: o.Namespace, Cluster: o.Cluster}
	for fi, f := range first.Findings {
		if fi == src.Findings {
			warnings = append(warnings, fmt.Sprintf("traces fetched for the first %d findings only", src.Findings))
			break
		}
		m, latency := topMove(f.Moves)
		for sd := range 2 {
			th := m.Baseline
			if sd == 1 {
				th = m.Candidate
			}
			if latency {
				// The band is the spans at or above the quantile, at least
				// the slowest 20 (as the analysis takes it): where the
				// quantile leaves fewer, down to the 20th slowest.
				th = min(th, bandFloor(in.Series, f.Span, f.Kind, sd, minExemplars))
			}
			q := conventions.MetricSpanCalls + sels[sd].With(Eq("span_name", f.Span), Eq("span_kind", f.Kind), Eq("status_code", "STATUS_CODE_ERROR")).String()
			if latency {
				q = sels[sd].With(`__name__=~"`+conventions.MetricSpanDuration+`(_bucket)?"`, Eq("span_name", f.Span), Eq("span_kind", f.Kind)).String()
			}
			ex, err := prom.Exemplars(ctx, q, sides[sd].from, sides[sd].to)
			if err != nil {
				return nil, err
			}
			var keep []Exemplar
			for _, e := range ex {
				if e.Time.Before(sides[sd].from) || e.Time.After(sides[sd].to) {
					continue
				}
				if p := e.Series[conventions.LabelPod]; p != "" {
					if _, ok := podTrace[p]; !ok {
						podTrace[p] = e.Trace
					}
				}
				if !latency || e.Value >= th {
					keep = append(keep, e)
				}
			}
			sort.SliceStable(keep, func(i, j int) bool { return keep[i].Value > keep[j].Value })
			ids := map[data.TraceID]bool{}
			for _, e := range keep {
				if len(ids) < src.Traces {
					ids[e.Trace] = true
				}
			}
			prom.note("/api/v1/query_exemplars", q, fmt.Sprintf("%d exemplars, %d in the band (%s %s): %d traces", len(ex), len(keep), sideName(sd), bandName(m, th), len(ids)))
			for _, e := range keep {
				if ids[e.Trace] {
					add(e.Trace)
				}
			}
			if len(ids) < minExemplars && src.Tempo != "" {
				rev := o.BaselineRevision
				if sd == 1 {
					rev = o.CandidateRevision
				}
				slower := time.Duration(0)
				if latency {
					slower = time.Duration(th * 1e9)
				}
				tq := sel.SlowSpansTraceQL(f.Span, f.Kind, slower, rev, "", !latency)
				found, err := tempo.Search(ctx, tq, sides[sd].from, sides[sd].to, src.Traces)
				if err != nil {
					return nil, err
				}
				for _, id := range found {
					if len(ids) < src.Traces && !ids[id] {
						ids[id] = true
						add(id)
					}
				}
			}
			if len(ids) < minExemplars {
				warnings = append(warnings, fmt.Sprintf("%s (%s) %s: %d traces of the band found (exemplars%s), fewer than %d: its attribution stands on few traces",
					f.Span, analysis.ShortKind(f.Kind), sideName(sd), len(ids), map[bool]string{true: " and Tempo search", false: ""}[src.Tempo != ""], minExemplars))
			}
		}
	}

	// The traces, then every pod's zone (one trace of a pod not seen yet).
	if src.Tempo == "" {
		if len(order) > 0 {
			warnings = append(warnings, "no --tempo: the added time is not attributed and the traces' lines are not read")
		}
	} else {
		spans, err := fetchTraces(ctx, tempo, order, src.Parallel)
		if err != nil {
			return nil, err
		}
		zones := podZones(spans)
		var extra []data.TraceID
		for p, id := range podTrace {
			if _, ok := zones[p]; !ok && !want[id] {
				extra = append(extra, id)
			}
		}
		sort.Slice(extra, func(i, j int) bool { return extra[i].String() < extra[j].String() })
		more, err := fetchTraces(ctx, tempo, extra, src.Parallel)
		if err != nil {
			return nil, err
		}
		spans = append(spans, more...)
		zones = podZones(spans)
		var unknown []string
		for i := range in.Series {
			s := &in.Series[i]
			if z, ok := zones[s.Res.Pod]; ok {
				s.Res.Zone = z
			} else if s.Res.Pod != "" && !contains(unknown, s.Res.Pod) {
				unknown = append(unknown, s.Res.Pod)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			warnings = append(warnings, fmt.Sprintf("zone unknown for pods %s (no trace of theirs fetched)", strings.Join(unknown, ", ")))
		}
		in.Spans = spans
	}

	// The lines of the traces fetched.
	if src.Loki != "" && len(in.Spans) > 0 {
		loki := rec.client("loki", src.Loki, src.HTTP)
		ids := map[data.TraceID]bool{}
		var list []data.TraceID
		for i := range in.Spans {
			if t := in.Spans[i].Trace; !ids[t] {
				ids[t] = true
				list = append(list, t)
			}
		}
		from, to := sides[0].from, sides[1].to
		logs, err := fetchLogs(ctx, loki, sel, list, from.Add(-5*time.Minute), to.Add(5*time.Minute), src.Parallel)
		if err != nil {
			return nil, err
		}
		in.Logs = logs
	} else if src.Loki == "" && len(in.Spans) > 0 {
		warnings = append(warnings, "no --loki: the traces' log lines are not read")
	}

	r, err := analysis.Run(in, o)
	if err != nil {
		return nil, err
	}
	r.Queries = rec.qs
	r.Warnings = append(r.Warnings, warnings...)
	return r, nil
}

// bandFloor is the duration of the n-th slowest span of an op's side, read
// from its span metrics (0 when there are fewer).
func bandFloor(series []data.Series, span, kind string, side, n int) float64 {
	var h stats.Histogram
	for i := range series {
		s := &series[i]
		if s.Side == side && s.Span == span && s.Kind == kind && s.Hist != nil {
			h.Buckets = append(h.Buckets, s.Hist.Buckets...)
			h.Exponential = h.Exponential || s.Hist.Exponential
		}
	}
	h.Normalize()
	total := h.Total()
	if total <= float64(n) {
		return 0
	}
	return h.Quantile(1 - float64(n)/total)
}

// bySide narrows a selector to each side's revisions (revision mode).
func bySide(base Matchers, o analysis.Options) [2]Matchers {
	sels := [2]Matchers{base, base}
	if o.BaselineRevision != "" {
		sels[0] = base.With(Eq(conventions.LabelRevision, o.BaselineRevision))
		if o.CandidateRevision != "" {
			sels[1] = base.With(Eq(conventions.LabelRevision, o.CandidateRevision))
		} else {
			sels[1] = base.With(conventions.LabelRevision + "!=" + fmt.Sprintf("%q", o.BaselineRevision))
		}
	}
	return sels
}

// topMove is the move whose band is fetched: the highest latency quantile
// that moved, else the error share.
func topMove(ms []analysis.Estimate) (analysis.Estimate, bool) {
	best, ok := analysis.Estimate{}, false
	for _, m := range ms {
		if m.Measure != "errors" && (!ok || m.Quantile > best.Quantile) {
			best, ok = m, true
		}
	}
	if !ok && len(ms) > 0 {
		return ms[0], false
	}
	return best, ok
}

func sideName(sd int) string {
	if sd == 0 {
		return "baseline"
	}
	return "candidate"
}

func bandName(m analysis.Estimate, th float64) string {
	if m.Measure == "errors" {
		return "failed"
	}
	return fmt.Sprintf("%s ≥ %s", m.Measure, analysis.Seconds(th))
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func podZones(spans []data.Span) map[string]string {
	out := map[string]string{}
	for i := range spans {
		if r := spans[i].Res; r.Pod != "" && r.Zone != "" {
			out[r.Pod] = r.Zone
		}
	}
	return out
}

// fetchTraces gets traces by id, parallel at most n; a trace Tempo does
// not know (404: not yet searchable, or aged out) is left out.
func fetchTraces(ctx context.Context, c Client, ids []data.TraceID, n int) ([]data.Span, error) {
	type got struct {
		spans   []data.Span
		missing bool
	}
	res, err := eachTrace(ids, n, func(id data.TraceID) (got, error) {
		spans, err := c.Trace(ctx, id.String())
		if err != nil && strings.Contains(err.Error(), " 404 ") {
			return got{missing: true}, nil
		}
		return got{spans: spans}, err
	})
	if err != nil {
		return nil, err
	}
	var out []data.Span
	nMissing := 0
	for _, r := range res {
		if r.missing {
			nMissing++
		}
		out = append(out, r.spans...)
	}
	if len(ids) > 0 {
		c.note("/api/v2/traces/<id>", fmt.Sprintf("%d trace ids", len(ids)), fmt.Sprintf("%d spans; %d not found", len(out), nMissing))
	}
	return out, nil
}

// eachTrace calls f for every id, at most n at a time, and returns the
// results in the order of ids, or the first error in that order.
func eachTrace[T any](ids []data.TraceID, n int, f func(data.TraceID) (T, error)) ([]T, error) {
	res := make([]T, len(ids))
	errs := make([]error, len(ids))
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			res[i], errs[i] = f(id)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return res, nil
}

// TraceLinesLogQL is the query for one trace's lines: the stream selector
// of the service and trace_id in structured metadata (CONVENTIONS.md).
func TraceLinesLogQL(sel links.Selector, id data.TraceID) string {
	m := []string{Eq(conventions.LabelServiceName, sel.Service)}
	if sel.Namespace != "" {
		m = append(m, Eq(conventions.LabelNamespace, sel.Namespace))
	}
	if sel.Cluster != "" {
		m = append(m, Eq(conventions.LabelCluster, sel.Cluster))
	}
	return "{" + strings.Join(m, ", ") + "} | " + Eq(conventions.LogTraceID, id.String())
}

// fetchLogs reads each trace's lines from Loki, parallel at most n.
func fetchLogs(ctx context.Context, c Client, sel links.Selector, ids []data.TraceID, from, to time.Time, n int) ([]data.Log, error) {
	res, err := eachTrace(ids, n, func(id data.TraceID) ([]data.Log, error) {
		return c.Logs(ctx, TraceLinesLogQL(sel, id), from, to, 1000)
	})
	if err != nil {
		return nil, err
	}
	var out []data.Log
	for _, r := range res {
		out = append(out, r...)
	}
	q := strings.Replace(TraceLinesLogQL(sel, data.TraceID{}), data.TraceID{}.String(), "<trace id>", 1)
	c.note("/loki/api/v1/query_range", fmt.Sprintf("%s (one query per trace, %d traces)", q, len(ids)), fmt.Sprintf("%d lines", len(out)))
	return out, nil
}
