package data

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/opsight/opsight/internal/conventions"
)

// The release gate's reader (releasegate/source.ParseLine) decodes the same
// lines, but keeps no trace ids, parents or resource beyond service and
// version, which a drill-down needs; this reader decodes with the same
// unmarshaler and keeps them.
var jsonUnmarshaler = &ptrace.JSONUnmarshaler{}

// group is the spans of one resource in one line.
type group struct {
	res   Resource
	spans []Span
}

// ParseSpanLine decodes one line of OTLP JSON (an ExportTraceServiceRequest
// per line, as the sidecar's localfile exporter and the collector's file
// exporter write them). A blank line gives nothing.
func ParseSpanLine(line []byte) ([]group, error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return nil, nil
	}
	// The unmarshaler skips unknown fields, so any JSON object (a log
	// record given by mistake) would decode as an empty request.
	if !bytes.Contains(line, []byte(`"resourceSpans"`)) && !bytes.Contains(line, []byte(`"resource_spans"`)) {
		return nil, errors.New(`no "resourceSpans": not an OTLP JSON ExportTraceServiceRequest`)
	}
	td, err := jsonUnmarshaler.UnmarshalTraces(line)
	if err != nil {
		return nil, err
	}
	rss := td.ResourceSpans()
	out := make([]group, 0, rss.Len())
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		attrs := rs.Resource().Attributes()
		str := func(k string) string {
			if v, ok := attrs.Get(k); ok {
				return v.AsString()
			}
			return ""
		}
		g := group{res: Resource{
			Service: str(conventions.AttrServiceName), Revision: str(conventions.AttrServiceVersion),
			Namespace: str(conventions.AttrNamespace), Cluster: str(conventions.AttrCluster),
			Pod: str(conventions.AttrPod), Zone: str(conventions.AttrZone),
		}}
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				sp := spans.At(k)
				g.spans = append(g.spans, Span{
					Trace: TraceID(sp.TraceID()), ID: SpanID(sp.SpanID()), Parent: SpanID(sp.ParentSpanID()),
					Name: sp.Name(), Kind: KindLabel(sp.Kind()),
					Start: int64(sp.StartTimestamp()), End: int64(sp.EndTimestamp()),
					Error: sp.Status().Code() == ptrace.StatusCodeError,
				})
			}
		}
		out = append(out, g)
	}
	return out, nil
}

// KindLabel spells a kind as the spanmetrics connector labels it.
func KindLabel(k ptrace.SpanKind) string {
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

// Glob expands patterns into files, each once, in the order given. A
// pattern that matches nothing is an error: an empty triage would look
// like "nothing moved".
func Glob(flag string, patterns []string) ([]string, error) {
	var files []string
	seen := map[string]bool{}
	for _, p := range patterns {
		m, err := filepath.Glob(p)
		if err != nil {
			return nil, fmt.Errorf("%s %q: bad glob: %v", flag, p, err)
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("%s %q: no such file (run `make demo` or `go run ./operator-sidecar demo --dir DIR` and pass DIR/state/out/...)", flag, p)
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

// ReadSpans reads every span of the files. Lines are decoded on every core
// (JSON decoding is the cost); resources are shared between spans.
func ReadSpans(files []string) ([]Span, error) {
	var out []Span
	interned := map[Resource]*Resource{}
	for _, f := range files {
		err := eachLine(f, func(no int, groups []group) {
			for _, g := range groups {
				r := interned[g.res]
				if r == nil {
					r = new(Resource)
					*r = g.res
					interned[g.res] = r
				}
				for i := range g.spans {
					g.spans[i].Res = r
				}
				out = append(out, g.spans...)
			}
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// eachLine decodes the lines of path in parallel and hands them to fn in
// file order, from the calling goroutine.
func eachLine(path string, fn func(no int, groups []group)) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("--traces: %v", err)
	}
	defer f.Close()
	type job struct {
		no   int
		line []byte
	}
	type done struct {
		no     int
		groups []group
		err    error
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
				g, err := ParseSpanLine(j.line)
				results <- done{j.no, g, err}
			}
		}()
	}
	var readErr error
	stop := make(chan struct{})
	go func() {
		defer close(jobs)
		r := bufio.NewReaderSize(f, 1<<20)
		for no := 1; ; no++ {
			line, err := readLine(r, 256<<20)
			if len(line) > 0 || err == nil {
				// Blank lines are sent too, so line numbers have no gaps
				// and results can be put back in order.
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
	// Results arrive out of order; keep them until their turn so the spans
	// come out in file order (reports must not depend on scheduling).
	pending := map[int]done{}
	next := 1
	var firstErr error
	firstNo := 0
	for d := range results {
		if d.err != nil {
			if firstErr == nil || d.no < firstNo {
				firstErr, firstNo = d.err, d.no
			}
			select {
			case <-stop:
			default:
				close(stop)
			}
			continue
		}
		pending[d.no] = d
		for p, ok := pending[next]; ok; p, ok = pending[next] {
			delete(pending, next)
			next++
			if firstErr == nil {
				fn(p.no, p.groups)
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
			return nil, fmt.Errorf("line longer than %d bytes; is this OTLP JSON lines?", max)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return bytes.TrimRight(buf, "\r\n"), err
	}
}
