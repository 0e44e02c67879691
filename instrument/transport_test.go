package instrument

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

func TestAPIResource(t *testing.T) {
	tests := []struct{ path, want string }{
		{"/api/v1/pods", "pods"},
		{"/api/v1/namespaces/prod/pods", "pods"},
		{"/api/v1/namespaces/prod/pods/web-0", "pods"},
		{"/api/v1/namespaces/prod/pods/web-0/log", "pods/log"},
		{"/api/v1/namespaces", "namespaces"},
		{"/api/v1/namespaces/prod", "namespaces"},
		{"/api/v1/namespaces/prod/status", "namespaces/status"},
		{"/apis/apps/v1/namespaces/prod/deployments/web/status", "deployments/status"},
		{"/apis/apps/v1/deployments", "deployments"},
		{"/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/my-op", "leases"},
		{"/api/v1/watch/namespaces/prod/configmaps", "configmaps"},
		{"/api/v1/nodes/node-1", "nodes"},
		{"/apis/apps/v1", ""},
		{"/api", ""},
		{"/healthz", ""},
		{"/version", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := APIResource(tt.path); got != tt.want {
			t.Errorf("APIResource(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}

func FuzzAPIResource(f *testing.F) {
	for _, s := range []string{"/api/v1/namespaces/a/pods/b/log", "/apis/g/v/x", "//", "/api/v1/namespaces/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		got := APIResource(path)
		// At most resource/subresource, and only path segments.
		if strings.Count(got, "/") > 1 || (got != "" && !strings.Contains(path, strings.Split(got, "/")[0])) {
			t.Fatalf("APIResource(%q) = %q", path, got)
		}
	})
}

// TestTransportChildSpans calls a fake API server through client-go with the
// wrapped rest.Config, inside a wrapped reconcile.
func TestTransportChildSpans(t *testing.T) {
	var gotTraceparent string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotTraceparent = r.Header.Get("traceparent")
		if r.URL.Path != "/api/v1/namespaces/prod/configmaps/cfg" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(&corev1.ConfigMap{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "cfg"},
		})
	}))
	defer api.Close()

	sr, tp := newRecorder()
	prop := propagation.TraceContext{}
	cfg := WrapConfig(&rest.Config{Host: api.URL}, WithTracerProvider(tp), WithPropagator(prop))
	client, err := corev1client.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := Reconciler("widget", reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
		_, err := client.ConfigMaps(req.Namespace).Get(ctx, req.Name, metav1.GetOptions{})
		return reconcile.Result{}, err
	}), WithTracerProvider(tp))
	if _, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "prod", Name: "cfg"}}); err != nil {
		t.Fatalf("reconcile: %v", err)
	}

	spans := sr.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want client + reconcile", len(spans))
	}
	client0, parent := spans[0], spans[1]
	if client0.SpanKind() != trace.SpanKindClient || client0.Name() != "GET configmaps" {
		t.Errorf("first span %q kind %v, want \"GET configmaps\" client", client0.Name(), client0.SpanKind())
	}
	if parent.Name() != SpanNameReconcile {
		t.Fatalf("second span %q, want %q", parent.Name(), SpanNameReconcile)
	}
	if client0.Parent().SpanID() != parent.SpanContext().SpanID() || client0.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Errorf("client span's parent %s, want the reconcile span %s", client0.Parent().SpanID(), parent.SpanContext().SpanID())
	}
	want := "00-" + client0.SpanContext().TraceID().String() + "-" + client0.SpanContext().SpanID().String() + "-01"
	if gotTraceparent != want {
		t.Errorf("API server saw traceparent %q, want %q", gotTraceparent, want)
	}
}

func TestWrapConfigLeavesInputAlone(t *testing.T) {
	in := &rest.Config{Host: "https://example.invalid"}
	out := WrapConfig(in)
	if in.WrapTransport != nil || out.WrapTransport == nil || out == in {
		t.Fatalf("input wrapped %v, output wrapped %v, same %v", in.WrapTransport != nil, out.WrapTransport != nil, out == in)
	}
}

func TestSpanNameWatch(t *testing.T) {
	req := httptest.NewRequest(http.MethodGet, "/api/v1/namespaces/prod/pods?watch=true&resourceVersion=5", nil)
	if got := SpanName(req); got != "WATCH pods" {
		t.Fatalf("SpanName = %q, want \"WATCH pods\"", got)
	}
}
