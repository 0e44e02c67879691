package instrument

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// Reconciler wraps r so each reconcile runs in a server span "Reconcile"
// carrying the controller name, controller-runtime's reconcile id and the
// object's namespace/name, marked as an error when r fails or panics. The
// reconcile's logger (log.FromContext) gets trace_id and span_id, so every
// line it writes carries them and the sidecar correlates by field.
func Reconciler(name string, r reconcile.Reconciler, opts ...Option) reconcile.Reconciler {
	o := newOptions(opts)
	return &tracedReconciler{
		name:   name,
		next:   r,
		tracer: o.tp.Tracer(ScopeName),
	}
}

type tracedReconciler struct {
	name   string
	next   reconcile.Reconciler
	tracer trace.Tracer
}

func (t *tracedReconciler) Reconcile(ctx context.Context, req reconcile.Request) (res reconcile.Result, err error) {
	attrs := []attribute.KeyValue{
		attribute.String(AttrController, t.name),
		attribute.String(AttrObjectNamespace, req.Namespace),
		attribute.String(AttrObjectName, req.Name),
	}
	// The reconcile id is the sidecar's default key for joining log lines
	// that carry no trace id to this span.
	if id := controller.ReconcileIDFromContext(ctx); id != "" {
		attrs = append(attrs, attribute.String(AttrReconcileID, string(id)))
	}
	ctx, span := t.tracer.Start(ctx, SpanNameReconcile, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
	defer span.End()

	if sc := span.SpanContext(); sc.IsValid() {
		logger := log.FromContext(ctx).WithValues(LogTraceID, sc.TraceID().String(), LogSpanID, sc.SpanID().String())
		ctx = log.IntoContext(ctx, logger)
	}

	defer func() {
		// controller-runtime recovers panics by default; record them here
		// first, or the span would end looking successful.
		if p := recover(); p != nil {
			span.SetStatus(codes.Error, fmt.Sprintf("panic: %v", p))
			span.AddEvent("panic", trace.WithAttributes(attribute.String("panic.value", fmt.Sprint(p))))
			span.End()
			panic(p)
		}
	}()

	res, err = t.next.Reconcile(ctx, req)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	return res, err
}
