package source

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/jsonlines"
)

// SpanRecord is the part of a span the gate needs.
type SpanRecord struct {
	Service, Version, Name, Kind string // Kind as SPAN_KIND_*
	Start, End                   time.Time
	Error                        bool
}

// Duration is End-Start in seconds (0 when the span ends before it starts).
func (s SpanRecord) Duration() float64 {
	d := s.End.Sub(s.Start).Seconds()
	if d < 0 {
		return 0
	}
	return d
}

var jsonUnmarshaler = &ptrace.JSONUnmarshaler{}

// ParseLine decodes one line of OTLP JSON (an ExportTraceServiceRequest, as
// the collector's file exporter and our sidecar's localfile exporter write
// them) and calls fn for every span. Blank lines are skipped.
func ParseLine(line []byte, fn func(SpanRecord)) error {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return nil
	}
	td, err := jsonUnmarshaler.UnmarshalTraces(line)
	if err != nil {
		return err
	}
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		var svc, ver string
		if v, ok := rs.Resource().Attributes().Get(conventions.AttrServiceName); ok {
			svc = v.AsString()
		}
		if v, ok := rs.Resource().Attributes().Get(conventions.AttrServiceVersion); ok {
			ver = v.AsString()
		}
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				sp := spans.At(k)
				fn(SpanRecord{
					Service: svc, Version: ver, Name: sp.Name(),
					Kind:  spanKindLabel(sp.Kind()),
					Start: sp.StartTimestamp().AsTime(), End: sp.EndTimestamp().AsTime(),
					Error: sp.Status().Code() == ptrace.StatusCodeError,
				})
			}
		}
	}
	return nil
}

// spanKindLabel spells a kind as the spanmetrics connector labels it.
func spanKindLabel(k ptrace.SpanKind) string { return conventions.SpanKindName(int32(k)) }

// OTLPFile reads OTLP JSON lines from files matching glob patterns.
type OTLPFile struct {
	Patterns []string
	// MaxLine bounds one line (one export request); default 256 MiB.
	MaxLine int
}

type opKey struct{ svc, name string }

type accum struct {
	durs        []float64
	errs        float64
	first, last time.Time
}

func (a *accum) add(s SpanRecord) {
	a.durs = append(a.durs, s.Duration())
	if s.Error {
		a.errs++
	}
	if a.first.IsZero() || s.Start.Before(a.first) {
		a.first = s.Start
	}
	if s.End.After(a.last) {
		a.last = s.End
	}
}

// Fetch reads every matching file once.
func (o *OTLPFile) Fetch(ctx context.Context, q Query) (*Result, error) {
	files, err := o.files()
	if err != nil {
		return nil, err
	}
	sides := [2]map[opKey]*accum{{}, {}}
	revs := [2]Revision{q.Baseline, q.Candidate}
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		err := o.readFile(f, func(s SpanRecord) {
			if q.Service != "" && s.Service != q.Service {
				return
			}
			if q.SpanKind != "" && s.Kind != q.SpanKind {
				return
			}
			if !q.MatchName(s.Name) {
				return
			}
			for i := range revs {
				if s.Version == revs[i].Name && revs[i].Window.Contains(s.Start) {
					k := opKey{s.Service, s.Name}
					a := sides[i][k]
					if a == nil {
						a = &accum{}
						sides[i][k] = a
					}
					a.add(s)
				}
			}
		})
		if err != nil {
			return nil, err
		}
	}
	res := &Result{Source: "otlp-file"}
	keys := map[opKey]bool{}
	for i := range sides {
		for k := range sides[i] {
			keys[k] = true
		}
	}
	var spanWin [2]Window
	for k := range keys {
		op := Op{Service: k.svc, Name: k.name}
		for i, dst := range []*Side{&op.Baseline, &op.Candidate} {
			a := sides[i][k]
			if a == nil {
				continue
			}
			slices.Sort(a.durs)
			*dst = Side{Durations: a.durs, Count: float64(len(a.durs)), Errors: a.errs, ErrorsKnown: true}
			w := &spanWin[i]
			if w.Start.IsZero() || a.first.Before(w.Start) {
				w.Start = a.first
			}
			if a.last.After(w.End) {
				w.End = a.last
			}
		}
		res.Ops = append(res.Ops, op)
	}
	sortOps(res.Ops)
	// Throughput needs the load's duration: the window given, else the span
	// of time the spans themselves cover.
	res.BaselineWindow, res.CandidateWindow = pickWindow(q.Baseline.Window, spanWin[0]), pickWindow(q.Candidate.Window, spanWin[1])
	where := fmt.Sprintf("%d file(s) matching %v", len(files), o.Patterns)
	if err := checkBoth(res, q, where); err != nil {
		return nil, err
	}
	return res, nil
}

func pickWindow(given, seen Window) Window {
	w := given
	if w.Start.IsZero() {
		w.Start = seen.Start
	}
	if w.End.IsZero() {
		w.End = seen.End
	}
	return w
}

func (o *OTLPFile) files() ([]string, error) {
	if len(o.Patterns) == 0 {
		return nil, fmt.Errorf("--otlp-file: no files given; expected a path or glob such as 'out/traces-*.jsonl'")
	}
	var files []string
	seen := map[string]bool{}
	for _, p := range o.Patterns {
		m, err := filepath.Glob(p)
		if err != nil {
			return nil, fmt.Errorf("--otlp-file %q: bad glob: %v", p, err)
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("--otlp-file %q: no such file; expected OTLP JSON lines (collector file exporter or sidecar traces-*.jsonl)", p)
		}
		for _, f := range m {
			if !seen[f] {
				seen[f] = true
				files = append(files, f)
			}
		}
	}
	return files, nil
}

func (o *OTLPFile) readFile(path string, fn func(SpanRecord)) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("--otlp-file: %v", err)
	}
	defer f.Close()
	max := o.MaxLine
	if max <= 0 {
		max = 256 << 20
	}
	// Decoding JSON is the slow part: lines are decoded on every core, and
	// the spans handed to fn from this goroutine only (fn need not lock).
	return jsonlines.Each(f, path, max, func(line []byte) ([]SpanRecord, error) {
		var spans []SpanRecord
		if err := ParseLine(line, func(s SpanRecord) { spans = append(spans, s) }); err != nil {
			return nil, fmt.Errorf("not an OTLP JSON trace export request (one per line expected): %v", err)
		}
		return spans, nil
	}, func(_ int, spans []SpanRecord) {
		for _, s := range spans {
			fn(s)
		}
	})
}
