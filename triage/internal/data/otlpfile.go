package data

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/jsonlines"
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
func KindLabel(k ptrace.SpanKind) string { return conventions.SpanKindName(int32(k)) }

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

// eachLine decodes the lines of path on every core and hands them to fn in
// file order, from the calling goroutine.
func eachLine(path string, fn func(no int, groups []group)) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("--traces: %v", err)
	}
	defer f.Close()
	return jsonlines.Each(f, path, 256<<20, func(line []byte) ([]group, error) {
		g, err := ParseSpanLine(line)
		if err != nil {
			return nil, fmt.Errorf("not an OTLP JSON trace export request (one per line expected): %v", err)
		}
		return g, nil
	}, fn)
}
