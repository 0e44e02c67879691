package componentcheck

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
)

// TestConfig returns the factory's default configuration with metadata.yaml's
// tests.config merged over it, validated: the configuration the lifecycle
// test creates the component with.
func TestConfig(t *testing.T, f component.Factory, m Metadata) component.Config {
	t.Helper()
	cfg := f.CreateDefaultConfig()
	if len(m.Tests.Config) > 0 {
		dir := ""
		raw := substitute(m.Tests.Config, func(s string) string {
			if !strings.Contains(s, "${tempdir}") {
				return s
			}
			if dir == "" {
				dir = t.TempDir()
			}
			return strings.ReplaceAll(s, "${tempdir}", dir)
		}).(map[string]any)
		if err := confmap.NewFromStringMap(raw).Unmarshal(cfg); err != nil {
			t.Fatalf("metadata.yaml tests.config: %v", err)
		}
	}
	if err := confmap.Validate(cfg); err != nil {
		t.Fatalf("the lifecycle test's configuration is invalid (set tests.config in metadata.yaml): %v", err)
	}
	return cfg
}

func substitute(v any, fn func(string) string) any {
	switch v := v.(type) {
	case string:
		return fn(v)
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = substitute(e, fn)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = substitute(e, fn)
		}
		return out
	}
	return v
}

// Lifecycle is the collector's generated lifecycle test: for every signal
// the factory creates, the component is created with cfg, started with a nop
// host and shut down; then created again and shut down without being started
// (what the collector does when another component fails to start).
func Lifecycle(t *testing.T, f component.Factory, cfg component.Config) {
	sigs := Signals(f)
	if len(sigs) == 0 {
		t.Fatalf("factory %s creates nothing", f.Type())
	}
	for _, sig := range sigs {
		t.Run(sig+"/start_shutdown", func(t *testing.T) {
			c := create(t, f, sig, cfg)
			if err := c.Start(context.Background(), componenttest.NewNopHost()); err != nil {
				t.Fatalf("Start: %v", err)
			}
			if err := c.Shutdown(context.Background()); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
		})
		t.Run(sig+"/shutdown_without_start", func(t *testing.T) {
			c := create(t, f, sig, cfg)
			if err := c.Shutdown(context.Background()); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
		})
	}
}

func create(t *testing.T, f component.Factory, sig string, cfg component.Config) component.Component {
	t.Helper()
	ctx := context.Background()
	var (
		c   component.Component
		err error
	)
	switch f := f.(type) {
	case receiver.Factory:
		set, next := receivertest.NewNopSettings(f.Type()), consumertest.NewNop()
		switch sig {
		case "traces":
			c, err = f.CreateTraces(ctx, set, cfg, next)
		case "metrics":
			c, err = f.CreateMetrics(ctx, set, cfg, next)
		case "logs":
			c, err = f.CreateLogs(ctx, set, cfg, next)
		}
	case processor.Factory:
		set, next := processortest.NewNopSettings(f.Type()), consumertest.NewNop()
		switch sig {
		case "traces":
			c, err = f.CreateTraces(ctx, set, cfg, next)
		case "metrics":
			c, err = f.CreateMetrics(ctx, set, cfg, next)
		case "logs":
			c, err = f.CreateLogs(ctx, set, cfg, next)
		}
	case exporter.Factory:
		set := exportertest.NewNopSettings(f.Type())
		switch sig {
		case "traces":
			c, err = f.CreateTraces(ctx, set, cfg)
		case "metrics":
			c, err = f.CreateMetrics(ctx, set, cfg)
		case "logs":
			c, err = f.CreateLogs(ctx, set, cfg)
		}
	case extension.Factory:
		c, err = f.Create(ctx, extensiontest.NewNopSettings(f.Type()), cfg)
	}
	if err != nil {
		t.Fatalf("creating %s %s: %v", f.Type(), sig, err)
	}
	if c == nil {
		t.Fatalf("creating %s %s returned no component", f.Type(), sig)
	}
	return c
}
