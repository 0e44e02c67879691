// Package scenario runs the simulated operator (internal/simoperator) as
// several pods (revisions, zones) through the sidecar's real collector
// components in-process, on the embedded default outputs: the NDJSON logs
// and OTLP JSON traces a triage reads offline. Scenarios with a known cause
// test the triage on honest data, not hand-made fixtures.
package scenario

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/otelcol"
	"go.yaml.in/yaml/v3"

	"github.com/opsight/opsight/collector"
	"github.com/opsight/opsight/internal/simoperator"
)

// Names shared by every scenario.
const (
	Namespace = "etcd-system"
	Cluster   = "triage"
	Service   = "etcd-operator"
	Baseline  = "v1.4.0"
	Candidate = "v1.5.0"
)

// Pod is one simulated operator pod and what is wrong with it.
type Pod struct {
	Name, Revision, Zone string
	SlowCallMethod       string
	SlowCallDelay        time.Duration
	ErrorShare           float64
	ErrorMessages        []string
	SlowTailShare        float64 // that share of reconciles take SlowTailFactor (3) times longer
	CPUThrottle          float64 // everything the pod does takes that many times longer (0: not throttled)
}

// Scenario is a set of pods run together.
type Scenario struct {
	Name     string
	Pods     []Pod
	Duration time.Duration // of the simulated operators (default 4s)
	Rate     float64       // reconciles per second per pod (default 120)
	Seed     uint64
}

// Result says where the output went.
type Result struct {
	OutDir       string
	TracesGlob   string
	LogsGlob     string
	LinesWritten int64
	Spans        int64
}

// ZoneSlowAPI: the candidate's GET calls are slow in zone-b only (its two
// pods there), not in zone-a; the baseline runs in both zones.
func ZoneSlowAPI() Scenario {
	slow := func(name string) Pod {
		return Pod{Name: name, Revision: Candidate, Zone: "zone-b", SlowCallMethod: "GET", SlowCallDelay: 15 * time.Millisecond}
	}
	return Scenario{Name: "zone-slow-api", Seed: 11, Pods: []Pod{
		{Name: "etcd-operator-base-a", Revision: Baseline, Zone: "zone-a"},
		{Name: "etcd-operator-base-b", Revision: Baseline, Zone: "zone-b"},
		{Name: "etcd-operator-cand-a", Revision: Candidate, Zone: "zone-a"},
		slow("etcd-operator-cand-b1"),
		slow("etcd-operator-cand-b2"),
	}}
}

// EtcdTimeoutStorm: the candidate fails 30% of its reconciles, every one
// with "etcdserver: request timed out", in both zones.
func EtcdTimeoutStorm() Scenario {
	storm := func(name, zone string) Pod {
		return Pod{Name: name, Revision: Candidate, Zone: zone, ErrorShare: 0.3, ErrorMessages: []string{"etcdserver: request timed out"}}
	}
	return Scenario{Name: "etcd-timeout-storm", Seed: 23, Pods: []Pod{
		{Name: "etcd-operator-base-a", Revision: Baseline, Zone: "zone-a"},
		{Name: "etcd-operator-base-b", Revision: Baseline, Zone: "zone-b"},
		storm("etcd-operator-cand-a", "zone-a"),
		storm("etcd-operator-cand-b", "zone-b"),
	}}
}

// AA: two revisions that differ in name only.
func AA() Scenario {
	return Scenario{Name: "a-a", Seed: 37, Pods: []Pod{
		{Name: "etcd-operator-base-a", Revision: Baseline, Zone: "zone-a"},
		{Name: "etcd-operator-base-b", Revision: Baseline, Zone: "zone-b"},
		{Name: "etcd-operator-cand-a", Revision: Candidate, Zone: "zone-a"},
		{Name: "etcd-operator-cand-b", Revision: Candidate, Zone: "zone-b"},
	}}
}

// PodCPUThrottle: one candidate pod (etcd-operator-cand-a2, zone-a) is
// CPU-throttled: everything it does takes 2.5 times longer, its reconciles'
// own time and every API call alike. The other candidate pods, in the same
// zone and the other, are as fast as the baseline.
func PodCPUThrottle() Scenario {
	return Scenario{Name: "pod-cpu-throttle", Seed: 53, Pods: []Pod{
		{Name: "etcd-operator-base-a", Revision: Baseline, Zone: "zone-a"},
		{Name: "etcd-operator-base-b", Revision: Baseline, Zone: "zone-b"},
		{Name: "etcd-operator-cand-a1", Revision: Candidate, Zone: "zone-a"},
		{Name: "etcd-operator-cand-a2", Revision: Candidate, Zone: "zone-a", CPUThrottle: 2.5},
		{Name: "etcd-operator-cand-b", Revision: Candidate, Zone: "zone-b"},
	}}
}

// Demo is what `make demo` runs (operator-sidecar/internal/demo): two pods
// in one zone, the candidate slower at the tail (6% of reconciles 3× longer),
// 100 reconciles per second each for 20 seconds.
func Demo() Scenario {
	return Scenario{Name: "demo", Seed: 1, Duration: 20 * time.Second, Rate: 100, Pods: []Pod{
		{Name: "etcd-operator-7c9f-baseline", Revision: Baseline, Zone: "zone-1"},
		{Name: "etcd-operator-8d2a-candidate", Revision: Candidate, Zone: "zone-1", SlowTailShare: 0.06},
	}}
}

// Run runs the scenario with its output under dir.
func Run(ctx context.Context, s Scenario, dir string) (*Result, error) {
	if s.Duration == 0 {
		s.Duration = 4 * time.Second
	}
	if s.Rate == 0 {
		s.Rate = 120
	}
	logRoot := filepath.Join(dir, "pods")
	outDir := filepath.Join(dir, "state", "out")
	addrs := make([]string, len(s.Pods))
	for i := range s.Pods {
		a, err := freeAddr()
		if err != nil {
			return nil, err
		}
		addrs[i] = a
	}
	col, colErr, err := startCollector(config(s.Pods, addrs, logRoot, outDir))
	if err != nil {
		return nil, err
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		col.Shutdown()
		select {
		case err := <-colErr:
			return err
		case <-time.After(30 * time.Second):
			return errors.New("the collector did not stop within 30s")
		}
	}
	defer stop()

	runCtx, cancel := context.WithTimeout(ctx, s.Duration)
	defer cancel()
	cfgs := make([]simoperator.Config, len(s.Pods))
	for i, p := range s.Pods {
		cfgs[i] = simoperator.Config{
			LogRoot: logRoot, Namespace: Namespace, Pod: p.Name, Revision: p.Revision, Cluster: Cluster, Service: Service,
			ReconcilesPerSecond: s.Rate, Workers: 8, ErrorShare: p.ErrorShare, ErrorMessages: p.ErrorMessages,
			SlowCallMethod: p.SlowCallMethod, SlowCallDelay: p.SlowCallDelay, SlowTailShare: p.SlowTailShare, SlowTailFactor: 3, CPUThrottleFactor: p.CPUThrottle,
			OTLPEndpoint: "http://" + addrs[i], Seed: s.Seed + uint64(i),
		}
	}
	stats, err := simoperator.RunAll(runCtx, cfgs)
	if err != nil {
		return nil, err
	}
	res := &Result{OutDir: outDir, TracesGlob: filepath.Join(outDir, "traces-*.jsonl"), LogsGlob: filepath.Join(outDir, "logs-*.ndjson")}
	for i, st := range stats {
		if st.SpanErrors > 0 {
			return nil, fmt.Errorf("pod %s: the sidecar refused %d span batches", s.Pods[i].Name, st.SpanErrors)
		}
		res.LinesWritten += st.Lines
		res.Spans += st.Spans
	}
	// Every line through the pipeline (past the late join's hold), then stop.
	deadline := time.Now().Add(60 * time.Second)
	for countLines(res.LogsGlob) < res.LinesWritten {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the sidecar wrote %d of %d lines within 60s", countLines(res.LogsGlob), res.LinesWritten)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := stop(); err != nil {
		return nil, fmt.Errorf("sidecar: %w", err)
	}
	return res, nil
}

// config is the sidecar pipeline per pod, as the demo builds it: the pod's
// log files and OTLP endpoint, enriched with its revision and zone.
func config(pods []Pod, addrs []string, logRoot, outDir string) map[string]any {
	receivers := map[string]any{}
	processors := map[string]any{}
	pipelines := map[string]any{}
	for i, p := range pods {
		id := p.Name
		receivers["operatorlogs/"+id] = map[string]any{
			"include":  []string{filepath.Join(logRoot, Namespace+"_"+p.Name+"_*", "*", "*.log")},
			"start_at": "beginning",
		}
		receivers["otlp/"+id] = map[string]any{"protocols": map[string]any{"http": map[string]any{"endpoint": addrs[i]}}}
		processors["operatorenrich/"+id] = map[string]any{
			"revision": p.Revision, "service_name": Service, "cluster": Cluster, "namespace": Namespace,
			"pod": p.Name, "container": "manager", "node": "node-" + p.Zone, "zone": p.Zone,
		}
		pipelines["logs/"+id] = map[string]any{"receivers": []string{"operatorlogs/" + id}, "processors": []string{"operatorenrich/" + id}, "exporters": []string{"localfile/logs"}}
		pipelines["traces/"+id] = map[string]any{"receivers": []string{"otlp/" + id}, "processors": []string{"operatorenrich/" + id}, "exporters": []string{"localfile/traces"}}
	}
	return map[string]any{
		"receivers":  receivers,
		"processors": processors,
		"exporters": map[string]any{
			"localfile/logs":   map[string]any{"directory": outDir},
			"localfile/traces": map[string]any{"directory": outDir},
		},
		"service": map[string]any{
			"telemetry": map[string]any{"metrics": map[string]any{"level": "none"}, "logs": map[string]any{"level": "error"}},
			"pipelines": pipelines,
		},
	}
}

func startCollector(cfg map[string]any) (*otelcol.Collector, chan error, error) {
	y, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, nil, err
	}
	col, err := otelcol.NewCollector(otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{Command: "triage-scenario", Version: "test"},
		Factories: collector.Components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{ResolverSettings: confmap.ResolverSettings{
			URIs: []string{"yaml:" + string(y)}, ProviderFactories: []confmap.ProviderFactory{yamlprovider.NewFactory()},
		}},
		DisableGracefulShutdown: true,
	})
	if err != nil {
		return nil, nil, err
	}
	errc := make(chan error, 1)
	go func() { errc <- col.Run(context.Background()) }()
	deadline := time.Now().Add(30 * time.Second)
	for col.GetState() != otelcol.StateRunning {
		select {
		case err := <-errc:
			return nil, nil, fmt.Errorf("the collector stopped before running: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			col.Shutdown()
			return nil, nil, errors.New("the collector was not running after 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return col, errc, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func countLines(glob string) int64 {
	files, _ := filepath.Glob(glob)
	var n int64
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			if len(bytes.TrimSpace(sc.Bytes())) > 0 {
				n++
			}
		}
		fh.Close()
	}
	return n
}
