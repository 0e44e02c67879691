package helm

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/opsight/opsight/internal/testservers"
)

// gatewayConfig is the part of the rendered collector configuration the
// sampling tests read.
type gatewayConfig struct {
	Extensions map[string]map[string]any `json:"extensions"`
	Processors map[string]map[string]any `json:"processors"`
	Exporters  map[string]map[string]any `json:"exporters"`
	Service    struct {
		Extensions []string `json:"extensions"`
		Pipelines  map[string]struct {
			Receivers, Processors, Exporters []string
		} `json:"pipelines"`
	} `json:"service"`
}

// renderGatewayConfig renders the chart with the gateway on and returns the
// gateway's config.yaml (text and decoded) and its Deployment.
func renderGatewayConfig(t *testing.T, set ...string) (string, gatewayConfig, *appsv1.Deployment) {
	t.Helper()
	args := []string{"-f", ciValues(t, "gateway-on.yaml")}
	for _, s := range set {
		flag := "--set"
		if strings.Contains(s, "=0.") { // --set reads 0.05 as a string, the schema wants a number
			flag = "--set-json"
		}
		args = append(args, flag, s)
	}
	objs := render(t, args...)
	var text string
	for _, cm := range ofKind[*corev1.ConfigMap](objs) {
		if cm.Labels["app.kubernetes.io/component"] == "gateway" {
			text = cm.Data["config.yaml"]
		}
	}
	if text == "" {
		t.Fatal("no gateway ConfigMap with config.yaml")
	}
	var cfg gatewayConfig
	if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
		t.Fatalf("gateway config.yaml is not YAML: %v\n%s", err, text)
	}
	var dep *appsv1.Deployment
	for _, d := range ofKind[*appsv1.Deployment](objs) {
		if d.Spec.Template.Labels["app.kubernetes.io/component"] == "gateway" {
			dep = d
		}
	}
	if dep == nil {
		t.Fatal("no gateway Deployment")
	}
	return text, cfg, dep
}

// TestGatewaySampling: by default the gateway samples by zone at 1% in the
// pipeline that sends to Tempo, while a second pipeline fed by the same
// receiver derives RED metrics from every span (no sampler in front of
// redmetrics anywhere), and serves its metrics on the port the Service and
// ServiceMonitor scrape.
func TestGatewaySampling(t *testing.T) {
	// RED in the gateway is off by default (sidecars derive it); on, it must
	// see every span.
	_, def, _ := renderGatewayConfig(t)
	if _, ok := def.Exporters["redmetrics"]; ok {
		t.Errorf("the default gateway derives RED metrics too: with the sidecars' own, sums across targets count each span twice")
	}
	_, cfg, dep := renderGatewayConfig(t, "gateway.redMetrics.enabled=true")

	as, ok := cfg.Processors["adaptivesampling"]
	if !ok {
		t.Fatalf("no adaptivesampling processor: %v", cfg.Processors)
	}
	for k, want := range map[string]any{"key_attribute": "cloud.availability_zone", "baseline_ratio": 0.01, "p99_threshold": "2s",
		"window": "1m", "cooldown": "5m", "min_samples": float64(20), "max_keys": float64(1000), "error_ratio_threshold": float64(0)} {
		if as[k] != want {
			t.Errorf("adaptivesampling.%s = %#v, want %#v", k, as[k], want)
		}
	}
	if _, ok := as["enabled"]; ok {
		t.Error("the chart's switch gateway.sampling.enabled leaked into the processor's config")
	}

	traces, ok := cfg.Service.Pipelines["traces"]
	if !ok {
		t.Fatalf("no traces pipeline: %v", cfg.Service.Pipelines)
	}
	if !slices.Equal(traces.Processors, []string{"memory_limiter", "adaptivesampling", "batch"}) ||
		!slices.Equal(traces.Exporters, []string{"otlp_http/traces"}) || !slices.Equal(traces.Receivers, []string{"otlp"}) {
		t.Errorf("traces pipeline %+v, want otlp → memory_limiter, adaptivesampling, batch → otlp_http/traces", traces)
	}
	if cfg.Exporters["otlp_http/traces"]["endpoint"] != "http://tempo-distributor.monitoring.svc:4318" {
		t.Errorf("otlp_http/traces = %v, want gateway.tracesEndpoint", cfg.Exporters["otlp_http/traces"])
	}

	var red []string
	for name, p := range cfg.Service.Pipelines {
		if slices.Contains(p.Exporters, "redmetrics") {
			red = append(red, name)
			if slices.Contains(p.Processors, "adaptivesampling") {
				t.Errorf("pipeline %s samples before redmetrics: RED metrics would count kept spans only", name)
			}
			if !slices.Equal(p.Receivers, []string{"otlp"}) {
				t.Errorf("pipeline %s receives from %v, want the otlp receiver the sampled pipeline reads too", name, p.Receivers)
			}
		}
	}
	if len(red) != 1 {
		t.Errorf("pipelines exporting to redmetrics: %v, want exactly one", red)
	}

	// The metrics (RED, sampling rates) are served where they are scraped.
	if !slices.Contains(cfg.Service.Extensions, "opsightmetrics") || cfg.Extensions["opsightmetrics"]["endpoint"] != ":9464" {
		t.Errorf("opsightmetrics not serving on :9464: extensions %v %v", cfg.Service.Extensions, cfg.Extensions)
	}
	var metricsPort int32
	for _, p := range dep.Spec.Template.Spec.Containers[0].Ports {
		if p.Name == "metrics" {
			metricsPort = p.ContainerPort
		}
	}
	if metricsPort != 9464 {
		t.Errorf("gateway container port metrics = %d, want 9464 (opsightmetrics endpoint)", metricsPort)
	}

	// Switches: sampling off leaves the traces pipeline unsampled; RED off
	// removes its pipeline and exporter.
	_, off, _ := renderGatewayConfig(t, "gateway.sampling.enabled=false", "gateway.redMetrics.enabled=false")
	if _, ok := off.Processors["adaptivesampling"]; ok {
		t.Error("gateway.sampling.enabled=false still configures adaptivesampling")
	}
	if _, ok := off.Exporters["redmetrics"]; ok || len(off.Service.Pipelines) != 2 {
		t.Errorf("gateway.redMetrics.enabled=false: exporters %v, pipelines %v", off.Exporters, off.Service.Pipelines)
	}
	if p := off.Service.Pipelines["traces"]; !slices.Equal(p.Processors, []string{"memory_limiter", "batch"}) {
		t.Errorf("traces processors without sampling: %v", p.Processors)
	}
}

// TestGatewaySamplingValues: the values schema rejects what the processor
// would reject, so helm install fails rather than a crash-looping gateway.
func TestGatewaySamplingValues(t *testing.T) {
	for _, set := range []string{
		"gateway.sampling.baseline_ratio=1.5",
		"gateway.sampling.window=one minute",
		"gateway.sampling.min_samples=0",
		"gateway.sampling.keyAttribute=zone",
		"gateway.redMetrics.on=true",
	} {
		args := []string{"template", "rel", chartDir(t), "--namespace", namespace, "-f", ciValues(t, "gateway-on.yaml"), "--set", set}
		key := strings.Split(strings.TrimPrefix(set, "gateway."), "=")[0]
		key = key[strings.LastIndex(key, ".")+1:]
		if _, err := helmCmd(t, args...); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("--set %s: error %v, want one naming %s", set, err, key)
		}
	}
}

// TestGatewayConfigValidates: the rendered gateway configuration loads in
// the real operator-sidecar binary (`validate --config`: every component
// type exists in the distribution, every key is known, every Validate
// passes), by default and with the switches off. A configuration the
// processor rejects is reported, so the check can fail.
func TestGatewayConfigValidates(t *testing.T) {
	testservers.SkipShort(t, "operator-sidecar build")
	bin := testservers.BuildSidecar(t)
	validate := func(text string) (string, error) {
		p := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "validate", "--config", p)
		cmd.Env = append(os.Environ(), "OPSIGHT_STATE_DIR="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err == nil && strings.Contains(string(out), "Error:") {
			err = errors.New("validate exited 0 but printed an error")
		}
		return string(out), err
	}
	for _, tc := range []struct {
		name string
		set  []string
	}{
		{"default", nil},
		{"sampling and red off", []string{"gateway.sampling.enabled=false", "gateway.redMetrics.enabled=false"}},
		{"errors trigger too", []string{"gateway.sampling.error_ratio_threshold=0.05", "gateway.sampling.key_attribute=service.name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text, _, _ := renderGatewayConfig(t, tc.set...)
			if out, err := validate(text); err != nil {
				t.Fatalf("operator-sidecar validate rejects the rendered gateway config: %v\n%s\n%s", err, out, text)
			}
		})
	}
	t.Run("rejected", func(t *testing.T) {
		text, _, _ := renderGatewayConfig(t, "gateway.sampling.p99_threshold=0")
		out, err := validate(text)
		if err == nil || !strings.Contains(out, "p99_threshold or error_ratio_threshold") {
			t.Fatalf("a sampler with no trigger passed validate (%v):\n%s", err, out)
		}
	})
}
