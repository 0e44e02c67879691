package redmetricsexporter

import (
	"context"
	"encoding/hex"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/zap"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/selftelemetry"
)

// OverflowSpanName replaces span_name once dimensions_cache_size label sets
// exist, so a span-name explosion costs one series per (service, kind,
// status, revision, namespace, cluster) instead of unbounded memory.
const OverflowSpanName = "other"

// spanKindByName reads span_kind label values (conventions.SpanKindNames).
var spanKindByName = func() map[string]ptrace.SpanKind {
	m := make(map[string]ptrace.SpanKind, len(conventions.SpanKindNames))
	for i, v := range conventions.SpanKindNames {
		m[v] = ptrace.SpanKind(i)
	}
	return m
}()

func spanKindName(k ptrace.SpanKind) string { return conventions.SpanKindName(int32(k)) }

func statusCodeName(c ptrace.StatusCode) string {
	switch c {
	case ptrace.StatusCodeOk:
		return "STATUS_CODE_OK"
	case ptrace.StatusCodeError:
		return "STATUS_CODE_ERROR"
	default:
		return "STATUS_CODE_UNSET"
	}
}

// series is one label set's pre-resolved children: resolving them once
// avoids hashing seven label values in the Vec on every span.
type series struct {
	duration prometheus.ExemplarObserver
	calls    prometheus.ExemplarAdder
}

type recorder struct {
	metrics  *selftelemetry.Metrics
	logger   *zap.Logger
	limit    int
	excluded [8]bool // indexed by ptrace.SpanKind

	mu           sync.Mutex
	cache        map[string]series // label sets under the limit
	overflow     map[string]series // span_name="other" sets, created past the limit
	key          []byte            // scratch buffer for map look-ups (guarded by mu)
	warnedAtSize bool
}

func newRecorder(cfg *Config, m *selftelemetry.Metrics, logger *zap.Logger) *recorder {
	if logger == nil {
		logger = zap.NewNop()
	}
	r := &recorder{
		metrics:  m,
		logger:   logger,
		limit:    cfg.DimensionsCacheSize,
		cache:    make(map[string]series),
		overflow: make(map[string]series),
	}
	for _, k := range cfg.ExcludeSpanKinds {
		if kind, ok := spanKindByName[string(k)]; ok && int(kind) < len(r.excluded) {
			r.excluded[kind] = true
		}
	}
	return r
}

// resourceLabels are the per-resource label values, resolved once per
// ResourceSpans rather than per span.
type resourceLabels struct {
	service, revision, namespace, cluster string
}

func attrStr(attrs pcommon.Map, key string) string {
	if v, ok := attrs.Get(key); ok {
		return validUTF8(v.AsString())
	}
	return ""
}

// validUTF8 repairs a value before it becomes a label: client_golang panics
// on invalid UTF-8 label values, and the cache key relies on 0xff never
// occurring in a value.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

func (r *recorder) consumeTraces(_ context.Context, td ptrace.Traces) error {
	// One exemplar label map per batch: client_golang copies the labels into
	// its own exemplar, so the map can be reused for every span.
	exemplar := prometheus.Labels{conventions.LogTraceID: "", conventions.LogSpanID: ""}
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		attrs := rs.Resource().Attributes()
		res := resourceLabels{
			service:   attrStr(attrs, conventions.AttrServiceName),
			revision:  attrStr(attrs, conventions.AttrServiceVersion),
			namespace: attrStr(attrs, conventions.AttrNamespace),
			cluster:   attrStr(attrs, conventions.AttrCluster),
		}
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				r.record(&res, spans.At(k), exemplar)
			}
		}
	}
	return nil
}

func (r *recorder) record(res *resourceLabels, span ptrace.Span, exemplar prometheus.Labels) {
	kind := span.Kind()
	if int(kind) >= 0 && int(kind) < len(r.excluded) && r.excluded[kind] {
		return
	}
	s := r.lookup(res, validUTF8(span.Name()), kind, span.Status().Code())

	var seconds float64
	if start, end := span.StartTimestamp(), span.EndTimestamp(); end > start {
		seconds = float64(end-start) / 1e9
	}
	tid, sid := span.TraceID(), span.SpanID()
	if tid.IsEmpty() || sid.IsEmpty() {
		// All-zero ids mean absent (CONVENTIONS.md): no exemplar to point at.
		s.duration.(prometheus.Observer).Observe(seconds)
		s.calls.(prometheus.Counter).Inc()
		return
	}
	exemplar[conventions.LogTraceID] = hex.EncodeToString(tid[:])
	exemplar[conventions.LogSpanID] = hex.EncodeToString(sid[:])
	s.duration.ObserveWithExemplar(seconds, exemplar)
	s.calls.AddWithExemplar(1, exemplar)
}

// lookup returns the series for this label set, creating it while under the
// limit and falling back to span_name="other" beyond it.
func (r *recorder) lookup(res *resourceLabels, name string, kind ptrace.SpanKind, code ptrace.StatusCode) series {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.key = appendKey(r.key[:0], res, name, kind, code)
	if s, ok := r.cache[string(r.key)]; ok { // no allocation: the compiler elides the conversion
		return s
	}
	if len(r.cache) < r.limit {
		s := r.newSeries(res, name, kind, code)
		r.cache[string(r.key)] = s
		return s
	}
	if !r.warnedAtSize {
		r.warnedAtSize = true
		r.logger.Warn("redmetrics: dimensions_cache_size reached; new span names are counted as span_name=\"other\"; raise dimensions_cache_size or lower span-name cardinality",
			zap.Int("dimensions_cache_size", r.limit))
	}
	r.key = appendKey(r.key[:0], res, OverflowSpanName, kind, code)
	if s, ok := r.overflow[string(r.key)]; ok {
		return s
	}
	s := r.newSeries(res, OverflowSpanName, kind, code)
	r.overflow[string(r.key)] = s
	return s
}

func appendKey(b []byte, res *resourceLabels, name string, kind ptrace.SpanKind, code ptrace.StatusCode) []byte {
	// 0xff cannot occur in valid UTF-8, so joined values cannot collide.
	b = append(b, res.service...)
	b = append(b, 0xff)
	b = append(b, res.revision...)
	b = append(b, 0xff)
	b = append(b, res.namespace...)
	b = append(b, 0xff)
	b = append(b, res.cluster...)
	b = append(b, 0xff)
	b = append(b, name...)
	b = append(b, 0xff, byte(kind), byte(code))
	return b
}

func (r *recorder) newSeries(res *resourceLabels, name string, kind ptrace.SpanKind, code ptrace.StatusCode) series {
	// Order of conventions.SpanMetricLabels.
	values := []string{res.service, name, spanKindName(kind), statusCodeName(code), res.revision, res.namespace, res.cluster}
	return series{
		duration: r.metrics.SpanDuration.WithLabelValues(values...).(prometheus.ExemplarObserver),
		calls:    r.metrics.SpanCalls.WithLabelValues(values...).(prometheus.ExemplarAdder),
	}
}
