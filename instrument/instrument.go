// Package instrument lets a controller-runtime operator send traces to the
// opsight sidecar in a few lines: a server span per reconcile with the
// reconcile id (the sidecar's correlation key), trace ids in the reconcile's
// logger, client spans for API calls, and an OTLP exporter to the sidecar.
package instrument

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Names shared with the sidecar (github.com/opsight/opsight/internal/conventions,
// not importable from this module): change them only together.
const (
	AttrReconcileID     = "reconcile.id"         // conventions.AttrReconcileIDSpan
	AttrController      = "controller"           // conventions.AttrControllerSpan
	AttrObjectNamespace = "k8s.object.namespace" // conventions.LogObjectNS
	AttrObjectName      = "k8s.object.name"      // conventions.LogObjectName
	LogTraceID          = "trace_id"             // conventions.LogTraceID
	LogSpanID           = "span_id"              // conventions.LogSpanID
)

// ScopeName is the instrumentation scope of the spans this package makes.
const ScopeName = "github.com/opsight/opsight/instrument"

// SpanNameReconcile is the name of the per-reconcile server span.
const SpanNameReconcile = "Reconcile"

// Option changes where Reconciler and Transport send spans.
type Option func(*options)

type options struct {
	tp         trace.TracerProvider
	propagator propagation.TextMapPropagator
}

// WithTracerProvider uses tp instead of the global provider (set by Setup).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tp = tp }
}

// WithPropagator uses p instead of the global propagator for outgoing requests.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(o *options) { o.propagator = p }
}

func newOptions(opts []Option) options {
	var o options
	for _, f := range opts {
		f(&o)
	}
	if o.tp == nil {
		o.tp = otel.GetTracerProvider()
	}
	if o.propagator == nil {
		o.propagator = otel.GetTextMapPropagator()
	}
	return o
}
