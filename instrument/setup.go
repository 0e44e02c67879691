package instrument

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Protocols Setup can export with.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// The sidecar's OTLP listeners (pod-local).
const (
	DefaultGRPCEndpoint = "127.0.0.1:4317"
	DefaultHTTPEndpoint = "127.0.0.1:4318"
)

// SetupOptions configures Setup. Only ServiceName is required.
type SetupOptions struct {
	// ServiceName is the resource service.name (e.g. "my-operator").
	// Empty: OTEL_SERVICE_NAME, else an error.
	ServiceName string
	// ServiceVersion is the resource service.version: the revision
	// (image tag or git SHA). The sidecar fills it from its own revision
	// when empty, and keeps a differing value as opsight.original_version.
	ServiceVersion string
	// Protocol is ProtocolGRPC (default) or ProtocolHTTP.
	Protocol string
	// Endpoint is host:port of the sidecar. Empty: OTEL_EXPORTER_OTLP_ENDPOINT
	// / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT when set, else 127.0.0.1:4317
	// (gRPC) or 127.0.0.1:4318 (HTTP).
	Endpoint string
	// Secure enables TLS; the sidecar listens in plain text on loopback.
	Secure bool
	// SampleRatio is the fraction of new traces recorded (parent-based);
	// 0 means 1 (all: the operator's reconcile rate is low, the sidecar
	// can sample downstream).
	SampleRatio float64
	// BatchTimeout is how long spans wait before export (default 1s,
	// short so traces appear while a reconcile is being investigated).
	BatchTimeout time.Duration
}

// Setup installs a global TracerProvider exporting over OTLP to the sidecar,
// and the W3C trace-context + baggage propagator. Call the returned function
// on exit to flush spans. The exporter connects lazily: Setup succeeds
// while the sidecar is still starting.
func Setup(ctx context.Context, o SetupOptions) (shutdown func(context.Context) error, err error) {
	tp, err := NewTracerProvider(ctx, o)
	if err != nil {
		return nil, err
	}
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return tp.Shutdown, nil
}

// NewTracerProvider is Setup without touching the globals.
func NewTracerProvider(ctx context.Context, o SetupOptions) (*sdktrace.TracerProvider, error) {
	name := o.ServiceName
	if name == "" {
		name = os.Getenv("OTEL_SERVICE_NAME")
	}
	if name == "" {
		return nil, errors.New("instrument.Setup: ServiceName is empty and OTEL_SERVICE_NAME is unset: set one to the operator's name")
	}
	if o.SampleRatio < 0 || o.SampleRatio > 1 {
		return nil, fmt.Errorf("instrument.Setup: SampleRatio must be within [0, 1], got %v", o.SampleRatio)
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", name)}
	if o.ServiceVersion != "" {
		attrs = append(attrs, attribute.String("service.version", o.ServiceVersion))
	}
	// Our attributes win over OTEL_RESOURCE_ATTRIBUTES and the SDK defaults.
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attrs...))
	if err != nil {
		return nil, fmt.Errorf("instrument.Setup: building the resource: %w", err)
	}

	exp, err := newExporter(ctx, o)
	if err != nil {
		return nil, err
	}
	ratio := o.SampleRatio
	if ratio == 0 {
		ratio = 1
	}
	batch := o.BatchTimeout
	if batch <= 0 {
		batch = time.Second
	}
	return sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(batch)),
	), nil
}

func envEndpointSet() bool {
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

func newExporter(ctx context.Context, o SetupOptions) (sdktrace.SpanExporter, error) {
	switch o.Protocol {
	case "", ProtocolGRPC:
		var opts []otlptracegrpc.Option
		if ep := o.Endpoint; ep != "" || !envEndpointSet() {
			if ep == "" {
				ep = DefaultGRPCEndpoint
			}
			opts = append(opts, otlptracegrpc.WithEndpoint(ep))
		}
		if !o.Secure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		exp, err := otlptracegrpc.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("instrument.Setup: OTLP/gRPC exporter: %w", err)
		}
		return exp, nil
	case ProtocolHTTP:
		var opts []otlptracehttp.Option
		if ep := o.Endpoint; ep != "" || !envEndpointSet() {
			if ep == "" {
				ep = DefaultHTTPEndpoint
			}
			opts = append(opts, otlptracehttp.WithEndpoint(ep))
		}
		if !o.Secure {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		exp, err := otlptracehttp.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("instrument.Setup: OTLP/HTTP exporter: %w", err)
		}
		return exp, nil
	default:
		return nil, fmt.Errorf("instrument.Setup: Protocol %q is not supported: use %q or %q", o.Protocol, ProtocolGRPC, ProtocolHTTP)
	}
}
