package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opsight/opsight/releasegate/source/tempotest"
	"github.com/opsight/opsight/releasegate/stats"
)

var (
	tempoDir     = filepath.Join("testdata", "tempo")
	searchWindow = Window{Start: time.Unix(tempotest.WindowStart, 0), End: time.Unix(tempotest.WindowEnd, 0)}
)

func reconcileQuery(base, cand string) Query {
	return Query{Service: "etcd-operator", SpanNames: []string{"Reconcile"}, Quantiles: []float64{0.5, 0.9, 0.99},
		Baseline: Revision{Name: base, Window: searchWindow}, Candidate: Revision{Name: cand, Window: searchWindow}}
}

// orderStat is the p-quantile as truth.json defines it: the ceil(p·n)-th
// smallest duration.
func orderStat(sorted []float64, p float64) float64 {
	return sorted[int(math.Ceil(p*float64(len(sorted))))-1]
}

func TestParseTempoSearchRecorded(t *testing.T) {
	truth := tempotest.ReadTruth(t, tempoDir)
	tests := []struct {
		file          string
		spans, traces int
		notSent       int
		named         bool // spans carry their name (the filter names it)
		rev           string
	}{
		{tempotest.SearchFixture("v1.4.0", false), 1500, 1500, 0, true, "v1.4.0"},
		{tempotest.SearchFixture("v1.5.0", false), 1500, 1500, 0, true, "v1.5.0"},
		{tempotest.SearchFixture("v1.4.0", true), 1000, 1000, 0, true, "v1.4.0"},
		{tempotest.SearchFixture("v1.5.0", true), 1000, 1000, 0, true, "v1.5.0"},
		{"search_select_duration.json", 3, 3, 0, true, "v1.5.0"},
		{"search_service.json", 10, 5, 0, false, ""}, // two spans per set, no name selected
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			r, err := ParseTempoSearch(tempotest.Fixture(t, tempoDir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			spans, notSent, err := r.Spans()
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Traces) != tc.traces || len(spans) != tc.spans || notSent != tc.notSent {
				t.Fatalf("%d traces, %d spans, %d not sent; want %d, %d, %d", len(r.Traces), len(spans), notSent, tc.traces, tc.spans, tc.notSent)
			}
			var durs []float64
			short := 0
			for _, sp := range spans {
				if len(sp.TraceID) != 32 || strings.Trim(sp.TraceID, "0123456789abcdef") != "" {
					t.Fatalf("trace id %q not padded to 32 hex digits", sp.TraceID)
				}
				if (sp.Name == "Reconcile") != tc.named || sp.Version != tc.rev || sp.DurationNanos <= 0 || sp.Start < 1.7e18 {
					t.Fatalf("span %+v", sp)
				}
				durs = append(durs, float64(sp.DurationNanos)/1e9)
				if strings.HasPrefix(sp.TraceID, "00") {
					short++
				}
			}
			if tc.spans >= 1000 && short == 0 {
				t.Errorf("no trace id needed padding; the recording has 29-31 digit ids")
			}
			if tc.spans != 1500 {
				return
			}
			// Search gives the exact durations: the quantiles are truth.json's.
			sort.Float64s(durs)
			tr := truth[tc.rev]
			for _, c := range []struct{ p, want float64 }{{0.5, tr.P50}, {0.9, tr.P90}, {0.99, tr.P99}} {
				if got := orderStat(durs, c.p); got != c.want {
					t.Errorf("p%g %v, truth %v", 100*c.p, got, c.want)
				}
			}
		})
	}
}

func TestParseTempoSearchShapes(t *testing.T) {
	tests := []struct {
		name, body    string
		spans, unsent int
		err           string
	}{
		{"spss cut", `{"traces":[{"traceID":"ab","spanSets":[{"spans":[{"spanID":"1","durationNanos":"5"}],"matched":3}]}]}`, 1, 2, ""},
		{"old spanSet only", `{"traces":[{"traceID":"ab","spanSet":{"spans":[{"spanID":"1","durationNanos":"5"},{"spanID":"2","durationNanos":7}],"matched":2}}]}`, 2, 0, ""},
		{"span repeated across sets", `{"traces":[{"traceID":"ab","spanSets":[{"spans":[{"spanID":"1","durationNanos":"5"}],"matched":1},{"spans":[{"spanID":"1","durationNanos":"5"}],"matched":1}]}]}`, 1, 0, ""},
		{"no traces", `{"traces":[],"metrics":{}}`, 0, 0, ""},
		{"negative duration", `{"traces":[{"traceID":"ab","spanSets":[{"spans":[{"spanID":"1","durationNanos":"-5"}]}]}]}`, 0, 0, "not an unsigned integer"},
		{"missing duration", `{"traces":[{"traceID":"ab","spanSets":[{"spans":[{"spanID":"1"}]}]}]}`, 0, 0, "no durationNanos"},
		{"overflow", `{"traces":[{"traceID":"ab","spanSets":[{"spans":[{"spanID":"1","durationNanos":"18446744073709551615"}]}]}]}`, 0, 0, "out of range"},
		{"text/plain error body", "parse error at line 1, col 40: syntax error: unexpected |", 0, 0, "not TraceQL search JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseTempoSearch([]byte(tc.body))
			var spans []TempoSpan
			var unsent int
			if err == nil {
				spans, unsent, err = r.Spans()
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || len(spans) != tc.spans || unsent != tc.unsent {
				t.Fatalf("%d spans, %d unsent, %v; want %d, %d", len(spans), unsent, err, tc.spans, tc.unsent)
			}
		})
	}
}

// searchRequests lists the /api/search requests and checks each is one the
// recording can answer: the window inside the recorded one, the caps sent.
func searchRequests(t *testing.T, srv *tempotest.Server, limit int) []tempotest.Request {
	t.Helper()
	var out []tempotest.Request
	for _, r := range srv.Requests() {
		if r.Path != "/api/search" {
			continue
		}
		a, _ := strconv.ParseInt(r.Query["start"], 10, 64)
		b, _ := strconv.ParseInt(r.Query["end"], 10, 64)
		if a < tempotest.WindowStart || b > tempotest.WindowEnd || b <= a || r.Query["limit"] != strconv.Itoa(limit) || r.Query["spss"] != "100" {
			t.Errorf("request %v", r.Query)
		}
		out = append(out, r)
	}
	return out
}

// checkSplits asserts every page that came back full was asked again as
// its two halves.
func checkSplits(t *testing.T, reqs []tempotest.Request) (cut int) {
	t.Helper()
	asked := map[[2]string]bool{}
	for _, r := range reqs {
		asked[[2]string{r.Query["start"], r.Query["end"]}] = true
	}
	for _, r := range reqs {
		if !r.Cut {
			continue
		}
		cut++
		a, _ := strconv.ParseInt(r.Query["start"], 10, 64)
		b, _ := strconv.ParseInt(r.Query["end"], 10, 64)
		m := strconv.FormatInt(a+(b-a)/2, 10)
		if !asked[[2]string{r.Query["start"], m}] || !asked[[2]string{m, r.Query["end"]}] {
			t.Errorf("cut page %s..%s was not split into ..%s..", r.Query["start"], r.Query["end"], m)
		}
	}
	return cut
}

func TestTempoSearchAgainstTruth(t *testing.T) {
	srv := tempotest.New(t, tempoDir, tempotest.Options{})
	res, err := (&Tempo{URL: srv.URL, Threshold: 0.15}).Fetch(context.Background(), reconcileQuery("v1.4.0", "v1.5.0"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Ops) != 1 || res.Ops[0].Service != "etcd-operator" || res.Ops[0].Name != "Reconcile" {
		t.Fatalf("ops %+v", res.Ops)
	}
	reqs := searchRequests(t, srv, DefaultTempoPageLimit)
	if len(reqs) < 2 {
		t.Fatalf("%d search requests", len(reqs))
	}
	checkSplits(t, reqs)
	for _, r := range srv.Requests() {
		if strings.Contains(r.Query["q"], "histogram_over_time") {
			t.Errorf("auto mode at +15%% asked for the histogram: %s", r.Query["q"])
		}
	}
	truth := tempotest.ReadTruth(t, tempoDir)
	op := res.Ops[0]
	for _, c := range []struct {
		rev  string
		side Side
	}{{"v1.4.0", op.Baseline}, {"v1.5.0", op.Candidate}} {
		tr := truth[c.rev]
		if c.side.Hist != nil || len(c.side.Durations) != tr.Spans || int(c.side.Count) != tr.Spans {
			t.Fatalf("%s: %d durations, count %v, want %d raw", c.rev, len(c.side.Durations), c.side.Count, tr.Spans)
		}
		// The very spans Tempo holds, each once (an independent decoder of
		// the recording says which).
		var want []float64
		for _, sp := range tempotest.RecordedSpans(t, tempoDir, c.rev) {
			want = append(want, float64(sp.Duration)/1e9)
		}
		sort.Float64s(want)
		for i := range want {
			if c.side.Durations[i] != want[i] {
				t.Fatalf("%s: duration %d is %v, recorded %v", c.rev, i, c.side.Durations[i], want[i])
			}
		}
		for _, qt := range []struct{ p, want float64 }{{0.5, tr.P50}, {0.9, tr.P90}, {0.99, tr.P99}} {
			if got := orderStat(c.side.Durations, qt.p); got != qt.want {
				t.Errorf("%s p%g: order statistic %v, truth %v", c.rev, 100*qt.p, got, qt.want)
			}
			// The gate's estimate (Harrell–Davis) differs from the order
			// statistic by less than its own 90% interval, which holds the truth.
			e := stats.EstimateRaw(c.side.Durations, qt.p)
			if !(e.Lo <= qt.want && qt.want <= e.Hi) || math.Abs(e.Q/qt.want-1) > 0.05 {
				t.Errorf("%s p%g: estimate %v [%v, %v], truth %v", c.rev, 100*qt.p, e.Q, e.Lo, e.Hi, qt.want)
			}
			t.Logf("%s p%g: search %.6fs (90%% [%.4f, %.4f]), truth %.6fs", c.rev, 100*qt.p, e.Q, e.Lo, e.Hi, qt.want)
		}
	}
	notes := strings.Join(res.Notes, "\n")
	if !strings.Contains(notes, "raw span durations from TraceQL search (auto: power-of-two buckets (x2) cannot resolve a +15% threshold): 1500 baseline and 1500 candidate spans") {
		t.Errorf("notes:\n%s", notes)
	}
	if strings.Contains(notes, "factor of 2") {
		t.Errorf("raw durations must not carry the bucket note:\n%s", notes)
	}
}

func TestTempoSearchSplitsCutPages(t *testing.T) {
	t.Run("recorded cut at limit=1000", func(t *testing.T) {
		// Without TraceQL metrics there is no count to size pages by: the
		// first request is the recorded one over the whole window, and
		// Tempo's answer (1000 traces, nothing saying more exist) is the
		// recorded cut body.
		srv := tempotest.New(t, tempoDir, tempotest.Options{NoMetrics: true})
		res, err := (&Tempo{URL: srv.URL, Mode: TempoSearch}).Fetch(context.Background(), reconcileQuery("v1.4.0", "v1.5.0"))
		if err != nil {
			t.Fatal(err)
		}
		reqs := searchRequests(t, srv, 1000)
		for i, rev := range []string{"v1.4.0", "v1.5.0"} {
			var first *tempotest.Request
			for k := range reqs {
				if strings.Contains(reqs[k].Query["q"], `"`+rev+`"`) {
					first = &reqs[k]
					break
				}
			}
			if first == nil || !first.RecordedBody || first.Query["start"] != "1796130342" || first.Query["end"] != "1796130762" {
				t.Fatalf("%s: first request %+v is not the recorded cut", rev, first)
			}
			if n := []Side{res.Ops[0].Baseline, res.Ops[0].Candidate}[i].Count; n != 1500 {
				t.Errorf("%s: %v spans after splitting, want all 1500", rev, n)
			}
		}
		if checkSplits(t, reqs) < 2 {
			t.Errorf("expected the cut pages of both revisions to be split")
		}
		if !strings.Contains(strings.Join(res.Notes, "\n"), "search completeness unchecked") {
			t.Errorf("notes %q", res.Notes)
		}
	})
	t.Run("small pages", func(t *testing.T) {
		srv := tempotest.New(t, tempoDir, tempotest.Options{})
		res, err := (&Tempo{URL: srv.URL, Mode: TempoSearch, PageLimit: 64}).Fetch(context.Background(), reconcileQuery("v1.4.0", "v1.5.0"))
		if err != nil {
			t.Fatal(err)
		}
		reqs := searchRequests(t, srv, 64)
		if op := res.Ops[0]; op.Baseline.Count != 1500 || op.Candidate.Count != 1500 {
			t.Errorf("counts %v / %v", op.Baseline.Count, op.Candidate.Count)
		}
		cut := checkSplits(t, reqs)
		t.Logf("%d requests, %d cut pages split", len(reqs), cut)
		if cut == 0 {
			t.Error("no page came back full at limit 64; the test does not exercise splitting")
		}
	})
}

func TestTempoSearchCaps(t *testing.T) {
	tests := []struct {
		name       string
		opts       tempotest.Options
		tempo      Tempo
		want       []string
		noSearches bool // refused from the metrics count before searching
	}{
		{"span cap from the metrics count", tempotest.Options{}, Tempo{MaxSpans: 1000},
			[]string{"baseline revision \"v1.4.0\" has 1500 matching spans", "--tempo-max-spans 1000", "narrow --baseline-window", "raise --tempo-max-spans"}, true},
		{"span cap while paging", tempotest.Options{NoMetrics: true}, Tempo{MaxSpans: 1000},
			[]string{"more than 1000 matching spans", "--tempo-max-spans 1000", "narrow --baseline-window"}, false},
		{"request cap", tempotest.Options{}, Tempo{MaxRequests: 3},
			[]string{"3 search requests (--tempo-max-requests 3) did not cover", "raise --tempo-max-requests"}, false},
		{"full one-second page", tempotest.Options{}, Tempo{PageLimit: 5},
			[]string{"more than 5 traces", "within one second", "raise --tempo-page-limit"}, false},
		{"limit clamped by the server", tempotest.Options{MaxResultLimit: 400}, Tempo{},
			[]string{"search returned", "of the 1500 spans TraceQL metrics count", "max_result_limit", "--tempo-page-limit at or below it"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := tempotest.New(t, tempoDir, tc.opts)
			tp := tc.tempo
			tp.URL, tp.Mode = srv.URL, TempoSearch
			res, err := tp.Fetch(context.Background(), reconcileQuery("v1.4.0", "v1.5.0"))
			if !errors.Is(err, ErrCap) {
				t.Fatalf("error %v (result %v), want ErrCap", err, res)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if n := len(searchRequests(t, srv, orDefault(tp.PageLimit, DefaultTempoPageLimit))); tc.noSearches != (n == 0) {
				t.Errorf("%d search requests", n)
			}
		})
	}
	// A page limit at the server's clamp works: full pages are split.
	srv := tempotest.New(t, tempoDir, tempotest.Options{MaxResultLimit: 400})
	res, err := (&Tempo{URL: srv.URL, Mode: TempoSearch, PageLimit: 400}).Fetch(context.Background(), reconcileQuery("v1.4.0", "v1.5.0"))
	if err != nil || res.Ops[0].Baseline.Count != 1500 {
		t.Errorf("page limit at the clamp: %v %+v", err, res)
	}
}

func TestTempoSearchSpssCut(t *testing.T) {
	// Three spans matched in one trace, one sent: splitting time cannot
	// recover them, only a larger spss can.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/search" {
			w.Write([]byte(`{"series":[]}`))
			return
		}
		fmt.Fprintf(w, `{"traces":[{"traceID":"ab","spanSets":[{"spans":[{"spanID":"1","startTimeUnixNano":"%d","durationNanos":"5"}],"matched":3}]}]}`,
			time.Unix(tempotest.WindowStart+10, 0).UnixNano())
	}))
	defer srv.Close()
	_, err := (&Tempo{URL: srv.URL, Mode: TempoSearch}).Fetch(context.Background(), reconcileQuery("a", "b"))
	if !errors.Is(err, ErrCap) || !strings.Contains(err.Error(), "2 matching spans") || !strings.Contains(err.Error(), "raise --tempo-spss") {
		t.Fatalf("error %v", err)
	}
}

func TestTempoModes(t *testing.T) {
	tests := []struct {
		mode      string
		threshold float64
		search    bool
		note      string
	}{
		{"", 0.15, true, "auto: power-of-two buckets (x2) cannot resolve a +15% threshold"},
		{TempoAuto, 0, true, "auto: power-of-two buckets cannot resolve the threshold"},
		{TempoAuto, 1.5, false, "resolution factor 2"}, // +150%: the buckets resolve it
		{TempoMetrics, 0.15, false, "--tempo-mode metrics cannot resolve a threshold below +100%"},
		{TempoSearch, 1.5, true, "(--tempo-mode search)"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%g", tc.mode, tc.threshold), func(t *testing.T) {
			srv := tempotest.New(t, tempoDir, tempotest.Options{})
			res, err := (&Tempo{URL: srv.URL, Mode: tc.mode, Threshold: tc.threshold}).Fetch(context.Background(), reconcileQuery("v1.4.0", "v1.5.0"))
			if err != nil {
				t.Fatal(err)
			}
			searched := len(searchRequests(t, srv, DefaultTempoPageLimit)) > 0
			raw := res.Ops[0].Baseline.Hist == nil
			if searched != tc.search || raw != tc.search {
				t.Errorf("searched %v, raw durations %v; want %v", searched, raw, tc.search)
			}
			if !strings.Contains(strings.Join(res.Notes, "\n"), tc.note) {
				t.Errorf("notes lack %q:\n%s", tc.note, strings.Join(res.Notes, "\n"))
			}
		})
	}
	_, err := (&Tempo{URL: "http://127.0.0.1:1", Mode: "histogram"}).Fetch(context.Background(), reconcileQuery("a", "b"))
	if err == nil || !strings.Contains(err.Error(), `--tempo-mode "histogram": expected auto, metrics or search`) {
		t.Errorf("bad mode: %v", err)
	}
}

func TestTempoSearchErrors(t *testing.T) {
	srv := tempotest.New(t, tempoDir, tempotest.Options{})
	tests := []struct {
		name, svc string
		want      []string
		empty     bool
	}{
		{"recorded 400 text/plain", "syntax-error", []string{"tempo answered HTTP 400", "parse error at line 1, col 40: syntax error: unexpected |", "check the values of --service"}, false},
		{"nothing matches", "no-such-service", []string{"no spans for service=no-such-service"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := reconcileQuery("v1.4.0", "v1.5.0")
			q.Service = tc.svc
			_, err := (&Tempo{URL: srv.URL, Mode: TempoSearch}).Fetch(context.Background(), q)
			if err == nil || errors.Is(err, ErrEmpty) != tc.empty {
				t.Fatalf("error %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
		})
	}
	// Statuses other than 400 say what to check.
	for code, want := range map[int]string{401: "check --header", 404: "check --tempo-url", 503: "rerun later"} {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", code) }))
		_, err := (&Tempo{URL: s.URL, Mode: TempoSearch}).Fetch(context.Background(), reconcileQuery("a", "b"))
		s.Close()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("HTTP %d: %v, want %q", code, err, want)
		}
	}
}

func TestTempoSelect(t *testing.T) {
	f := tempoFilter(reconcileQuery("v1.4.0", "x"), "v1.4.0")
	// The recorded request, exactly (README: search_reconcile_*).
	want := `{resource.service.name="etcd-operator" && resource.service.version="v1.4.0" && name="Reconcile"} | select(span:duration)`
	if got := tempoSelect(reconcileQuery("v1.4.0", "x"), f); got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
	if got := tempoSelect(Query{}, "{}"); got != "{} | select(span:duration, span:name, resource.service.name)" {
		t.Errorf("unpinned name and service: %s", got)
	}
}

func FuzzParseTempoSearch(f *testing.F) {
	for _, name := range []string{"search_select_duration.json", "search_service.json", "error_bad_traceql.json", "empty_unknown_service.json"} {
		f.Add(tempotest.Fixture(f, tempoDir, name))
	}
	f.Add([]byte(`{"traces":[{"traceID":"ab","spanSet":{"spans":[{"spanID":"1","durationNanos":"5"},{"spanID":"1","durationNanos":7}],"matched":1}}]}`))
	f.Add([]byte(`{"traces":[{"traceID":"","spanSets":[{"spans":[{"durationNanos":"-1"}],"matched":-4}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseTempoSearch(body)
		if err != nil {
			return
		}
		spans, notSent, err := r.Spans()
		if err != nil {
			return
		}
		// Properties: never more spans than the body holds, every duration
		// and start non-negative, every trace id 32 characters or longer
		// (only padded, never cut), no span listed twice in a trace.
		var raw struct {
			Traces []struct {
				SpanSet  *struct{ Spans []json.RawMessage }  `json:"spanSet"`
				SpanSets []struct{ Spans []json.RawMessage } `json:"spanSets"`
			} `json:"traces"`
		}
		if err := json.Unmarshal(body, &raw); err != nil {
			t.Fatalf("parsed, but not as JSON: %v", err)
		}
		in := 0
		for _, tr := range raw.Traces {
			for _, s := range tr.SpanSets {
				in += len(s.Spans)
			}
			if len(tr.SpanSets) == 0 && tr.SpanSet != nil {
				in += len(tr.SpanSet.Spans)
			}
		}
		if len(spans) > in || notSent < 0 {
			t.Fatalf("%d spans (%d not sent) from %d in the body", len(spans), notSent, in)
		}
		seen := map[[2]string]bool{}
		for _, sp := range spans {
			if sp.DurationNanos < 0 || sp.Start < 0 || len(sp.TraceID) < 32 {
				t.Fatalf("span %+v", sp)
			}
			k := [2]string{sp.TraceID, sp.SpanID}
			if sp.SpanID != "" && seen[k] {
				t.Fatalf("span %v twice", k)
			}
			seen[k] = true
		}
	})
}
