package instrument

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

func newRecorder() (*tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	sr := tracetest.NewSpanRecorder()
	return sr, sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
}

// logSink collects JSON log lines, as an operator's zap/JSON logger would.
type logSink struct {
	mu    sync.Mutex
	lines []map[string]any
}

func (s *logSink) logger() logr.Logger {
	return funcr.NewJSON(func(obj string) {
		var m map[string]any
		if err := json.Unmarshal([]byte(obj), &m); err != nil {
			panic(err)
		}
		s.mu.Lock()
		s.lines = append(s.lines, m)
		s.mu.Unlock()
	}, funcr.Options{})
}

func (s *logSink) find(msg string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		if l["msg"] == msg {
			return l
		}
	}
	return nil
}

// fakeReconciler logs one line through the reconcile's logger and returns err.
type fakeReconciler struct {
	err   error
	panic any
	ctx   context.Context
}

func (f *fakeReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	f.ctx = ctx
	log.FromContext(ctx).Info("reconciling", "object", req.String())
	if f.panic != nil {
		panic(f.panic)
	}
	return reconcile.Result{}, f.err
}

func attrMap(kvs []attribute.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value.String()
	}
	return m
}

func TestReconcilerSpanAndLogger(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus codes.Code
	}{
		{"success", nil, codes.Unset},
		{"error", errors.New("conflict: the object has been modified"), codes.Error},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sr, tp := newRecorder()
			logs := &logSink{}
			fake := &fakeReconciler{err: tt.err}
			r := Reconciler("widget", fake, WithTracerProvider(tp))
			ctx := log.IntoContext(context.Background(), logs.logger())
			req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "prod", Name: "w1"}}
			if _, err := r.Reconcile(ctx, req); !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v passed through", err, tt.err)
			}

			spans := sr.Ended()
			if len(spans) != 1 {
				t.Fatalf("%d spans, want 1", len(spans))
			}
			s := spans[0]
			if s.Name() != SpanNameReconcile || s.SpanKind() != trace.SpanKindServer {
				t.Errorf("span %q kind %v, want %q server", s.Name(), s.SpanKind(), SpanNameReconcile)
			}
			attrs := attrMap(s.Attributes())
			for k, want := range map[string]string{AttrController: "widget", AttrObjectNamespace: "prod", AttrObjectName: "w1"} {
				if attrs[k] != want {
					t.Errorf("attribute %s = %q, want %q", k, attrs[k], want)
				}
			}
			if _, ok := attrs[AttrReconcileID]; ok {
				t.Errorf("reconcile.id set without a reconcile id in the context: %q", attrs[AttrReconcileID])
			}
			if s.Status().Code != tt.wantStatus {
				t.Errorf("status %v, want %v", s.Status().Code, tt.wantStatus)
			}
			if tt.err != nil && (s.Status().Description != tt.err.Error() || len(s.Events()) == 0 || s.Events()[0].Name != "exception") {
				t.Errorf("error not recorded: status %q, events %v", s.Status().Description, s.Events())
			}

			line := logs.find("reconciling")
			if line == nil {
				t.Fatalf("reconciler's log line missing; got %v", logs.lines)
			}
			if line[LogTraceID] != s.SpanContext().TraceID().String() || line[LogSpanID] != s.SpanContext().SpanID().String() {
				t.Errorf("log line trace_id=%v span_id=%v, want %s %s", line[LogTraceID], line[LogSpanID], s.SpanContext().TraceID(), s.SpanContext().SpanID())
			}
			if got := trace.SpanContextFromContext(fake.ctx); got.SpanID() != s.SpanContext().SpanID() {
				t.Errorf("reconciler's ctx carries span %s, want the reconcile span %s", got.SpanID(), s.SpanContext().SpanID())
			}
		})
	}
}

func TestReconcilerPanicEndsSpanAsError(t *testing.T) {
	sr, tp := newRecorder()
	r := Reconciler("widget", &fakeReconciler{panic: "nil map"}, WithTracerProvider(tp))
	func() {
		defer func() {
			if p := recover(); p != "nil map" {
				t.Fatalf("recovered %v, want the reconciler's panic re-raised", p)
			}
		}()
		_, _ = r.Reconcile(context.Background(), reconcile.Request{})
	}()
	spans := sr.Ended()
	if len(spans) != 1 || spans[0].Status().Code != codes.Error || !strings.Contains(spans[0].Status().Description, "panic: nil map") {
		t.Fatalf("spans %v, want one ended with error status naming the panic", spans)
	}
}

// TestInController runs the wrapper inside a real controller-runtime
// controller (no API server: a channel source), so the reconcile id and the
// logger come from controller-runtime itself.
func TestInController(t *testing.T) {
	sr, tp := newRecorder()
	logs := &logSink{}
	done := make(chan struct{}, 1)
	inner := reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
		log.FromContext(ctx).Info("reconciling")
		done <- struct{}{}
		return reconcile.Result{}, nil
	})
	c, err := controller.NewUnmanaged("widget", controller.Options{
		Reconciler:         Reconciler("widget", inner, WithTracerProvider(tp)),
		Logger:             logs.logger(),
		SkipNameValidation: ptr.To(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan event.GenericEvent, 1)
	if err := c.Watch(source.Channel(events, &handler.EnqueueRequestForObject{})); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = c.Start(ctx) }()
	events <- event.GenericEvent{Object: &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "w1"}}}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("controller did not reconcile within 10s")
	}
	cancel()

	line := logs.find("reconciling")
	if line == nil {
		t.Fatalf("log line missing; got %v", logs.lines)
	}
	var span sdktrace.ReadOnlySpan
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if e := sr.Ended(); len(e) > 0 {
			span = e[0]
			break
		}
	}
	if span == nil {
		t.Fatal("no span ended")
	}
	attrs := attrMap(span.Attributes())
	rid, _ := line["reconcileID"].(string)
	if rid == "" || attrs[AttrReconcileID] != rid {
		t.Errorf("span reconcile.id %q, log reconcileID %q: want equal and set", attrs[AttrReconcileID], rid)
	}
	if attrs[AttrObjectNamespace] != "prod" || attrs[AttrObjectName] != "w1" || attrs[AttrController] != "widget" {
		t.Errorf("span attributes %v", attrs)
	}
	if line[LogTraceID] != span.SpanContext().TraceID().String() || line[LogSpanID] != span.SpanContext().SpanID().String() {
		t.Errorf("log line %v lacks the span's trace_id/span_id", line)
	}
	if line["controller"] != "widget" {
		t.Errorf("controller-runtime's own values lost: %v", line)
	}
}
