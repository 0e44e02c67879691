package main

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/opsight/opsight/instrument"
)

const ns = "shop"

func testScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s, err := newScheme()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func widget(name string, gen int64, size int32, msg string, st WidgetStatus) *Widget {
	return &Widget{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("uid-" + name), Generation: gen},
		Spec:       WidgetSpec{Size: size, Message: msg},
		Status:     st,
	}
}

// ownedConfigMap is the child as an earlier reconcile left it.
func ownedConfigMap(t *testing.T, s *runtime.Scheme, owner *Widget, data map[string]string) *corev1.ConfigMap {
	t.Helper()
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: owner.Name + ChildSuffix, Namespace: ns,
			Labels: map[string]string{LabelManagedBy: ManagedBy, LabelWidget: owner.Name}},
		Data: data,
	}
	if err := controllerutil.SetControllerReference(owner, cm, s); err != nil {
		t.Fatal(err)
	}
	return cm
}

func newFakeClient(s *runtime.Scheme, objs ...client.Object) client.Client {
	return fake.NewClientBuilder().WithScheme(s).WithStatusSubresource(&Widget{}).WithObjects(objs...).Build()
}

func TestReconcile(t *testing.T) {
	s := testScheme(t)
	readyGen := func(g int64) WidgetStatus {
		return WidgetStatus{ObservedGeneration: g, Ready: true, ConfigMap: "w" + ChildSuffix}
	}
	w1 := widget("w", 1, 3, "hello", WidgetStatus{})
	w2 := widget("w", 2, 5, "bye", readyGen(1))
	w3 := widget("w", 3, 5, "bye", readyGen(3))
	other := widget("other", 1, 0, "", WidgetStatus{})

	for _, tc := range []struct {
		name       string
		objs       []client.Object
		wantData   map[string]string // nil: no ConfigMap expected
		wantStatus WidgetStatus
	}{{
		name:       "creates the configmap with an owner reference",
		objs:       []client.Object{w1},
		wantData:   map[string]string{"size": "3", "message": "hello"},
		wantStatus: readyGen(1),
	}, {
		name:       "updates the configmap when the spec changed",
		objs:       []client.Object{w2, ownedConfigMap(t, s, w2, map[string]string{"size": "3", "message": "hello"})},
		wantData:   map[string]string{"size": "5", "message": "bye"},
		wantStatus: readyGen(2),
	}, {
		name:       "restores a configmap edited by hand",
		objs:       []client.Object{w3, ownedConfigMap(t, s, w3, map[string]string{"size": "99", "extra": "x"})},
		wantData:   map[string]string{"size": "5", "message": "bye"},
		wantStatus: readyGen(3),
	}, {
		name: "widget gone: nothing created, no error",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newFakeClient(s, tc.objs...)
			r := &WidgetReconciler{Client: c, Scheme: s}
			req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "w"}}
			if res, err := r.Reconcile(context.Background(), req); err != nil || res != (ctrl.Result{}) {
				t.Fatalf("Reconcile = %+v, %v", res, err)
			}

			var cm corev1.ConfigMap
			err := c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "w" + ChildSuffix}, &cm)
			if tc.wantData == nil {
				if err == nil {
					t.Fatalf("configmap created for a missing widget: %+v", cm)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(cm.Data, tc.wantData) {
				t.Errorf("configmap data = %v, want %v", cm.Data, tc.wantData)
			}
			if cm.Labels[LabelManagedBy] != ManagedBy || cm.Labels[LabelWidget] != "w" {
				t.Errorf("configmap labels = %v", cm.Labels)
			}
			want := metav1.OwnerReference{APIVersion: "demo.opsight.dev/v1alpha1", Kind: "Widget", Name: "w",
				UID: "uid-w", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}
			if len(cm.OwnerReferences) != 1 || !equalOwnerRef(cm.OwnerReferences[0], want) {
				t.Errorf("owner references = %+v, want [%+v]", cm.OwnerReferences, want)
			}

			var got Widget
			if err := c.Get(context.Background(), req.NamespacedName, &got); err != nil {
				t.Fatal(err)
			}
			if got.Status != tc.wantStatus {
				t.Errorf("status = %+v, want %+v", got.Status, tc.wantStatus)
			}
		})
	}

	t.Run("configmap owned by another controller is an error", func(t *testing.T) {
		// "w-widget" exists, but is controlled by the Widget "other".
		cm := ownedConfigMap(t, s, other, nil)
		cm.Name = "w" + ChildSuffix
		c := newFakeClient(s, w1, cm)
		r := &WidgetReconciler{Client: c, Scheme: s}
		_, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "w"}})
		var owned *controllerutil.AlreadyOwnedError
		if !errors.As(err, &owned) {
			t.Fatalf("Reconcile error = %v, want AlreadyOwnedError", err)
		}
		var got Widget
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(w1), &got); err != nil {
			t.Fatal(err)
		}
		if got.Status.Ready {
			t.Errorf("status ready although the configmap is not ours: %+v", got.Status)
		}
	})
}

func equalOwnerRef(a, b metav1.OwnerReference) bool {
	return a.APIVersion == b.APIVersion && a.Kind == b.Kind && a.Name == b.Name && a.UID == b.UID &&
		ptr.Deref(a.Controller, false) == ptr.Deref(b.Controller, false) &&
		ptr.Deref(a.BlockOwnerDeletion, false) == ptr.Deref(b.BlockOwnerDeletion, false)
}

func newRecorder() (*tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	sr := tracetest.NewSpanRecorder()
	return sr, sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
}

// TestReconcileLogsCarryTraceID: the reconciler logs through the
// reconcile's logger, so with instrument.Reconciler every line carries the
// Reconcile span's trace_id and span_id.
func TestReconcileLogsCarryTraceID(t *testing.T) {
	s := testScheme(t)
	sr, tp := newRecorder()
	var lines []map[string]any
	logger := funcr.NewJSON(func(obj string) {
		var m map[string]any
		if err := json.Unmarshal([]byte(obj), &m); err != nil {
			t.Errorf("log line %q: %v", obj, err)
		}
		lines = append(lines, m)
	}, funcr.Options{})
	ctx := log.IntoContext(context.Background(), logger)

	r := instrument.Reconciler(ControllerName, &WidgetReconciler{Client: newFakeClient(s, widget("w", 1, 1, "m", WidgetStatus{})), Scheme: s},
		instrument.WithTracerProvider(tp))
	if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "w"}}); err != nil {
		t.Fatal(err)
	}
	spans := sr.Ended()
	if len(spans) != 1 || spans[0].Name() != instrument.SpanNameReconcile {
		t.Fatalf("spans = %v, want one %s", spanNames(spans), instrument.SpanNameReconcile)
	}
	sc := spans[0].SpanContext()
	var msgs []string
	for _, l := range lines {
		msgs = append(msgs, l["msg"].(string))
		if l["trace_id"] != sc.TraceID().String() || l["span_id"] != sc.SpanID().String() {
			t.Errorf("line %v: trace_id/span_id, want %s/%s", l, sc.TraceID(), sc.SpanID())
		}
	}
	want := []string{"reconciling widget", "configmap created", "status patched"}
	if !slices.Equal(msgs, want) {
		t.Errorf("messages = %q, want %q", msgs, want)
	}
}

func TestExtraDelayInsideReconcileSpan(t *testing.T) {
	s := testScheme(t)
	const delay = 60 * time.Millisecond
	for _, tc := range []struct {
		name    string
		delay   time.Duration
		atLeast time.Duration
	}{
		{"no delay", 0, 0},
		{"with delay", delay, delay},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sr, tp := newRecorder()
			r := instrument.Reconciler(ControllerName, &WidgetReconciler{Client: newFakeClient(s, widget("w", 1, 1, "m", WidgetStatus{})), Scheme: s, Delay: tc.delay},
				instrument.WithTracerProvider(tp))
			start := time.Now()
			if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "w"}}); err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			spans := sr.Ended()
			if len(spans) != 1 {
				t.Fatalf("spans = %v", spanNames(spans))
			}
			d := spans[0].EndTime().Sub(spans[0].StartTime())
			if d < tc.atLeast {
				t.Errorf("Reconcile span lasted %s, want >= %s (the delay must be inside the span)", d, tc.atLeast)
			}
			if took < tc.atLeast {
				t.Errorf("Reconcile took %s, want >= %s", took, tc.atLeast)
			}
		})
	}

	t.Run("cancelled context ends the delay", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		r := &WidgetReconciler{Client: newFakeClient(s, widget("w", 1, 1, "m", WidgetStatus{})), Scheme: s, Delay: time.Hour}
		_, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "w"}})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Reconcile error = %v, want context.Canceled", err)
		}
	})
}

func spanNames(spans []sdktrace.ReadOnlySpan) []string {
	var n []string
	for _, s := range spans {
		n = append(n, s.Name())
	}
	return n
}
