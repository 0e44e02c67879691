package source

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/opsight/opsight/internal/conventions"
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
func spanKindLabel(k ptrace.SpanKind) string {
	switch k {
	case ptrace.SpanKindServer:
		return "SPAN_KIND_SERVER"
	case ptrace.SpanKindClient:
		return "SPAN_KIND_CLIENT"
	case ptrace.SpanKindInternal:
		return "SPAN_KIND_INTERNAL"
	case ptrace.SpanKindProducer:
		return "SPAN_KIND_PRODUCER"
	case ptrace.SpanKindConsumer:
		return "SPAN_KIND_CONSUMER"
	}
	return "SPAN_KIND_UNSPECIFIED"
}

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
	type job struct {
		no   int
		line []byte
	}
	type done struct {
		no    int
		spans []SpanRecord
		err   error
	}
	workers := runtime.GOMAXPROCS(0)
	jobs := make(chan job, 2*workers)
	results := make(chan done, 2*workers)
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				var spans []SpanRecord
				err := ParseLine(j.line, func(s SpanRecord) { spans = append(spans, s) })
				results <- done{j.no, spans, err}
			}
		}()
	}
	var readErr error
	stop := make(chan struct{})
	go func() {
		defer close(jobs)
		r := bufio.NewReaderSize(f, 1<<20)
		for no := 1; ; no++ {
			line, err := readLine(r, max)
			if len(line) > 0 {
				select {
				case jobs <- job{no, line}:
				case <-stop:
					return
				}
			}
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				readErr = fmt.Errorf("%s:%d: %v", path, no, err)
				return
			}
		}
	}()
	go func() { wg.Wait(); close(results) }()
	var firstErr error
	firstNo := 0
	for d := range results {
		if d.err != nil {
			if firstErr == nil || d.no < firstNo {
				firstErr, firstNo = d.err, d.no
				select {
				case <-stop:
				default:
					close(stop)
				}
			}
			continue
		}
		if firstErr == nil {
			for _, s := range d.spans {
				fn(s)
			}
		}
	}
	if firstErr != nil {
		return fmt.Errorf("%s:%d: not an OTLP JSON trace export request (one per line expected): %v", path, firstNo, firstErr)
	}
	return readErr
}

// readLine returns one line without its newline, however long, up to max.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := r.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > max {
			return nil, fmt.Errorf("line longer than %d bytes", max)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return bytes.TrimRight(buf, "\r\n"), err
	}
}
