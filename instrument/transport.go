package instrument

import (
	"net/http"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"k8s.io/client-go/rest"
)

// Transport wraps rt so each request is a client span, child of the span in
// the request's context (the reconcile's, when client-go is called with the
// reconcile's ctx), and carries traceparent. Span names are "<METHOD>
// <resource>" ("GET pods", "PATCH deployments/status"): low cardinality, as
// the sidecar turns span names into metric labels.
func Transport(rt http.RoundTripper, opts ...Option) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	o := newOptions(opts)
	return otelhttp.NewTransport(rt,
		otelhttp.WithTracerProvider(o.tp),
		otelhttp.WithPropagators(o.propagator),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			return SpanName(r)
		}))
}

// WrapConfig returns a copy of cfg whose transport is wrapped by Transport,
// for manager.New / client.New / kubernetes.NewForConfig.
func WrapConfig(cfg *rest.Config, opts ...Option) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.Wrap(func(rt http.RoundTripper) http.RoundTripper { return Transport(rt, opts...) })
	return c
}

// SpanName names a Kubernetes API request by method and resource.
func SpanName(r *http.Request) string {
	method := r.Method
	if r.URL.Query().Get("watch") == "true" || r.URL.Query().Get("watch") == "1" {
		method = "WATCH"
	}
	if res := APIResource(r.URL.Path); res != "" {
		return method + " " + res
	}
	return method
}

// APIResource extracts "resource" or "resource/subresource" from a
// Kubernetes API path (/api/v1/namespaces/ns/pods/name/log → "pods/log"),
// dropping namespace and object names. It returns "" for other paths
// (/healthz, /version, discovery).
func APIResource(path string) string {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(segs) >= 2 && segs[0] == "api":
		segs = segs[2:] // api/<version>
	case len(segs) >= 3 && segs[0] == "apis":
		segs = segs[3:] // apis/<group>/<version>
	default:
		return ""
	}
	if len(segs) > 0 && segs[0] == "watch" { // deprecated /watch/ prefix
		segs = segs[1:]
	}
	// namespaces/<ns>/<resource>… is namespaced; namespaces[/<name>] and
	// namespaces/<name>/{status,finalize} are the namespaces resource itself.
	if len(segs) >= 3 && segs[0] == "namespaces" {
		if len(segs) == 3 && (segs[2] == "status" || segs[2] == "finalize") {
			return "namespaces/" + segs[2]
		}
		segs = segs[2:]
	}
	switch len(segs) {
	case 0:
		return ""
	case 1, 2:
		return segs[0]
	default:
		return segs[0] + "/" + segs[2]
	}
}
