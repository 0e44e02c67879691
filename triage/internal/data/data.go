// Package data holds what a triage reads: spans with their trace context and
// resource (service, revision, zone, pod), and enriched log records. The
// offline readers here decode the sidecar's embedded-default output (OTLP
// JSON lines and NDJSON, collector/exporter/localfileexporter/README.md);
// other sources fill the same types.
package data

import (
	"encoding/hex"
	"time"

	"github.com/opsight/opsight/releasegate/stats"
)

// TraceID is a 128-bit trace id; all zeros means absent.
type TraceID [16]byte

// String is the 32-digit lowercase hex form (CONVENTIONS.md).
func (t TraceID) String() string { return hex.EncodeToString(t[:]) }

// IsZero reports an absent id.
func (t TraceID) IsZero() bool { return t == TraceID{} }

// SpanID is a 64-bit span id; all zeros means absent.
type SpanID [8]byte

// String is the 16-digit lowercase hex form.
func (s SpanID) String() string { return hex.EncodeToString(s[:]) }

// IsZero reports an absent id.
func (s SpanID) IsZero() bool { return s == SpanID{} }

// Resource is who emitted a span: shared by every span of one resource, so
// a million spans hold a handful of these.
type Resource struct {
	Service   string // service.name
	Revision  string // service.version
	Namespace string // k8s.namespace.name
	Cluster   string // k8s.cluster.name
	Pod       string // k8s.pod.name
	Zone      string // cloud.availability_zone
}

// Span is the part of a span a triage needs.
type Span struct {
	Trace      TraceID
	ID, Parent SpanID
	Name       string
	Kind       string // SPAN_KIND_* as the spanmetrics connector labels it
	Res        *Resource
	Start, End int64 // Unix nanoseconds
	Error      bool
}

// Duration is End-Start in seconds (0 when the span ends before it starts).
func (s *Span) Duration() float64 {
	if s.End <= s.Start {
		return 0
	}
	return float64(s.End-s.Start) / 1e9
}

// StartTime is Start as a time.
func (s *Span) StartTime() time.Time { return time.Unix(0, s.Start).UTC() }

// Log is one enriched log record.
type Log struct {
	Time      time.Time // zero when the line carries no time
	Trace     TraceID
	Level     string
	Risk      []string // risk pattern ids
	Revision  string
	Namespace string
	Cluster   string
	Service   string
	Pod       string
	Zone      string
	// Line is the record as stored (the operator's line with the added
	// fields), for showing; the sidecar's NDJSON keeps it valid JSON.
	Line string
}

// Series is what the span metrics hold for one span name and kind, one
// group of resources (a revision, a pod) and one side of a comparison: a
// histogram of durations, the number of spans and how many failed. Online,
// Prometheus fills these (increase over each side's window); the spans
// then are only the traces fetched to explain a move.
type Series struct {
	Side   int // 0 baseline, 1 candidate
	Span   string
	Kind   string // SPAN_KIND_*
	Res    Resource
	Hist   *stats.Histogram
	Count  float64
	Errors float64
}

// LogCounts are log lines and lines per risk pattern of each side (0
// baseline, 1 candidate), counted by the sidecar (opsight_log_records_total,
// opsight_log_risk_total) rather than read line by line.
type LogCounts struct {
	Lines [2]float64
	Risk  [2]map[string]float64
}
