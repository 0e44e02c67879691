package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opsight/opsight/triage/internal/data"
	"github.com/opsight/opsight/triage/internal/scenario"
	"github.com/opsight/opsight/triage/internal/synth"
)

// benchReport times whole reports (read, analyse, render) on the files.
func benchReport(b *testing.B, traces, logs string, args ...string) {
	files, _ := data.Glob("--traces", []string{traces})
	spans, err := data.ReadSpans(files)
	if err != nil {
		b.Fatal(err)
	}
	args = append([]string{"--traces", traces, "--logs", logs}, args...)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if code := Main(args, io.Discard, os.Stderr); code > 1 {
			b.Fatalf("exit %d", code)
		}
	}
	per := time.Since(start) / time.Duration(b.N)
	b.ReportMetric(float64(len(spans)), "spans")
	b.ReportMetric(float64(per.Nanoseconds())/float64(len(spans)), "ns/span")
	fmt.Printf("%s: %d spans, %.2fs per report\n", b.Name(), len(spans), per.Seconds())
}

// BenchmarkDemoOutput: a report on what `make demo` writes. OPSIGHT_DEMO_DIR
// names a demo directory already made (go run ./operator-sidecar demo --dir
// DIR); otherwise the same two pods run for the demo's 20 s first.
func BenchmarkDemoOutput(b *testing.B) {
	dir := os.Getenv("OPSIGHT_DEMO_DIR")
	if dir == "" {
		dir = b.TempDir()
		if _, err := scenario.Run(context.Background(), scenario.Demo(), dir); err != nil {
			b.Fatal(err)
		}
	}
	out := filepath.Join(dir, "state", "out")
	benchReport(b, filepath.Join(out, "traces-*.jsonl"), filepath.Join(out, "logs-*.ndjson"), "--baseline-revision", "v1.4.0")
}

// BenchmarkMillionSpans: a report on a window of about a million spans
// (synthetic OTLP JSON: 430 000 reconciles over four pods, 200 per line),
// the candidate's zone-b GET calls 15 ms slower.
func BenchmarkMillionSpans(b *testing.B) {
	dir := b.TempDir()
	traces, logs := filepath.Join(dir, "traces-1.jsonl"), filepath.Join(dir, "logs-1.ndjson")
	tf, _ := os.Create(traces)
	lf, _ := os.Create(logs)
	const per = 107_500
	cfg := synth.Config{Service: "etcd-operator", Namespace: "etcd-system", Cluster: "prod-eu-1",
		Start: time.Date(2026, 12, 1, 14, 0, 0, 0, time.UTC), Seed: 7, Rate: 100, Pods: []synth.Pod{
			{Name: "base-a", Revision: "v1.4.0", Zone: "zone-a", Traces: per},
			{Name: "base-b", Revision: "v1.4.0", Zone: "zone-b", Traces: per},
			{Name: "cand-a", Revision: "v1.5.0", Zone: "zone-a", Traces: per},
			{Name: "cand-b", Revision: "v1.5.0", Zone: "zone-b", Traces: per, SlowGET: 15 * time.Millisecond},
		}}
	if err := synth.Write(cfg, tf, lf); err != nil {
		b.Fatal(err)
	}
	tf.Close()
	lf.Close()
	benchReport(b, traces, logs, "--baseline-revision", "v1.4.0")
}
