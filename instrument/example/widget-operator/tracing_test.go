package main

import (
	"context"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/opsight/opsight/instrument"
)

// TestReconcileClientSpans runs the instrumented reconciler against a real
// HTTP API server through a client built on instrument.WrapConfig: each API
// call must be a client span, child of that reconcile's Reconcile span, and
// send its traceparent.
func TestReconcileClientSpans(t *testing.T) {
	s := testScheme(t)
	api := newFakeAPI(t)
	api.put("widgets", widget("w", 1, 3, "hello", WidgetStatus{}))

	sr, tp := newRecorder()
	tracing := []instrument.Option{instrument.WithTracerProvider(tp), instrument.WithPropagator(propagation.TraceContext{})}
	c, err := client.New(instrument.WrapConfig(api.config(), tracing...), client.Options{Scheme: s, Mapper: fakeMapper()})
	if err != nil {
		t.Fatal(err)
	}
	r := instrument.Reconciler(ControllerName, &WidgetReconciler{Client: c, Scheme: s}, tracing...)
	req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "w"}}

	for _, step := range []struct {
		name   string
		before func()
		want   []string // client span names, in order
	}{{
		name: "new widget",
		want: []string{"GET widgets", "GET configmaps", "POST configmaps", "PATCH widgets/status"},
	}, {
		name: "nothing changed",
		want: []string{"GET widgets", "GET configmaps"},
	}, {
		name: "spec changed",
		before: func() {
			var w Widget
			api.get("widgets", ns, "w", &w)
			w.Spec.Size, w.Generation = 7, 2
			api.put("widgets", &w)
		},
		want: []string{"GET widgets", "GET configmaps", "PUT configmaps", "PATCH widgets/status"},
	}, {
		name:   "widget deleted",
		before: func() { api.delete("widgets", ns, "w") },
		want:   []string{"GET widgets"},
	}} {
		t.Run(step.name, func(t *testing.T) {
			if step.before != nil {
				step.before()
			}
			n := len(sr.Ended())
			api.takeRequests()
			if _, err := r.Reconcile(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			spans := sr.Ended()[n:]
			var rec sdktrace.ReadOnlySpan
			var clientSpans []sdktrace.ReadOnlySpan
			for _, sp := range spans {
				if sp.Name() == instrument.SpanNameReconcile {
					rec = sp
				} else {
					clientSpans = append(clientSpans, sp)
				}
			}
			if rec == nil || rec.SpanKind() != trace.SpanKindServer {
				t.Fatalf("no Reconcile server span among %v", spanNames(spans))
			}
			if got := spanNames(clientSpans); !slices.Equal(got, step.want) {
				t.Errorf("client spans = %q, want %q", got, step.want)
			}
			for _, sp := range clientSpans {
				if sp.SpanKind() != trace.SpanKindClient || sp.Parent().SpanID() != rec.SpanContext().SpanID() ||
					sp.SpanContext().TraceID() != rec.SpanContext().TraceID() {
					t.Errorf("span %q: kind %v parent %v, want a client child of Reconcile %v",
						sp.Name(), sp.SpanKind(), sp.Parent().SpanID(), rec.SpanContext().SpanID())
				}
			}
			reqs := api.takeRequests()
			if len(reqs) != len(step.want) {
				t.Errorf("API requests = %+v, want %d", reqs, len(step.want))
			}
			for _, q := range reqs {
				if !strings.Contains(q.traceparent, rec.SpanContext().TraceID().String()) {
					t.Errorf("%s %s: traceparent %q lacks trace id %s", q.method, q.path, q.traceparent, rec.SpanContext().TraceID())
				}
			}
		})
	}

	var cm corev1.ConfigMap
	if !api.get("configmaps", ns, "w"+ChildSuffix, &cm) || cm.Data["size"] != "7" {
		t.Errorf("configmap after the spec change = %+v, want size 7", cm.Data)
	}
}
