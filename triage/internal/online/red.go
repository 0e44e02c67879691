package online

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/releasegate/source"
	"github.com/opsight/opsight/releasegate/stats"
	"github.com/opsight/opsight/triage/internal/data"
)

// Query runs an instant PromQL query at a time (/api/v1/query); the
// envelope and samples are the release gate's (releasegate/source).
func (c Client) Query(ctx context.Context, promql string, at time.Time) (*source.PromResponse, error) {
	q := url.Values{}
	q.Set("query", promql)
	q.Set("time", strconv.FormatFloat(float64(at.UnixMilli())/1e3, 'f', 3, 64))
	var r source.PromResponse
	if err := c.get(ctx, "/api/v1/query", q, nil, &r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("prometheus: %s: %s", r.ErrorType, r.Error)
	}
	if r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("prometheus: result type %q, want vector", r.Data.ResultType)
	}
	return &r, nil
}

// Matchers are PromQL label matchers, e.g. service_name="x", revision!="v1".
type Matchers []string

// String spells them as a selector body, {…}.
func (m Matchers) String() string { return "{" + strings.Join(m, ", ") + "}" }

// With returns m and more (m is not changed).
func (m Matchers) With(more ...string) Matchers { return append(slices.Clone(m), more...) }

// Eq is name="value".
func Eq(name, value string) string { return name + "=" + strconv.Quote(value) }

// Range spells a window length for PromQL, whole seconds (at least 1 s).
func Range(from, to time.Time) string {
	return strconv.FormatInt(max(1, int64(to.Sub(from).Round(time.Second)/time.Second)), 10) + "s"
}

// redGroup are the labels span metrics are summed by: each (span name,
// kind, revision, pod) is one data.Series. A series without a pod label
// (no per-pod target labels) gives one series per revision.
const redGroup = "span_name, span_kind, revision, pod"

// REDQueries are the PromQL queries SpanSeries runs, in order: native
// histograms, classic buckets, calls by status.
func REDQueries(sel Matchers, from, to time.Time) [3]string {
	rng := Range(from, to)
	return [3]string{
		fmt.Sprintf("sum by (%s) (increase(%s%s[%s]))", redGroup, conventions.MetricSpanDuration, sel, rng),
		fmt.Sprintf("sum by (%s, le) (increase(%s_bucket%s[%s]))", redGroup, conventions.MetricSpanDuration, sel, rng),
		fmt.Sprintf("sum by (%s, status_code) (increase(%s%s[%s]))", redGroup, conventions.MetricSpanCalls, sel, rng),
	}
}

// SpanSeries reads the span metrics (RED: calls, errors, durations) of
// [from, to] as series of one side: increase() over the window at its
// end, summed by span name, kind, revision and pod. Native histograms
// (finer) are taken where present, classic buckets elsewhere.
func (c Client) SpanSeries(ctx context.Context, sel Matchers, side int, from, to time.Time) ([]data.Series, error) {
	qs := REDQueries(sel, from, to)
	type key struct{ span, kind, rev, pod string }
	byKey := map[key]*data.Series{}
	var order []key
	get := func(m map[string]string) *data.Series {
		k := key{m["span_name"], m["span_kind"], m[conventions.LabelRevision], m[conventions.LabelPod]}
		s := byKey[k]
		if s == nil {
			s = &data.Series{Side: side, Span: k.span, Kind: k.kind, Res: data.Resource{Revision: k.rev, Pod: k.pod}}
			byKey[k] = s
			order = append(order, k)
		}
		return s
	}
	native, err := c.Query(ctx, qs[0], to)
	if err != nil {
		return nil, err
	}
	c.note("/api/v1/query", qs[0], fmt.Sprintf("%d native histogram series", len(native.Data.Result)))
	for _, smp := range native.Data.Result {
		if len(smp.Histogram) == 0 {
			continue
		}
		h, count, err := smp.NativeHistogram()
		if err != nil {
			return nil, fmt.Errorf("prometheus: %s: %v", conventions.MetricSpanDuration, err)
		}
		if count > 0 {
			s := get(smp.Metric)
			s.Hist, s.Count = h, count
		}
	}
	classic, err := c.Query(ctx, qs[1], to)
	if err != nil {
		return nil, err
	}
	c.note("/api/v1/query", qs[1], fmt.Sprintf("%d bucket series", len(classic.Data.Result)))
	cum := map[key]map[float64]float64{}
	for _, smp := range classic.Data.Result {
		le, err := strconv.ParseFloat(smp.Metric["le"], 64)
		if err != nil {
			return nil, fmt.Errorf("prometheus: %s_bucket with le %q", conventions.MetricSpanDuration, smp.Metric["le"])
		}
		v, err := smp.Float()
		if err != nil {
			return nil, fmt.Errorf("prometheus: %s_bucket: %v", conventions.MetricSpanDuration, err)
		}
		m := smp.Metric
		k := key{m["span_name"], m["span_kind"], m[conventions.LabelRevision], m[conventions.LabelPod]}
		if cum[k] == nil {
			cum[k] = map[float64]float64{}
		}
		cum[k][le] = v
	}
	for k, cm := range cum {
		if s := byKey[k]; s != nil && s.Hist != nil {
			continue // the native histogram is finer
		}
		h, count := stats.FromCumulative(cm)
		if count > 0 {
			s := get(map[string]string{"span_name": k.span, "span_kind": k.kind, conventions.LabelRevision: k.rev, conventions.LabelPod: k.pod})
			s.Hist, s.Count = h, count
		}
	}
	calls, err := c.Query(ctx, qs[2], to)
	if err != nil {
		return nil, err
	}
	c.note("/api/v1/query", qs[2], fmt.Sprintf("%d call series", len(calls.Data.Result)))
	for _, smp := range calls.Data.Result {
		v, err := smp.Float()
		if err != nil {
			return nil, fmt.Errorf("prometheus: %s: %v", conventions.MetricSpanCalls, err)
		}
		m := smp.Metric
		s := byKey[key{m["span_name"], m["span_kind"], m[conventions.LabelRevision], m[conventions.LabelPod]}]
		if s != nil && m["status_code"] == "STATUS_CODE_ERROR" {
			s.Errors += v
		}
	}
	sort.Slice(order, func(i, j int) bool {
		a, b := order[i], order[j]
		return a.span+"\x00"+a.kind+"\x00"+a.rev+"\x00"+a.pod < b.span+"\x00"+b.kind+"\x00"+b.rev+"\x00"+b.pod
	})
	out := make([]data.Series, 0, len(order))
	for _, k := range order {
		s := byKey[k]
		s.Errors = min(s.Errors, s.Count)
		out = append(out, *s)
	}
	return out, nil
}

// LogCounts reads the sidecar's log counters over [from, to] (lines, and
// lines per risk pattern) for one side.
func (c Client) LogCounts(ctx context.Context, sel Matchers, from, to time.Time) (lines float64, risk map[string]float64, err error) {
	rng := Range(from, to)
	ql := fmt.Sprintf("sum(increase(%s%s[%s]))", conventions.MetricLogRecords, sel, rng)
	r, err := c.Query(ctx, ql, to)
	if err != nil {
		return 0, nil, err
	}
	for _, s := range r.Data.Result {
		v, err := s.Float()
		if err != nil {
			return 0, nil, fmt.Errorf("prometheus: %s: %v", conventions.MetricLogRecords, err)
		}
		lines += v
	}
	c.note("/api/v1/query", ql, fmt.Sprintf("%.0f lines", lines))
	qr := fmt.Sprintf("sum by (pattern) (increase(%s%s[%s]))", conventions.MetricLogRisk, sel, rng)
	if r, err = c.Query(ctx, qr, to); err != nil {
		return 0, nil, err
	}
	risk = map[string]float64{}
	for _, s := range r.Data.Result {
		v, err := s.Float()
		if err != nil {
			return 0, nil, fmt.Errorf("prometheus: %s: %v", conventions.MetricLogRisk, err)
		}
		risk[s.Metric["pattern"]] += v
	}
	c.note("/api/v1/query", qr, fmt.Sprintf("%d patterns", len(risk)))
	return lines, risk, nil
}
