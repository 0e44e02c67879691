// Package tempotest replays the recorded Grafana Tempo responses in
// releasegate/source/testdata/tempo as a test server on 127.0.0.1, doing what
// real Tempo did when they were recorded:
//   - /api/search answers from the recorded spans of each revision
//     (search_reconcile_*_all.json.gz), only the traces that overlap
//     [start, end] (unix seconds), and silently cuts at limit: it returns
//     limit traces, not the most recent ones, with the same "metrics" as an
//     uncut answer. The one recorded cut request (the full window at
//     limit=1000) gets the recorded cut body byte for byte.
//   - spans beyond spss per span set are dropped, "matched" keeps the total.
//   - TraceQL metrics queries get the recorded metrics responses (recorded
//     over an earlier push of the same spans, so their window is not
//     checked); a query naming "syntax-error" gets the recorded 400
//     text/plain body, "no-such-service" the recorded empty 200.
//
// It is a package, not a _test file, so that the source tests and the
// command's end-to-end tests replay the same Tempo.
package tempotest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Window is the recorded search window (pushed_search.json, README).
const (
	WindowStart = 1796130342
	WindowEnd   = 1796130762
	// Revisions recorded.
	Baseline  = "v1.4.0"
	Candidate = "v1.5.0"
)

// Options change what the replayed Tempo does.
type Options struct {
	// Aliases serve a recorded revision under another name (A/A pairs):
	// alias -> recorded revision.
	Aliases map[string]string
	// MaxResultLimit clamps limit silently, like Tempo's
	// query_frontend.search.max_result_limit (0: no clamp).
	MaxResultLimit int
	// NoMetrics answers every TraceQL metrics query with a 400, like a Tempo
	// without metrics queries enabled.
	NoMetrics bool
}

// Request is one request the server saw and what it answered.
type Request struct {
	Path         string
	Query        map[string]string
	Traces       int  // search: traces returned
	Cut          bool // search: more traces matched than were returned
	RecordedBody bool // search: the recorded cut body was served
}

// Server is a replaying Tempo.
type Server struct {
	URL  string
	dir  string
	opts Options
	recs map[string][]trace

	mu   sync.Mutex
	reqs []Request
}

type trace struct {
	start, end int64 // unix ns
	obj        map[string]any
}

// Requests returns the requests seen so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// Fixture reads a recorded file from dir, gunzipping *.gz.
func Fixture(t testing.TB, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(name, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	return b
}

// SearchFixture names the recorded search response of a revision, all
// spans (cut=false) or cut at limit=1000.
func SearchFixture(rev string, cut bool) string {
	if cut {
		return "search_reconcile_" + rev + "_limit1000.json.gz"
	}
	return "search_reconcile_" + rev + "_all.json.gz"
}

// New starts the server on 127.0.0.1; it stops when the test ends.
func New(t testing.TB, dir string, opts Options) *Server {
	t.Helper()
	s := &Server{dir: dir, opts: opts, recs: map[string][]trace{}}
	for _, rev := range []string{Baseline, Candidate} {
		var doc struct {
			Traces []map[string]any `json:"traces"`
		}
		dec := json.NewDecoder(bytes.NewReader(Fixture(t, dir, SearchFixture(rev, false))))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			t.Fatal(err)
		}
		for _, o := range doc.Traces {
			st, err := strconv.ParseInt(fmt.Sprint(o["startTimeUnixNano"]), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			ms, err := o["durationMs"].(json.Number).Int64()
			if err != nil {
				t.Fatal(err)
			}
			s.recs[rev] = append(s.recs[rev], trace{start: st, end: st + ms*1e6, obj: o})
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serve(t, w, r) }))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// The only search the recording holds: the filter of one revision's
// Reconcile spans, selecting the duration.
var searchQ = regexp.MustCompile(`^\{resource\.service\.name="etcd-operator" && resource\.service\.version="([^"]+)" && name="Reconcile"\} \| select\(span:duration\)$`)

func (s *Server) serve(t testing.TB, w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	rec := Request{Path: r.URL.Path, Query: map[string]string{}}
	for k := range q {
		rec.Query[k] = q.Get(k)
	}
	defer func() {
		s.mu.Lock()
		s.reqs = append(s.reqs, rec)
		s.mu.Unlock()
	}()
	text := func(code int, msg string) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(code)
		io.WriteString(w, msg)
	}
	traceql := q.Get("q")
	switch {
	case strings.Contains(traceql, "syntax-error"):
		text(http.StatusBadRequest, string(Fixture(t, s.dir, "error_bad_traceql.json")))
		return
	case strings.Contains(traceql, "no-such-service") && r.URL.Path == "/api/search":
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"traces":[],"metrics":{"completedJobs":1,"totalJobs":1}}`)
		return
	case strings.Contains(traceql, "no-such-service"):
		w.Header().Set("Content-Type", "application/json")
		w.Write(Fixture(t, s.dir, "empty_unknown_service.json"))
		return
	}
	switch r.URL.Path {
	case "/api/metrics/query":
		if s.opts.NoMetrics {
			text(http.StatusBadRequest, "metrics queries are not enabled") // what a Tempo without local-blocks says is not recorded
			return
		}
		var body []byte
		switch {
		case strings.Contains(traceql, "histogram_over_time(duration)"):
			body = Fixture(t, s.dir, "instant_histogram_by_version.json")
		case strings.Contains(traceql, "quantile_over_time(duration, "):
			// Recorded for p50 and p99; other quantiles are simply absent.
			body = Fixture(t, s.dir, "instant_quantiles_by_version_and_name.json")
		case strings.Contains(traceql, "count_over_time()"):
			body = Fixture(t, s.dir, "instant_count_by_version.json")
		default:
			text(http.StatusBadRequest, "not recorded: "+traceql)
			return
		}
		// An alias is served as its recorded revision, under its own name.
		for alias, rev := range s.opts.Aliases {
			if strings.Contains(traceql, `resource.service.version="`+alias+`"`) {
				body = bytes.ReplaceAll(body, []byte(`"`+rev+`"`), []byte(`"`+alias+`"`))
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	case "/api/search":
		s.search(t, w, q, &rec, text)
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) search(t testing.TB, w http.ResponseWriter, q map[string][]string, rec *Request, text func(int, string)) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	m := searchQ.FindStringSubmatch(get("q"))
	if m == nil {
		text(http.StatusBadRequest, "not recorded: "+get("q"))
		return
	}
	rev, asked := m[1], m[1]
	if a, ok := s.opts.Aliases[rev]; ok {
		rev = a
	}
	traces, ok := s.recs[rev]
	if !ok {
		io.WriteString(w, `{"traces":[],"metrics":{"completedJobs":1,"totalJobs":1}}`)
		return
	}
	intParam := func(k string, def int64) (int64, bool) {
		v := get(k)
		if v == "" {
			return def, true
		}
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil
	}
	limit, ok1 := intParam("limit", 20) // query_frontend.search.default_result_limit
	spss, ok2 := intParam("spss", 3)    // default_spans_per_span_set
	start, ok3 := intParam("start", 0)
	end, ok4 := intParam("end", 0)
	if !ok1 || !ok2 || !ok3 || !ok4 || limit <= 0 || spss <= 0 || start <= 0 || end < start {
		text(http.StatusBadRequest, "invalid start, end, limit or spss")
		return
	}
	if s.opts.MaxResultLimit > 0 && limit > int64(s.opts.MaxResultLimit) {
		limit = int64(s.opts.MaxResultLimit)
	}
	var hits []trace
	for _, tr := range traces {
		if tr.start <= end*1e9 && tr.end >= start*1e9 {
			hits = append(hits, tr)
		}
	}
	rec.Cut = int64(len(hits)) > limit
	if rec.Cut && start == WindowStart && end == WindowEnd && limit == 1000 && asked == rev {
		rec.RecordedBody, rec.Traces = true, 1000
		w.Header().Set("Content-Type", "application/json")
		w.Write(Fixture(t, s.dir, SearchFixture(rev, true)))
		return
	}
	if rec.Cut {
		// "The first N results" of a parallel search: any N, not the latest.
		r := rand.New(rand.NewPCG(uint64(start), uint64(end)))
		r.Shuffle(len(hits), func(i, j int) { hits[i], hits[j] = hits[j], hits[i] })
		hits = hits[:limit]
		sort.Slice(hits, func(i, j int) bool { return hits[i].start > hits[j].start })
	}
	rec.Traces = len(hits)
	out := make([]map[string]any, 0, len(hits))
	for _, tr := range hits {
		o := map[string]any{}
		for k, v := range tr.obj {
			o[k] = v
		}
		o["spanSets"] = trimSets(tr.obj["spanSets"], int(spss))
		if ss, ok := tr.obj["spanSet"]; ok {
			o["spanSet"] = trimSets([]any{ss}, int(spss)).([]any)[0]
		}
		if asked != rev {
			o = rename(o, rev, asked)
		}
		out = append(out, o)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"traces": out,
		"metrics": map[string]any{"inspectedBytes": "389762", "completedJobs": 3, "totalJobs": 3}})
}

// trimSets keeps at most spss spans per span set; matched stays the total.
func trimSets(v any, spss int) any {
	sets, _ := v.([]any)
	out := make([]any, 0, len(sets))
	for _, x := range sets {
		set, _ := x.(map[string]any)
		c := map[string]any{}
		for k, v := range set {
			c[k] = v
		}
		if spans, ok := set["spans"].([]any); ok && len(spans) > spss {
			c["spans"] = spans[:spss]
		}
		out = append(out, c)
	}
	return out
}

// rename serves a trace of revision from under the alias to.
func rename(o map[string]any, from, to string) map[string]any {
	b, _ := json.Marshal(o)
	b = bytes.ReplaceAll(b, []byte(`"`+from+`"`), []byte(`"`+to+`"`))
	var c map[string]any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	d.Decode(&c)
	return c
}

// Truth is truth.json: the exact quantiles of the generated durations.
type Truth struct {
	Spans int     `json:"reconcile_spans"`
	P50   float64 `json:"p50_s"`
	P90   float64 `json:"p90_s"`
	P99   float64 `json:"p99_s"`
}

// ReadTruth reads truth.json.
func ReadTruth(t testing.TB, dir string) map[string]Truth {
	t.Helper()
	var tr map[string]Truth
	if err := json.Unmarshal(Fixture(t, dir, "truth.json"), &tr); err != nil {
		t.Fatal(err)
	}
	return tr
}

// Span is a recorded Reconcile span.
type Span struct {
	TraceID, SpanID string
	Start, Duration int64 // ns
}

// RecordedSpans lists a revision's recorded spans from the uncut search
// response, independently of the parser under test.
func RecordedSpans(t testing.TB, dir, rev string) []Span {
	t.Helper()
	var doc struct {
		Traces []struct {
			TraceID  string `json:"traceID"`
			SpanSets []struct {
				Spans []struct {
					SpanID string `json:"spanID"`
					Start  string `json:"startTimeUnixNano"`
					Dur    string `json:"durationNanos"`
				} `json:"spans"`
			} `json:"spanSets"`
		} `json:"traces"`
	}
	if err := json.Unmarshal(Fixture(t, dir, SearchFixture(rev, false)), &doc); err != nil {
		t.Fatal(err)
	}
	var out []Span
	for _, tr := range doc.Traces {
		for _, ss := range tr.SpanSets {
			for _, sp := range ss.Spans {
				st, err1 := strconv.ParseInt(sp.Start, 10, 64)
				d, err2 := strconv.ParseInt(sp.Dur, 10, 64)
				if err1 != nil || err2 != nil {
					t.Fatalf("recorded span %s: %v %v", sp.SpanID, err1, err2)
				}
				out = append(out, Span{TraceID: strings.Repeat("0", max(0, 32-len(tr.TraceID))) + tr.TraceID, SpanID: sp.SpanID, Start: st, Duration: d})
			}
		}
	}
	return out
}
