package source

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/opsight/opsight/releasegate/stats"
)

// Tempo reads span durations from Grafana Tempo, in one of two ways:
//   - metrics: TraceQL metrics (histogram_over_time, instant queries). Cheap,
//     but durations come in power-of-two buckets, so a quantile is only known
//     within a factor of 2.
//   - search: the raw durations of every matching span through TraceQL
//     search, paged by time (temposearch.go). Exact, and bounded by caps.
//
// Mode auto (the default) searches whenever the buckets are coarser than the
// smallest gating threshold, which is any threshold below +100%.
type Tempo struct {
	URL    string // e.g. http://tempo:3200
	Client *http.Client
	Header http.Header // e.g. X-Scope-OrgID for multi-tenant Tempo

	Mode string // TempoAuto (""), TempoMetrics or TempoSearch
	// Threshold is the smallest gating relative increase (0.15 = +15%);
	// auto compares it with the bucket factor. 0 = unknown: search.
	Threshold float64
	// Search paging and caps; 0 takes the Default* value.
	PageLimit, SpansPerSet, MaxSpans, MaxRequests int
}

// Tempo modes (--tempo-mode).
const (
	TempoAuto    = "auto"
	TempoMetrics = "metrics"
	TempoSearch  = "search"
)

// TempoBucketFactor is the resolution of Tempo's duration histograms.
const TempoBucketFactor = 2.0

// TempoResolutionNote is attached to every Tempo metrics result.
const TempoResolutionNote = "tempo: durations come in power-of-two nanosecond buckets, so each quantile is only known within a factor of 2 (resolution factor 2); shifts smaller than that are inconclusive unless they cross bucket bounds"

// TempoResponse is the part of a TraceQL metrics response the gate reads.
type TempoResponse struct {
	Series []TempoSeries `json:"series"`
}

// TempoSeries is one series: labels, and an instant value or range samples.
type TempoSeries struct {
	Labels  []TempoLabel  `json:"labels"`
	Value   *float64      `json:"value"`
	Samples []TempoSample `json:"samples"`
}

// TempoLabel is a key and an OTLP AnyValue-like value.
type TempoLabel struct {
	Key   string `json:"key"`
	Value struct {
		StringValue *string  `json:"stringValue"`
		DoubleValue *float64 `json:"doubleValue"`
		IntValue    *string  `json:"intValue"`
		BoolValue   *bool    `json:"boolValue"`
	} `json:"value"`
}

// TempoSample is one step of a range query; Value nil means no data.
type TempoSample struct {
	TimestampMs string   `json:"timestampMs"`
	Value       *float64 `json:"value"`
}

// Label returns a label's value as text (doubles in Go's shortest form).
func (s TempoSeries) Label(key string) (string, bool) {
	for _, l := range s.Labels {
		if l.Key != key {
			continue
		}
		v := l.Value
		switch {
		case v.StringValue != nil:
			return *v.StringValue, true
		case v.DoubleValue != nil:
			return strconv.FormatFloat(*v.DoubleValue, 'g', -1, 64), true
		case v.IntValue != nil:
			return *v.IntValue, true
		case v.BoolValue != nil:
			return strconv.FormatBool(*v.BoolValue), true
		}
		return "", true
	}
	return "", false
}

// Total is the instant value, or the sum of a range query's samples.
func (s TempoSeries) Total() float64 {
	if s.Value != nil {
		return *s.Value
	}
	var t float64
	for _, x := range s.Samples {
		if x.Value != nil {
			t += *x.Value
		}
	}
	return t
}

// ParseTempoResponse decodes a TraceQL metrics body.
func ParseTempoResponse(body []byte) (*TempoResponse, error) {
	var r TempoResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("tempo: response is not TraceQL metrics JSON: %v", err)
	}
	for i, s := range r.Series {
		for _, x := range s.Samples {
			if _, err := strconv.ParseInt(x.TimestampMs, 10, 64); x.TimestampMs != "" && err != nil {
				return nil, fmt.Errorf("tempo: series %d: bad timestampMs %q", i, x.TimestampMs)
			}
		}
	}
	return &r, nil
}

const (
	tempoVersion = "resource.service.version"
	tempoService = "resource.service.name"
	tempoBucket  = "__bucket"
)

// traceQLString quotes s as a TraceQL string literal.
func traceQLString(s string) string { return strconv.Quote(s) }

// tempoFilter builds the span selector for one revision.
func tempoFilter(q Query, rev string) string {
	conds := []string{tempoVersion + "=" + traceQLString(rev)}
	if q.Service != "" {
		conds = append([]string{tempoService + "=" + traceQLString(q.Service)}, conds...)
	}
	if len(q.SpanNames) == 1 {
		conds = append(conds, "name="+traceQLString(q.SpanNames[0]))
	} else if len(q.SpanNames) > 1 {
		var ors []string
		for _, n := range q.SpanNames {
			ors = append(ors, "name="+traceQLString(n))
		}
		conds = append(conds, "("+strings.Join(ors, " || ")+")")
	}
	if q.SpanKind != "" {
		conds = append(conds, "kind="+strings.ToLower(strings.TrimPrefix(q.SpanKind, "SPAN_KIND_")))
	}
	return "{" + strings.Join(conds, " && ") + "}"
}

// Fetch picks the mode and reads both revisions.
func (t *Tempo) Fetch(ctx context.Context, q Query) (*Result, error) {
	if t.URL == "" {
		return nil, fmt.Errorf("--tempo-url is required for --source tempo (e.g. http://tempo:3200)")
	}
	coarse := !(t.Threshold > 0 && 1+t.Threshold >= TempoBucketFactor)
	switch t.Mode {
	case "", TempoAuto:
		if coarse {
			why := "auto: power-of-two buckets cannot resolve the threshold"
			if t.Threshold > 0 {
				why = fmt.Sprintf("auto: power-of-two buckets (x%g) cannot resolve a %+.0f%% threshold", TempoBucketFactor, 100*t.Threshold)
			}
			return t.fetchSearch(ctx, q, why)
		}
		return t.fetchMetrics(ctx, q)
	case TempoSearch:
		return t.fetchSearch(ctx, q, "--tempo-mode search")
	case TempoMetrics:
		res, err := t.fetchMetrics(ctx, q)
		if err == nil && coarse {
			res.Notes = append(res.Notes, "tempo: --tempo-mode metrics cannot resolve a threshold below +100%; --tempo-mode auto or search reads the raw durations instead")
		}
		return res, err
	}
	return nil, fmt.Errorf("--tempo-mode %q: expected auto, metrics or search", t.Mode)
}

// fetchMetrics runs, for each revision over its own window,
// histogram_over_time for the durations and count_over_time by status for
// the error share.
func (t *Tempo) fetchMetrics(ctx context.Context, q Query) (*Result, error) {
	res := &Result{Source: "tempo", BaselineWindow: q.Baseline.Window, CandidateWindow: q.Candidate.Window,
		Notes: []string{TempoResolutionNote}}
	ops := map[opKey]*Op{}
	get := func(svc, name string) *Op {
		k := opKey{svc, name}
		if ops[k] == nil {
			ops[k] = &Op{Service: svc, Name: name}
		}
		return ops[k]
	}
	by := "by (" + tempoService + ", " + tempoVersion + ", name)"
	for i, rev := range []Revision{q.Baseline, q.Candidate} {
		filter := tempoFilter(q, rev.Name)
		hist, err := t.query(ctx, filter+" | histogram_over_time(duration) "+by, rev.Window)
		if err != nil {
			return nil, err
		}
		for _, s := range hist.Series {
			if v, ok := s.Label(tempoVersion); ok && v != rev.Name {
				continue
			}
			ub, ok := s.Label(tempoBucket)
			if !ok {
				return nil, fmt.Errorf("tempo: histogram series without %s label; is this Tempo 2.6 or newer?", tempoBucket)
			}
			up, err := strconv.ParseFloat(ub, 64)
			if err != nil || up <= 0 {
				return nil, fmt.Errorf("tempo: bad %s %q", tempoBucket, ub)
			}
			svc, name := t.opLabels(s, q)
			side := sideOf(get(svc, name), i)
			if side.Hist == nil {
				side.Hist = &stats.Histogram{Exponential: true}
			}
			c := s.Total()
			// Buckets are powers of two of nanoseconds, labelled by their upper bound.
			side.Hist.Buckets = append(side.Hist.Buckets, stats.Bucket{Lower: up / 2, Upper: up, Count: c})
			side.Count += c
		}
		if len(q.Quantiles) > 0 {
			t.reportQuantiles(ctx, q, i, rev, filter, by, get, res)
		}
		if _, _, err := t.counts(ctx, q, i, rev, filter, get); err != nil {
			return nil, err
		}
	}
	for _, op := range ops {
		for _, s := range []*Side{&op.Baseline, &op.Candidate} {
			if s.Hist != nil {
				s.Hist.Normalize()
			}
		}
		res.Ops = append(res.Ops, *op)
	}
	sortOps(res.Ops)
	if err := checkBoth(res, q, "tempo "+t.URL); err != nil {
		return nil, err
	}
	return res, nil
}

// reportQuantiles asks Tempo for its own quantile_over_time, to show next to
// ours; failure only costs the cross-check, so it becomes a note.
func (t *Tempo) reportQuantiles(ctx context.Context, q Query, i int, rev Revision, filter, by string, get func(svc, name string) *Op, res *Result) {
	ps := make([]string, len(q.Quantiles))
	for k, p := range q.Quantiles {
		ps[k] = strconv.FormatFloat(p, 'g', -1, 64)
	}
	r, err := t.query(ctx, filter+" | quantile_over_time(duration, "+strings.Join(ps, ", ")+") "+by, rev.Window)
	if err != nil {
		res.Notes = append(res.Notes, "tempo: quantile_over_time cross-check unavailable: "+err.Error())
		return
	}
	for _, s := range r.Series {
		if v, ok := s.Label(tempoVersion); ok && v != rev.Name {
			continue
		}
		pl, ok := s.Label("p")
		if !ok {
			continue
		}
		p, err := strconv.ParseFloat(pl, 64)
		if err != nil || s.Value == nil {
			continue
		}
		svc, name := t.opLabels(s, q)
		if !q.MatchName(name) {
			continue // a stored response may carry more than was asked
		}
		side := sideOf(get(svc, name), i)
		if side.Reported == nil {
			side.Reported = map[float64]float64{}
		}
		side.Reported[p] = *s.Value
	}
}

func sideOf(op *Op, i int) *Side {
	if i == 0 {
		return &op.Baseline
	}
	return &op.Candidate
}

// opLabels names the operation of a series; when Tempo did not split by a
// label (older versions, or one selected name) the query fills it in.
func (t *Tempo) opLabels(s TempoSeries, q Query) (svc, name string) {
	svc, ok := s.Label(tempoService)
	if !ok {
		svc = q.Service
	}
	name, ok = s.Label("name")
	if !ok {
		name = strings.Join(q.SpanNames, "|")
		if name == "" {
			name = "(all spans)"
		}
	}
	return svc, name
}

func (t *Tempo) query(ctx context.Context, traceql string, w Window) (*TempoResponse, error) {
	v := url.Values{}
	v.Set("q", traceql)
	v.Set("start", strconv.FormatInt(w.Start.Unix(), 10))
	v.Set("end", strconv.FormatInt(w.End.Unix(), 10))
	u := strings.TrimRight(t.URL, "/") + "/api/metrics/query?" + v.Encode()
	body, err := httpGet(ctx, t.Client, t.Header, u, "tempo")
	if err != nil {
		return nil, err
	}
	return ParseTempoResponse(body)
}

// httpGet fetches u and turns transport errors and non-200 answers into
// messages that say what to check.
func httpGet(ctx context.Context, c *http.Client, h http.Header, u, what string) ([]byte, error) {
	if c == nil {
		c = &http.Client{Timeout: 60 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: bad URL %q: %v", what, u, err)
	}
	for k, vs := range h {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s unreachable: %v (check the --%s-url flag and that the server is up)", what, err, what)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 512<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: reading response: %v", what, err)
	}
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(body))
		if len(msg) > 500 {
			msg = msg[:500] + "…"
		}
		return nil, fmt.Errorf("%s answered HTTP %d for %s: %s%s", what, resp.StatusCode, redact(u), msg, httpHint(what, resp.StatusCode))
	}
	return body, nil
}

// httpHint says what to check for an HTTP error status.
func httpHint(what string, code int) string {
	switch {
	case code == http.StatusBadRequest:
		return " (the query was rejected: check the values of --service, --span-name and --span-kind)"
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return " (check --header: the tenant id, e.g. 'X-Scope-OrgID: ops', or 'Authorization: …')"
	case code == http.StatusNotFound:
		return fmt.Sprintf(" (check --%s-url: it must be %s's own HTTP API base, e.g. http://%s:%s, not a UI or a path)", what, what, what, map[string]string{"tempo": "3200", "prometheus": "9090"}[what])
	case code == http.StatusTooManyRequests || code >= 500:
		return " (the server is overloaded or failing: rerun later, or narrow the windows)"
	}
	return ""
}

func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	p.User = nil
	s, _ := url.PathUnescape(p.String())
	return s
}
