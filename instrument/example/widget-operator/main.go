// Command widget-operator is a small controller-runtime operator
// instrumented with github.com/opsight/opsight/instrument: for each Widget
// (demo.opsight.dev/v1alpha1, crd.yaml) it keeps a ConfigMap "<name>-widget"
// and patches the Widget's status. Each reconcile is a "Reconcile" span, its
// API calls child client spans, its JSON log lines carry the trace_id. See
// README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/go-logr/logr"
	"go.opentelemetry.io/otel"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/opsight/opsight/instrument"
)

// Set at build time: go build -ldflags "-X main.extraDelay=30ms -X main.revision=v2".
var (
	// extraDelay is the default of -extra-delay: slept inside every
	// reconcile, so a build with it differs from one without only in latency
	// (the release gate's test subject).
	extraDelay = "0s"
	// revision is the default of -revision (resource service.version).
	revision = ""
)

// DefaultServiceName is the service.name when neither -service-name nor
// OTEL_SERVICE_NAME is set.
const DefaultServiceName = "widget-operator"

// LeaderElectionID is the Lease's name when -leader-elect is on.
const LeaderElectionID = "widget-operator.demo.opsight.dev"

type config struct {
	revision                string
	serviceName             string
	otlpProtocol            string
	otlpEndpoint            string
	extraDelay              time.Duration
	metricsAddr             string
	probeAddr               string
	leaderElect             bool
	leaderElectionNamespace string
	watchNamespace          string
	maxConcurrentReconciles int
	skipNameValidation      bool // tests: several managers in one process
}

// parseFlags registers the operator's flags on fs and parses args. getenv
// supplies OTEL_SERVICE_NAME and OTEL_EXPORTER_OTLP_PROTOCOL.
func parseFlags(fs *flag.FlagSet, args []string, getenv func(string) string) (config, error) {
	defDelay, err := time.ParseDuration(extraDelay)
	if err != nil {
		return config{}, fmt.Errorf("build variable main.extraDelay=%q: %w", extraDelay, err)
	}
	proto := getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	if proto == "" {
		proto = instrument.ProtocolGRPC
	}
	var c config
	fs.StringVar(&c.revision, "revision", revision, "the release (image tag or git SHA): resource service.version of the spans")
	fs.StringVar(&c.serviceName, "service-name", "", "resource service.name (default $OTEL_SERVICE_NAME, else "+DefaultServiceName+")")
	fs.StringVar(&c.otlpProtocol, "otlp-protocol", proto, "OTLP protocol to the sidecar: grpc or http/protobuf (default from $OTEL_EXPORTER_OTLP_PROTOCOL when set)")
	fs.StringVar(&c.otlpEndpoint, "otlp-endpoint", "", "sidecar OTLP host:port (default $OTEL_EXPORTER_OTLP_ENDPOINT, else 127.0.0.1:4317 for grpc / 127.0.0.1:4318 for http/protobuf)")
	fs.DurationVar(&c.extraDelay, "extra-delay", defDelay, "sleep inside every reconcile (default from -ldflags -X main.extraDelay)")
	fs.StringVar(&c.metricsAddr, "metrics-bind-address", "0", `controller-runtime metrics address (":8080"); "0" turns it off`)
	fs.StringVar(&c.probeAddr, "health-probe-bind-address", "0", `healthz/readyz address (":8081"); "0" turns it off`)
	fs.BoolVar(&c.leaderElect, "leader-elect", false, "leader election through a Lease "+LeaderElectionID)
	fs.StringVar(&c.leaderElectionNamespace, "leader-election-namespace", "", "namespace of the Lease (needed out of cluster with -leader-elect)")
	fs.StringVar(&c.watchNamespace, "watch-namespace", "", "watch Widgets and ConfigMaps in this namespace only (default all)")
	fs.IntVar(&c.maxConcurrentReconciles, "max-concurrent-reconciles", 1, "reconciles run in parallel")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.extraDelay < 0 {
		return config{}, fmt.Errorf("-extra-delay %s is negative", c.extraDelay)
	}
	if c.maxConcurrentReconciles < 1 {
		return config{}, fmt.Errorf("-max-concurrent-reconciles %d: need at least 1", c.maxConcurrentReconciles)
	}
	if c.otlpProtocol != instrument.ProtocolGRPC && c.otlpProtocol != instrument.ProtocolHTTP {
		return config{}, fmt.Errorf("-otlp-protocol %q: want %s or %s", c.otlpProtocol, instrument.ProtocolGRPC, instrument.ProtocolHTTP)
	}
	if c.serviceName == "" {
		c.serviceName = getenv("OTEL_SERVICE_NAME")
	}
	if c.serviceName == "" {
		c.serviceName = DefaultServiceName
	}
	return c, nil
}

// newLogger is controller-runtime's zap logger: production settings (JSON
// lines, info level, RFC 3339 time) unless the -zap-* flags say otherwise.
func newLogger(o zap.Options, w io.Writer) logr.Logger {
	o.DestWriter = w
	return zap.New(zap.UseFlagOptions(&o))
}

// newScheme holds the built-in types (ConfigMap) and Widget.
func newScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

func main() {
	var zopts zap.Options
	zopts.BindFlags(flag.CommandLine) // -zap-log-level, -zap-encoder, …
	// flag.CommandLine also holds controller-runtime's -kubeconfig.
	c, err := parseFlags(flag.CommandLine, os.Args[1:], os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "widget-operator:", err)
		os.Exit(2)
	}
	logger := newLogger(zopts, os.Stdout)
	ctrl.SetLogger(logger)
	// client-go's own lines (throttling, watch errors) and the OpenTelemetry
	// SDK's (export failures) as JSON lines too.
	klog.SetLogger(logger)
	otel.SetLogger(logger.WithName("otel"))
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { logger.WithName("otel").Error(err, "opentelemetry") }))
	if err := run(ctrl.SetupSignalHandler(), c, logger); err != nil {
		logger.Error(err, "widget-operator failed")
		os.Exit(1)
	}
}

func run(ctx context.Context, c config, logger logr.Logger) error {
	// 1. Spans to the sidecar over OTLP.
	shutdown, err := instrument.Setup(ctx, instrument.SetupOptions{
		ServiceName:    c.serviceName,
		ServiceVersion: c.revision,
		Protocol:       c.otlpProtocol,
		Endpoint:       c.otlpEndpoint,
	})
	if err != nil {
		return err
	}
	defer func() {
		// Flush the last spans, even after ctx is cancelled by SIGTERM. A
		// sidecar already gone costs spans, not the operator's exit status.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdown(sctx); err != nil {
			logger.Error(err, "flushing spans to the sidecar failed")
		}
	}()

	// 2. API calls become client spans (--kubeconfig / $KUBECONFIG / in-cluster).
	// controller-runtime turns client-go's client-side rate limit off
	// (QPS -1; the API server's priority and fairness applies): a
	// reconcile's latency is its own, not a wait for a token.
	restCfg := instrument.WrapConfig(ctrl.GetConfigOrDie())

	// 3. The manager, and the Widget controller in a Reconcile span.
	mgr, err := newManager(restCfg, c, logger)
	if err != nil {
		return err
	}

	logger.WithName("setup").Info("starting widget-operator", "revision", c.revision, "service", c.serviceName,
		"extraDelay", c.extraDelay.String(), "watchNamespace", c.watchNamespace)
	return mgr.Start(ctx)
}

// newManager builds the manager and registers the Widget controller,
// wrapped by instrument.Reconciler (tracing options: tests).
func newManager(restCfg *rest.Config, c config, logger logr.Logger, tracing ...instrument.Option) (ctrl.Manager, error) {
	scheme, err := newScheme()
	if err != nil {
		return nil, err
	}
	opts := ctrl.Options{
		Scheme:                  scheme,
		Logger:                  logger,
		Metrics:                 metricsserver.Options{BindAddress: c.metricsAddr},
		HealthProbeBindAddress:  c.probeAddr,
		LeaderElection:          c.leaderElect,
		LeaderElectionID:        LeaderElectionID,
		LeaderElectionNamespace: c.leaderElectionNamespace,
		// Reads go to the API server, not the informer cache: every
		// reconcile then makes real API calls (GET widgets, GET configmaps),
		// each a child span, and a ConfigMap just created is never missed
		// by a stale cache.
		Client: client.Options{Cache: &client.CacheOptions{
			DisableFor: []client.Object{&Widget{}, &corev1.ConfigMap{}},
		}},
	}
	if c.watchNamespace != "" {
		opts.Cache.DefaultNamespaces = map[string]cache.Config{c.watchNamespace: {}}
	}
	mgr, err := ctrl.NewManager(restCfg, opts)
	if err != nil {
		return nil, fmt.Errorf("manager: %w", err)
	}
	if c.probeAddr != "0" {
		if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
			return nil, err
		}
		if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
			return nil, err
		}
	}
	// Each reconcile is a Reconcile span; its logger gets trace_id/span_id.
	r := &WidgetReconciler{Client: mgr.GetClient(), Scheme: scheme, Delay: c.extraDelay}
	if err := r.SetupWithManager(mgr, controller.Options{
		MaxConcurrentReconciles: c.maxConcurrentReconciles,
		SkipNameValidation:      &c.skipNameValidation,
	}, tracing...); err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	return mgr, nil
}
