// Package source reads span durations of two revisions from where they are
// kept: OTLP JSON trace files (otlp-file), the span-metrics histograms in
// Prometheus (prometheus), or Tempo (tempo: raw durations through TraceQL
// search, or TraceQL metrics histograms). All three
// answer the same Query with the same Result, so the gate's statistics never
// know where the numbers came from.
package source

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/opsight/opsight/releasegate/stats"
)

// Window is a closed time range; zero times mean unbounded (otlp-file only).
type Window struct {
	Start, End time.Time
}

// IsZero reports whether no bound is set.
func (w Window) IsZero() bool { return w.Start.IsZero() && w.End.IsZero() }

// Seconds is the window length.
func (w Window) Seconds() float64 { return w.End.Sub(w.Start).Seconds() }

// Contains reports whether t lies in the window (unbounded sides contain all).
func (w Window) Contains(t time.Time) bool {
	if !w.Start.IsZero() && t.Before(w.Start) {
		return false
	}
	if !w.End.IsZero() && t.After(w.End) {
		return false
	}
	return true
}

func (w Window) String() string {
	if w.IsZero() {
		return "all time"
	}
	return w.Start.UTC().Format(time.RFC3339) + ".." + w.End.UTC().Format(time.RFC3339)
}

// Revision names one side of the comparison and the time its load ran.
type Revision struct {
	Name   string
	Window Window
}

// Query selects the spans to compare.
type Query struct {
	Service   string   // resource service.name; empty = every service
	SpanNames []string // empty = every span name (grouped by name)
	SpanKind  string   // SPAN_KIND_* (see NormalizeKind); empty = any
	Baseline  Revision
	Candidate Revision
	// Quantiles the gate will compare; sources whose backend computes
	// quantiles itself (Tempo) also report the backend's own figures.
	Quantiles []float64
}

// MatchName reports whether a span name is selected.
func (q Query) MatchName(name string) bool {
	if len(q.SpanNames) == 0 {
		return true
	}
	for _, n := range q.SpanNames {
		if n == name {
			return true
		}
	}
	return false
}

// Side is what one revision shows for one operation: raw durations or a
// histogram, the span count and, when known, how many ended in error.
type Side struct {
	Durations   []float64        // seconds, sorted ascending; nil for histogram sources
	Hist        *stats.Histogram // nil for raw sources
	Count       float64
	Errors      float64
	ErrorsKnown bool
	// Reported holds quantiles the backend computed itself (Tempo's
	// quantile_over_time), for cross-checking; the gate does not use them.
	Reported map[float64]float64
}

// Op is one operation (service, span name) in both revisions.
type Op struct {
	Service, Name       string
	Baseline, Candidate Side
}

// Result is a source's answer.
type Result struct {
	Source string
	Ops    []Op
	// Window lengths used for throughput (spans/s), per revision.
	BaselineWindow, CandidateWindow Window
	// Notes are facts the reader of the verdict must know (resolution limits).
	Notes []string
}

// Source is one place durations come from.
type Source interface {
	Fetch(ctx context.Context, q Query) (*Result, error)
}

// ErrEmpty is returned (wrapped) when the selection matched nothing.
var ErrEmpty = fmt.Errorf("empty selection")

// NormalizeKind maps server, SERVER, Server, SPAN_KIND_SERVER to SPAN_KIND_SERVER.
func NormalizeKind(k string) (string, error) {
	if k == "" {
		return "", nil
	}
	u := strings.ToUpper(strings.TrimPrefix(strings.ToUpper(k), "SPAN_KIND_"))
	switch u {
	case "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER", "UNSPECIFIED":
		return "SPAN_KIND_" + u, nil
	}
	return "", fmt.Errorf("unknown span kind %q: expected one of server, client, internal, producer, consumer", k)
}

// sortOps orders operations by service then name, for stable output.
func sortOps(ops []Op) {
	sort.Slice(ops, func(i, j int) bool {
		if ops[i].Service != ops[j].Service {
			return ops[i].Service < ops[j].Service
		}
		return ops[i].Name < ops[j].Name
	})
}

// checkBoth fails with ErrEmpty when a revision has no spans at all: a typo in
// a revision name must not turn into a silent pass.
func checkBoth(res *Result, q Query, where string) error {
	var nb, nc float64
	for _, op := range res.Ops {
		nb += op.Baseline.Count
		nc += op.Candidate.Count
	}
	sel := describe(q)
	switch {
	case nb == 0 && nc == 0:
		return fmt.Errorf("%w: no spans for %s in %s; check --service, --span-name, --span-kind, the revisions and the windows", ErrEmpty, sel, where)
	case nb == 0:
		return fmt.Errorf("%w: no spans for baseline revision %q (%s, window %s) in %s; check --baseline and --baseline-window", ErrEmpty, q.Baseline.Name, sel, q.Baseline.Window, where)
	case nc == 0:
		return fmt.Errorf("%w: no spans for candidate revision %q (%s, window %s) in %s; check --candidate and --candidate-window", ErrEmpty, q.Candidate.Name, sel, q.Candidate.Window, where)
	}
	return nil
}

func describe(q Query) string {
	var parts []string
	if q.Service != "" {
		parts = append(parts, "service="+q.Service)
	}
	if len(q.SpanNames) > 0 {
		parts = append(parts, "span-name="+strings.Join(q.SpanNames, "|"))
	}
	if q.SpanKind != "" {
		parts = append(parts, "span-kind="+q.SpanKind)
	}
	if len(parts) == 0 {
		return "all spans"
	}
	return strings.Join(parts, " ")
}
