package source

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/releasegate/stats"
)

// Prometheus reads the span-metrics histograms (conventions.MetricSpanDuration)
// with one instant query per revision at the end of the revision's window:
// increase(...[window]) counts what the window saw. Native histograms are
// preferred over classic buckets when both exist (finer resolution).
type Prometheus struct {
	URL    string
	Client *http.Client
	Header http.Header
	// Matchers are extra PromQL label matchers, e.g. `cluster="prod",job="opsight"`,
	// added to every selector (two scrapes of one target must not be summed).
	Matchers string
}

// PromResponse is the Prometheus HTTP API envelope for an instant query.
type PromResponse struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string       `json:"resultType"`
		Result     []PromSample `json:"result"`
	} `json:"data"`
	Warnings []string `json:"warnings"`
}

// PromSample is one element of a vector: a float or a native histogram.
type PromSample struct {
	Metric    map[string]string `json:"metric"`
	Value     []json.RawMessage `json:"value"`     // [ts, "float"]
	Histogram []json.RawMessage `json:"histogram"` // [ts, {count,sum,buckets}]
}

type promHistogramBody struct {
	Count   string              `json:"count"`
	Sum     string              `json:"sum"`
	Buckets [][]json.RawMessage `json:"buckets"` // [boundary rule, "lower", "upper", "count"]
}

// Float returns a float sample's value.
func (s PromSample) Float() (float64, error) {
	if len(s.Value) != 2 {
		return 0, fmt.Errorf("sample has no value")
	}
	var str string
	if err := json.Unmarshal(s.Value[1], &str); err != nil {
		return 0, err
	}
	return strconv.ParseFloat(str, 64)
}

// NativeHistogram converts a histogram sample to buckets and count.
func (s PromSample) NativeHistogram() (*stats.Histogram, float64, error) {
	if len(s.Histogram) != 2 {
		return nil, 0, fmt.Errorf("sample has no histogram")
	}
	var body promHistogramBody
	if err := json.Unmarshal(s.Histogram[1], &body); err != nil {
		return nil, 0, err
	}
	count, err := strconv.ParseFloat(body.Count, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("histogram count %q: %v", body.Count, err)
	}
	h := &stats.Histogram{Exponential: true}
	for _, b := range body.Buckets {
		if len(b) != 4 {
			return nil, 0, fmt.Errorf("histogram bucket has %d fields, want 4", len(b))
		}
		var f [3]float64
		for i := 0; i < 3; i++ {
			var str string
			if err := json.Unmarshal(b[i+1], &str); err != nil {
				return nil, 0, fmt.Errorf("histogram bucket field: %v", err)
			}
			if f[i], err = strconv.ParseFloat(str, 64); err != nil {
				return nil, 0, fmt.Errorf("histogram bucket field %q: %v", str, err)
			}
		}
		h.Buckets = append(h.Buckets, stats.Bucket{Lower: f[0], Upper: f[1], Count: f[2]})
	}
	h.Normalize()
	return h, count, nil
}

// ParsePromResponse decodes and checks the envelope.
func ParsePromResponse(body []byte) (*PromResponse, error) {
	var r PromResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("prometheus: response is not Prometheus API JSON: %v", err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("prometheus: query failed: %s: %s", r.ErrorType, r.Error)
	}
	if r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("prometheus: expected a vector result, got %q", r.Data.ResultType)
	}
	return &r, nil
}

// promSelector builds the label matchers for one revision.
func promSelector(q Query, rev, extra string) string {
	m := []string{"revision=" + strconv.Quote(rev)}
	if e := strings.Trim(strings.TrimSpace(extra), "{}"); e != "" {
		m = append(m, e)
	}
	if q.Service != "" {
		m = append(m, "service_name="+strconv.Quote(q.Service))
	}
	if len(q.SpanNames) > 0 {
		var alts []string
		for _, n := range q.SpanNames {
			alts = append(alts, regexp.QuoteMeta(n))
		}
		m = append(m, "span_name=~"+strconv.Quote(strings.Join(alts, "|")))
	}
	if q.SpanKind != "" {
		m = append(m, "span_kind="+strconv.Quote(q.SpanKind))
	}
	return "{" + strings.Join(m, ",") + "}"
}

// promRange spells a window length for PromQL in milliseconds (at least 1 s).
func promRange(w Window) string {
	ms := w.End.Sub(w.Start).Milliseconds()
	if ms < 1000 {
		ms = 1000
	}
	return strconv.FormatInt(ms, 10) + "ms"
}

// Fetch queries both revisions.
func (p *Prometheus) Fetch(ctx context.Context, q Query) (*Result, error) {
	if p.URL == "" {
		return nil, fmt.Errorf("--prometheus-url is required for --source prometheus (e.g. http://prometheus:9090)")
	}
	for _, r := range []struct {
		flag string
		w    Window
	}{{"--baseline-window", q.Baseline.Window}, {"--candidate-window", q.Candidate.Window}} {
		if r.w.Start.IsZero() || r.w.End.IsZero() {
			return nil, fmt.Errorf("%s is required for --source prometheus: expected start,end (RFC 3339 or unix seconds)", r.flag)
		}
	}
	res := &Result{Source: "prometheus", BaselineWindow: q.Baseline.Window, CandidateWindow: q.Candidate.Window}
	ops := map[opKey]*Op{}
	get := func(m map[string]string) *Op {
		k := opKey{m["service_name"], m["span_name"]}
		if ops[k] == nil {
			ops[k] = &Op{Service: k.svc, Name: k.name}
		}
		return ops[k]
	}
	name := conventions.MetricSpanDuration
	usedClassic, usedNative := false, false
	for i, rev := range []Revision{q.Baseline, q.Candidate} {
		sel, rng := promSelector(q, rev.Name, p.Matchers), promRange(rev.Window)
		at := rev.Window.End

		native, err := p.query(ctx, fmt.Sprintf("sum by (service_name, span_name) (increase(%s%s[%s]))", name, sel, rng), at)
		if err != nil {
			return nil, err
		}
		for _, s := range native.Data.Result {
			if len(s.Histogram) == 0 {
				continue
			}
			h, count, err := s.NativeHistogram()
			if err != nil {
				return nil, fmt.Errorf("prometheus: %s: %v", name, err)
			}
			if count <= 0 {
				continue
			}
			side := sideOf(get(s.Metric), i)
			side.Hist, side.Count = h, count
			usedNative = true
		}

		classic, err := p.query(ctx, fmt.Sprintf("sum by (service_name, span_name, le) (increase(%s_bucket%s[%s]))", name, sel, rng), at)
		if err != nil {
			return nil, err
		}
		cum := map[opKey]map[float64]float64{}
		for _, s := range classic.Data.Result {
			le, err := strconv.ParseFloat(s.Metric["le"], 64)
			if err != nil {
				return nil, fmt.Errorf("prometheus: %s_bucket with bad le %q", name, s.Metric["le"])
			}
			v, err := s.Float()
			if err != nil {
				return nil, fmt.Errorf("prometheus: %s_bucket: %v", name, err)
			}
			k := opKey{s.Metric["service_name"], s.Metric["span_name"]}
			if cum[k] == nil {
				cum[k] = map[float64]float64{}
			}
			cum[k][le] = v
		}
		for k, c := range cum {
			side := sideOf(get(map[string]string{"service_name": k.svc, "span_name": k.name}), i)
			if side.Hist != nil {
				continue // native histogram already there: finer
			}
			h, count := stats.FromCumulative(c)
			if count <= 0 {
				continue
			}
			side.Hist, side.Count = h, count
			usedClassic = true
		}

		calls, err := p.query(ctx, fmt.Sprintf("sum by (service_name, span_name, status_code) (increase(%s%s[%s]))", conventions.MetricSpanCalls, sel, rng), at)
		if err != nil {
			return nil, err
		}
		for _, s := range calls.Data.Result {
			v, err := s.Float()
			if err != nil {
				return nil, fmt.Errorf("prometheus: %s: %v", conventions.MetricSpanCalls, err)
			}
			k := opKey{s.Metric["service_name"], s.Metric["span_name"]}
			op := ops[k]
			if op == nil {
				continue
			}
			side := sideOf(op, i)
			side.ErrorsKnown = true
			if s.Metric["status_code"] == "STATUS_CODE_ERROR" {
				side.Errors += v
			}
		}
	}
	for _, op := range ops {
		res.Ops = append(res.Ops, *op)
	}
	sortOps(res.Ops)
	res.Notes = append(res.Notes, "prometheus: counts come from increase(), which extrapolates to the window edges (up to about one scrape interval each side); keep windows long against the scrape interval")
	switch {
	case usedClassic && usedNative:
		res.Notes = append(res.Notes, "prometheus: native histograms where present, classic buckets elsewhere; quantiles are interpolated within buckets")
	case usedClassic:
		res.Notes = append(res.Notes, "prometheus: classic buckets only; quantiles are interpolated linearly within buckets and known only to bucket resolution")
	case usedNative:
		res.Notes = append(res.Notes, "prometheus: native histograms; quantiles are interpolated within exponential buckets")
	}
	if err := checkBoth(res, q, "prometheus "+p.URL); err != nil {
		return nil, err
	}
	return res, nil
}

func (p *Prometheus) query(ctx context.Context, promql string, at time.Time) (*PromResponse, error) {
	v := url.Values{}
	v.Set("query", promql)
	v.Set("time", strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64))
	body, err := httpGet(ctx, p.Client, p.Header, strings.TrimRight(p.URL, "/")+"/api/v1/query?"+v.Encode(), "prometheus")
	if err != nil {
		return nil, err
	}
	return ParsePromResponse(body)
}
