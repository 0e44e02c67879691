package operatorlogsreceiver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/opsight/opsight/internal/cputime"
	"github.com/opsight/opsight/internal/selftelemetry"
)

// BenchmarkReadCRI measures the receiver's whole read path on a CRI file of
// typical controller-runtime JSON lines: file reads, framing, batching into
// pdata, ConsumeLogs (a no-op consumer) and checkpoint bookkeeping (in
// memory). It reports ns/line and allocs/line.
func BenchmarkReadCRI(b *testing.B) { benchRead(b, false, false) }

// BenchmarkReadCRIFileStorage is the same with checkpoints committed to a
// real file_storage extension after every batch.
func BenchmarkReadCRIFileStorage(b *testing.B) { benchRead(b, true, false) }

// BenchmarkReadCRIGzip reads the same lines from a compressed rotation
// (N.log.<timestamp>.gz): the identifying pass over the whole .gz, then the
// decompressing read.
func BenchmarkReadCRIGzip(b *testing.B) { benchRead(b, false, true) }

func benchRead(b *testing.B, withStorage, compressed bool) {
	const n = 50000
	dir := filepath.Join(b.TempDir(), "var", "log", "pods", "opsys_manager-abc_uid-1", "manager")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	var sb strings.Builder
	for i := 0; i < n; i++ {
		stream := "stdout"
		if i%10 == 0 {
			stream = "stderr"
		}
		fmt.Fprintf(&sb, "2024-03-01T10:11:12.%09dZ %s F {\"level\":\"info\",\"ts\":\"2024-03-01T10:11:12.%06dZ\",\"logger\":\"controller.widget\",\"msg\":\"Reconciling\",\"controller\":\"widget\",\"namespace\":\"default\",\"name\":\"w-%d\",\"reconcileID\":\"6f1c2d3e-%08d\"}\n", i, stream, i%1e6, i, i)
	}
	path, data := filepath.Join(dir, "0.log"), []byte(sb.String())
	if compressed {
		path, data = path+".20261201-101500.gz", gzipBytes(b, data)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	cfg := createDefaultConfig().(*Config)
	cfg.Include = []string{path}
	cfg.Format = FormatCRI
	var host component.Host = componenttest.NewNopHost()
	if withStorage {
		ext, h := newFileStorage(b, b.TempDir())
		defer ext.Shutdown(context.Background())
		host = h
		id := component.MustNewID("file_storage")
		cfg.Storage = &id
	}
	set := receivertest.NewNopSettings(componentType)
	set.ID = component.NewID(componentType)
	b.SetBytes(int64(sb.Len()))
	b.ReportAllocs()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0, cpuOK := cputime.Process()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rc, err := newReceiver(set, cfg, consumertest.NewNop(), selftelemetry.New())
		if err != nil {
			b.Fatal(err)
		}
		if withStorage {
			cl, err := host.GetExtensions()[*cfg.Storage].(storage.Extension).GetClient(context.Background(), component.KindReceiver, set.ID, "")
			if err != nil {
				b.Fatal(err)
			}
			rc.client = cl
		}
		rc.ctx = context.Background()
		for rc.readBytes < int64(sb.Len()) {
			if err := rc.poll(); err != nil {
				b.Fatal(err)
			}
		}
		for _, r := range rc.readers {
			r.closeFile()
		}
		if rc.client != nil {
			rc.client.Close(context.Background())
		}
	}
	b.StopTimer()
	cpu1, _ := cputime.Process()
	cpu := cpu1 - cpu0
	runtime.ReadMemStats(&ms1)
	lines := float64(b.N) * n
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/lines, "ns/line")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/lines, "allocs/line")
	b.ReportMetric(lines/b.Elapsed().Seconds(), "lines/s")
	// CPU time (user+system, all threads, GC included) per line: on a shared
	// machine wall time also counts waiting for a core; this does not.
	if cpuOK {
		b.ReportMetric(float64(cpu.Nanoseconds())/lines, "cpu-ns/line")
	}
}
