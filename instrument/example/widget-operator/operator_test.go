package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/opsight/opsight/instrument"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestOperator runs the whole operator as main does (manager, informers,
// controller, production zap logger) against the fake API server: every
// line a reconcile logs must be JSON with its reconcileID and the trace_id
// of the Reconcile span carrying that reconcile.id, and the reconcile's
// API calls child client spans.
func TestOperator(t *testing.T) {
	api := newFakeAPI(t)
	api.put("widgets", widget("a", 1, 1, "one", WidgetStatus{}))
	api.put("widgets", widget("b", 1, 2, "two", WidgetStatus{}))

	sr, tp := newRecorder()
	tracing := []instrument.Option{instrument.WithTracerProvider(tp), instrument.WithPropagator(propagation.TraceContext{})}
	var out syncBuffer
	c := config{metricsAddr: "0", probeAddr: "0", maxConcurrentReconciles: 2, skipNameValidation: true}
	mgr, err := newManager(instrument.WrapConfig(api.config(), tracing...), c, newLogger(zap.Options{}, &out), tracing...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- mgr.Start(ctx) }()

	deadline := time.Now().Add(30 * time.Second)
	for _, name := range []string{"a", "b"} {
		for {
			var w Widget
			if api.get("widgets", ns, name, &w) && w.Status.Ready {
				break
			}
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("widget %s never ready; operator output:\n%s", name, out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	cancel()
	if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("manager: %v", err)
	}

	// Reconcile spans by reconcile.id.
	reconciles := map[string]sdktrace.ReadOnlySpan{}
	children := map[trace.SpanID][]string{}
	for _, sp := range sr.Ended() {
		if sp.Name() == instrument.SpanNameReconcile {
			for _, kv := range sp.Attributes() {
				if string(kv.Key) == instrument.AttrReconcileID {
					reconciles[kv.Value.AsString()] = sp
				}
			}
		} else if sp.SpanKind() == trace.SpanKindClient {
			children[sp.Parent().SpanID()] = append(children[sp.Parent().SpanID()], sp.Name())
		}
	}
	if len(reconciles) < 2 {
		t.Fatalf("%d Reconcile spans with a reconcile.id, want >= 2", len(reconciles))
	}
	for id, sp := range reconciles {
		if got := children[sp.SpanContext().SpanID()]; len(got) == 0 || got[0] != "GET widgets" {
			t.Errorf("reconcile %s: client spans %q, want GET widgets first", id, got)
		}
	}

	created := map[string]bool{}
	shown := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("not a JSON line: %q", line)
			continue
		}
		if m["level"] == nil || m["ts"] == nil || m["msg"] == nil {
			t.Errorf("line lacks level/ts/msg: %s", line)
		}
		id, _ := m["reconcileID"].(string)
		if id == "" {
			continue
		}
		sp, ok := reconciles[id]
		if !ok {
			t.Errorf("line with reconcileID %s but no such Reconcile span: %s", id, line)
			continue
		}
		if m["trace_id"] != sp.SpanContext().TraceID().String() || m["span_id"] != sp.SpanContext().SpanID().String() {
			t.Errorf("line %s: want trace_id %s span_id %s", line, sp.SpanContext().TraceID(), sp.SpanContext().SpanID())
		}
		if m["controller"] != ControllerName {
			t.Errorf("line %s: controller %v, want %s", line, m["controller"], ControllerName)
		}
		if m["msg"] == "configmap created" {
			created[m["name"].(string)] = true
		}
		if msg := m["msg"].(string); !shown[msg] {
			t.Logf("operator line: %s", line)
			shown[msg] = true
		}
	}
	if !created["a"] || !created["b"] {
		t.Errorf(`"configmap created" logged for %v, want a and b`, created)
	}
}
