package source

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Raw durations from Tempo's search API (GET /api/search): the exact span
// durations, where TraceQL metrics only give power-of-two buckets. Search
// returns "the first N results" of a parallel search over the window
// (Tempo docs, api_docs "Search"), says nothing when it stopped at limit
// (see testdata/tempo/README.md), and a server may clamp limit silently
// (query_frontend.search.max_result_limit). So the window is paged by time,
// a page that comes back with limit traces is split and asked again, and the
// total is checked against TraceQL metrics' exact count_over_time.

// ErrCap is returned (wrapped) when fetching raw durations would exceed a
// configured cap (--tempo-max-spans, --tempo-max-requests) or Tempo's
// answers cannot be made complete (a full one-second page, spans cut by
// spss, fewer spans than TraceQL metrics count). The gate then stops with
// an error rather than compare a sample of unknown bias.
var ErrCap = errors.New("tempo search incomplete")

// TempoSearchResponse is the part of a /api/search body the gate reads.
type TempoSearchResponse struct {
	Traces []TempoTrace `json:"traces"`
}

// TempoTrace is one search hit (the trace-level fields the gate does not
// need are not decoded). SpanSet is the older single-set field, which Tempo
// still sends next to SpanSets.
type TempoTrace struct {
	TraceID  string         `json:"traceID"`
	SpanSet  *TempoSpanSet  `json:"spanSet"`
	SpanSets []TempoSpanSet `json:"spanSets"`
}

// TempoSpanSet holds up to spss spans; Matched counts all that matched.
type TempoSpanSet struct {
	Spans   []TempoSearchSpan `json:"spans"`
	Matched int               `json:"matched"`
}

// TempoSearchSpan is one span of a span set.
type TempoSearchSpan struct {
	SpanID            string       `json:"spanID"`
	Name              *string      `json:"name"`
	StartTimeUnixNano tempoUint    `json:"startTimeUnixNano"`
	DurationNanos     tempoUint    `json:"durationNanos"`
	Attributes        []TempoLabel `json:"attributes"`
}

// tempoUint is a uint64 that protojson writes as a string ("78813505");
// plain numbers are accepted too. Set tells a zero from an absent field.
type tempoUint struct {
	V   uint64
	Set bool
}

func (u *tempoUint) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(b, `"`))
	if s == "null" {
		return nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("%s is not an unsigned integer", b)
	}
	u.V, u.Set = v, true
	return nil
}

// TempoSpan is a span as the gate uses it.
type TempoSpan struct {
	TraceID, SpanID string // trace id padded to 32 hex digits
	Name            string // "" when Tempo did not send it
	Service         string // resource service.name, "" when not sent
	Version         string // resource service.version, "" when not sent
	Start           int64  // unix nanoseconds
	DurationNanos   int64
}

// ParseTempoSearch decodes a /api/search body.
func ParseTempoSearch(body []byte) (*TempoSearchResponse, error) {
	var r TempoSearchResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("tempo: response is not TraceQL search JSON: %v", err)
	}
	return &r, nil
}

// Spans lists the response's spans once each (span sets of one trace may
// repeat a span) and counts the spans Tempo matched but did not send
// because a span set holds at most spss of them.
func (r *TempoSearchResponse) Spans() (spans []TempoSpan, notSent int, err error) {
	seen := map[[2]string]bool{}
	for _, t := range r.Traces {
		sets := t.SpanSets
		if len(sets) == 0 && t.SpanSet != nil {
			sets = []TempoSpanSet{*t.SpanSet}
		}
		tid := padTraceID(t.TraceID)
		for _, set := range sets {
			if d := set.Matched - len(set.Spans); d > 0 {
				notSent = min(notSent, math.MaxInt-d) + d // saturate: a count, not a wraparound
			}
			for _, s := range set.Spans {
				if s.SpanID != "" {
					k := [2]string{tid, s.SpanID}
					if seen[k] {
						continue
					}
					seen[k] = true
				}
				if !s.DurationNanos.Set {
					return nil, 0, fmt.Errorf("tempo: trace %s span %s has no durationNanos", tid, s.SpanID)
				}
				if s.DurationNanos.V > math.MaxInt64 || s.StartTimeUnixNano.V > math.MaxInt64 {
					return nil, 0, fmt.Errorf("tempo: trace %s span %s: time out of range", tid, s.SpanID)
				}
				sp := TempoSpan{TraceID: tid, SpanID: s.SpanID, Start: int64(s.StartTimeUnixNano.V), DurationNanos: int64(s.DurationNanos.V)}
				if s.Name != nil {
					sp.Name = *s.Name
				}
				for _, a := range s.Attributes {
					if a.Value.StringValue == nil {
						continue
					}
					switch a.Key {
					case "service.name":
						sp.Service = *a.Value.StringValue
					case "service.version":
						sp.Version = *a.Value.StringValue
					}
				}
				spans = append(spans, sp)
			}
		}
	}
	return spans, notSent, nil
}

// padTraceID restores the leading zeros Tempo's search strips.
func padTraceID(id string) string {
	id = strings.ToLower(id)
	if len(id) < 32 {
		id = strings.Repeat("0", 32-len(id)) + id
	}
	return id
}

// Defaults of the search path (flags --tempo-page-limit, --tempo-spss,
// --tempo-max-spans, --tempo-max-requests).
const (
	DefaultTempoPageLimit   = 1000    // traces per request; ~0.8 MB of JSON for one-span traces
	DefaultTempoSpss        = 100     // Tempo's default max_spans_per_span_set
	DefaultTempoMaxSpans    = 200_000 // per revision
	DefaultTempoMaxRequests = 1000    // both revisions together
	tempoMaxPage            = 24 * time.Hour
)

// searcher pages one Fetch's search requests and holds its caps.
type searcher struct {
	t        *Tempo
	limit    int
	spss     int
	maxSpans int
	maxReqs  int
	requests int
	full     int // pages that came back with limit traces and were split
}

// revSpans gathers the spans of one revision.
type revSpans struct {
	rev   Revision
	side  string // "baseline" or "candidate", for messages
	flag  string // --baseline-window or --candidate-window
	spans map[[2]string]TempoSpan
}

func capErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrCap, fmt.Sprintf(format, a...))
}

// fetch gets every span of one revision: the window cut into pages of
// about half a page limit each (when TraceQL metrics gave the count), each
// page split in two while it comes back full.
func (s *searcher) fetch(ctx context.Context, q string, rs *revSpans, count float64) error {
	a, b := rs.rev.Window.Start.Unix(), rs.rev.Window.End.Unix()
	if rs.rev.Window.End.Nanosecond() > 0 {
		b++ // search takes whole seconds: round the end up, spans outside are dropped below
	}
	if b <= a {
		b = a + 1
	}
	pages := 1
	if count > 0 {
		pages = int(math.Ceil(count / float64(max(s.limit/2, 1))))
	}
	pages = max(pages, int(math.Ceil(float64(b-a)/tempoMaxPage.Seconds())))
	pages = min(pages, int(b-a))
	type page struct{ a, b int64 }
	// A stack instead of recursion: the bound on requests bounds the loop.
	var stack []page
	for i := pages - 1; i >= 0; i-- {
		stack = append(stack, page{a + (b-a)*int64(i)/int64(pages), a + (b-a)*int64(i+1)/int64(pages)})
	}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if s.requests >= s.maxReqs {
			return capErr("%d search requests (--tempo-max-requests %d) did not cover the %s window %s; raise --tempo-max-requests or --tempo-page-limit (fewer, larger pages), or narrow %s",
				s.requests, s.maxReqs, rs.side, rs.rev.Window, rs.flag)
		}
		resp, err := s.page(ctx, q, p.a, p.b)
		if err != nil {
			return err
		}
		if len(resp.Traces) >= s.limit {
			// Tempo stopped at limit (it does not say so): the page may hold
			// more. Split it and ask again; its partial answer is dropped.
			if p.b-p.a <= 1 {
				return capErr("more than %d traces of %s revision %q match within one second (%s); search cannot page finer than a second: raise --tempo-page-limit (up to Tempo's query_frontend.search.max_result_limit)",
					s.limit, rs.side, rs.rev.Name, time.Unix(p.a, 0).UTC().Format(time.RFC3339))
			}
			s.full++
			m := p.a + (p.b-p.a)/2
			stack = append(stack, page{m, p.b}, page{p.a, m})
			continue
		}
		spans, notSent, err := resp.Spans()
		if err != nil {
			return err
		}
		if notSent > 0 {
			return capErr("%d matching spans of %s revision %q were not returned because a trace holds more than spss=%d of them; raise --tempo-spss (Tempo allows up to query_frontend.search.max_spans_per_span_set, default 100) or select fewer spans per trace (--span-name, --span-kind)",
				notSent, rs.side, rs.rev.Name, s.spss)
		}
		for _, sp := range spans {
			// Pages overlap at their edges and search matches whole traces:
			// keep each span once, and only those that started in the window.
			if !rs.rev.Window.Contains(time.Unix(0, sp.Start)) {
				continue
			}
			if sp.Version != "" && sp.Version != rs.rev.Name {
				continue
			}
			rs.spans[[2]string{sp.TraceID, sp.SpanID}] = sp
		}
		if len(rs.spans) > s.maxSpans {
			return capErr("%s revision %q has more than %d matching spans in %s (--tempo-max-spans %d); narrow %s to part of the load (p99 needs at least 299 spans per side, about 10,000 for a reliable +15%% gate), narrow the selection (--span-name, --span-kind), or raise --tempo-max-spans and --timeout",
				rs.side, rs.rev.Name, s.maxSpans, rs.rev.Window, s.maxSpans, rs.flag)
		}
	}
	return nil
}

func (s *searcher) page(ctx context.Context, q string, a, b int64) (*TempoSearchResponse, error) {
	s.requests++
	v := url.Values{}
	v.Set("q", q)
	v.Set("limit", strconv.Itoa(s.limit))
	v.Set("spss", strconv.Itoa(s.spss))
	v.Set("start", strconv.FormatInt(a, 10))
	v.Set("end", strconv.FormatInt(b, 10))
	body, err := httpGet(ctx, s.t.Client, s.t.Header, strings.TrimRight(s.t.URL, "/")+"/api/search?"+v.Encode(), "tempo")
	if err != nil {
		if strings.Contains(err.Error(), "HTTP 400") {
			err = fmt.Errorf("%w; a search also fails when limit=%d or spss=%d exceed Tempo's query_frontend.search limits (--tempo-page-limit, --tempo-spss)", err, s.limit, s.spss)
		}
		return nil, err
	}
	return ParseTempoSearch(body)
}

// tempoSelect is the search query: the revision's filter, and the fields
// the gate needs that the filter does not pin (Tempo returns the attributes
// the filter names; span:duration is the one the gate reads).
func tempoSelect(q Query, filter string) string {
	fields := []string{"span:duration"}
	if len(q.SpanNames) != 1 {
		fields = append(fields, "span:name")
	}
	if q.Service == "" {
		fields = append(fields, tempoService)
	}
	return filter + " | select(" + strings.Join(fields, ", ") + ")"
}

// fetchSearch is Fetch's raw-duration path.
func (t *Tempo) fetchSearch(ctx context.Context, q Query, why string) (*Result, error) {
	s := &searcher{t: t, limit: orDefault(t.PageLimit, DefaultTempoPageLimit), spss: orDefault(t.SpansPerSet, DefaultTempoSpss),
		maxSpans: orDefault(t.MaxSpans, DefaultTempoMaxSpans), maxReqs: orDefault(t.MaxRequests, DefaultTempoMaxRequests)}
	res := &Result{Source: "tempo", BaselineWindow: q.Baseline.Window, CandidateWindow: q.Candidate.Window}
	ops := map[opKey]*Op{}
	get := func(svc, name string) *Op {
		k := opKey{svc, name}
		if ops[k] == nil {
			ops[k] = &Op{Service: svc, Name: name}
		}
		return ops[k]
	}
	var found [2]int
	for i, rev := range []Revision{q.Baseline, q.Candidate} {
		rs := &revSpans{rev: rev, side: "baseline", flag: "--baseline-window", spans: map[[2]string]TempoSpan{}}
		if i == 1 {
			rs.side, rs.flag = "candidate", "--candidate-window"
		}
		filter := tempoFilter(q, rev.Name)
		// Exact counts (and error counts) from TraceQL metrics: they size
		// the pages and check the search found every span. Without them
		// (metrics disabled) search still works, unchecked.
		count, counted, err := t.counts(ctx, q, i, rev, filter, get)
		if err != nil {
			res.Notes = append(res.Notes, fmt.Sprintf("tempo: count_over_time for %s revision %q unavailable (%v); search completeness unchecked", rs.side, rev.Name, err))
		}
		if counted && count > float64(s.maxSpans) {
			return nil, capErr("%s revision %q has %.0f matching spans in %s (TraceQL metrics count), more than --tempo-max-spans %d; narrow %s to part of the load (p99 needs at least 299 spans per side, about 10,000 for a reliable +15%% gate), narrow the selection (--span-name, --span-kind), or raise --tempo-max-spans and --timeout",
				rs.side, rev.Name, count, rev.Window, s.maxSpans, rs.flag)
		}
		if err := s.fetch(ctx, tempoSelect(q, filter), rs, count); err != nil {
			return nil, err
		}
		found[i] = len(rs.spans)
		if counted && float64(found[i]) < count {
			missing := count - float64(found[i])
			if missing > math.Max(2, 0.01*count) {
				return nil, capErr("search returned %d of the %.0f spans TraceQL metrics count for %s revision %q in %s; Tempo may clamp limit silently (query_frontend.search.max_result_limit): set --tempo-page-limit at or below it; or the spans are not searchable yet: rerun in a minute",
					found[i], count, rs.side, rev.Name, rev.Window)
			}
			res.Notes = append(res.Notes, fmt.Sprintf("tempo: search found %d of the %.0f %s spans TraceQL metrics count (window edges)", found[i], count, rs.side))
		}
		var all []TempoSpan
		for _, sp := range rs.spans {
			all = append(all, sp)
		}
		sort.Slice(all, func(a, b int) bool { return all[a].DurationNanos < all[b].DurationNanos })
		for _, sp := range all {
			svc, name := sp.Service, sp.Name
			if svc == "" {
				svc = q.Service
			}
			if name == "" {
				name = strings.Join(q.SpanNames, "|")
				if name == "" {
					name = "(all spans)"
				}
			}
			side := sideOf(get(svc, name), i)
			side.Durations = append(side.Durations, float64(sp.DurationNanos)/1e9) // stays sorted
			side.Count++
		}
	}
	for _, op := range ops {
		// Counts come from the spans found, error counts from TraceQL
		// metrics; a metrics series search has no spans for (one not split
		// by name) is no operation.
		if op.Baseline.Count+op.Candidate.Count > 0 {
			res.Ops = append(res.Ops, *op)
		}
	}
	sortOps(res.Ops)
	if err := checkBoth(res, q, "tempo "+t.URL); err != nil {
		return nil, err
	}
	res.Notes = append(res.Notes, fmt.Sprintf("tempo: raw span durations from TraceQL search (%s): %d baseline and %d candidate spans in %d requests, %d full pages split",
		why, found[0], found[1], s.requests, s.full))
	return res, nil
}

// counts runs count_over_time by status for one revision, records error
// counts on the ops, and returns the revision's total.
func (t *Tempo) counts(ctx context.Context, q Query, i int, rev Revision, filter string, get func(svc, name string) *Op) (total float64, ok bool, err error) {
	r, err := t.query(ctx, filter+" | count_over_time() by ("+tempoService+", "+tempoVersion+", name, status)", rev.Window)
	if err != nil {
		return 0, false, err
	}
	for _, s := range r.Series {
		if v, ok := s.Label(tempoVersion); ok && v != rev.Name {
			continue
		}
		total += s.Total()
		ok = true
		st, has := s.Label("status")
		if !has {
			continue // no status breakdown: error share stays unknown
		}
		svc, name := t.opLabels(s, q)
		side := sideOf(get(svc, name), i)
		side.ErrorsKnown = true
		if st == "error" {
			side.Errors += s.Total()
		}
	}
	return total, ok, nil
}

func orDefault(v, d int) int {
	if v > 0 {
		return v
	}
	return d
}
