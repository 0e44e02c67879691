package collector

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/opsight/opsight/collector/exporter/lokiexporter"
	"github.com/opsight/opsight/collector/processor/operatorenrichprocessor"
	"github.com/opsight/opsight/collector/receiver/operatorlogsreceiver"
	"github.com/opsight/opsight/internal/cputime"
)

// BenchmarkHotPath measures the per-line cost of the whole log path in one
// process: operatorlogs reading CRI lines from a file, operatorenrich, and
// the loki exporter encoding protobuf+snappy and pushing it to a local HTTP
// server that discards the body. One op is one line.
func BenchmarkHotPath(b *testing.B) {
	const fileLines = 100_000
	dir := b.TempDir()
	var lines [][]byte
	// The runtime's timestamps are recent, as in a running pod: older ones
	// would be restamped by the exporter (Loki refuses entries past 168 h).
	now := time.Now().UTC().Format("2006-01-02T15:04:05")
	for i := 0; i < 64; i++ {
		lines = append(lines, []byte(fmt.Sprintf(`%s.%09dZ stderr F {"level":"info","ts":"%s.%06dZ","logger":"controller.etcdcluster","msg":"Reconciling","controller":"etcdcluster","controllerGroup":"etcd.database.coreos.com","controllerKind":"EtcdCluster","EtcdCluster":{"name":"etcd-%d","namespace":"team-a"},"namespace":"team-a","name":"etcd-%d","reconcileID":"6f1c2b9e-4a1d-4c1e-9e0b-%012d"}`+"\n", now, i, now, i, i%7, i%7, i)))
	}
	var bytesPerFile int64
	writeFile := func(path string) {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		var n int64
		for i := 0; i < fileLines; i++ {
			m, _ := f.Write(lines[i%len(lines)])
			n += int64(m)
		}
		f.Close()
		bytesPerFile = n
	}

	var pushed atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		pushed.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	ctx := context.Background()
	lf := lokiexporter.NewFactory()
	lcfg := lf.CreateDefaultConfig().(*lokiexporter.Config)
	lcfg.ClientConfig.Endpoint = srv.URL + "/loki/api/v1/push"
	lcfg.QueueConfig = configoptional.None[exporterhelper.QueueBatchConfig]() // synchronous: measure, not buffer
	exp, err := lf.CreateLogs(ctx, exportertest.NewNopSettings(lf.Type()), lcfg)
	if err != nil {
		b.Fatal(err)
	}
	var out atomic.Int64
	counting, _ := consumer.NewLogs(func(ctx context.Context, ld plog.Logs) error {
		n := ld.LogRecordCount()
		err := exp.ConsumeLogs(ctx, ld)
		out.Add(int64(n))
		return err
	})
	pf := operatorenrichprocessor.NewFactory()
	pcfg := pf.CreateDefaultConfig().(*operatorenrichprocessor.Config)
	pcfg.Revision = "v1.5.0"
	pcfg.Correlation.Wait = 0 // no spans in this benchmark: measure the path, not the join wait
	proc, err := pf.CreateLogs(ctx, processortest.NewNopSettings(pf.Type()), pcfg, counting)
	if err != nil {
		b.Fatal(err)
	}
	host := componenttest.NewNopHost()
	for _, c := range []component.Component{exp, proc} {
		if err := c.Start(ctx, host); err != nil {
			b.Fatal(err)
		}
	}
	defer func() {
		_ = proc.Shutdown(ctx)
		_ = exp.Shutdown(ctx)
	}()

	// One receiver run per file of fileLines; b.N lines need ceil(b.N/fileLines) files.
	files := (b.N + fileLines - 1) / fileLines
	for i := 0; i < files; i++ {
		writeFile(filepath.Join(dir, fmt.Sprintf("%d.log", i)))
	}
	rf := operatorlogsreceiver.NewFactory()
	rcfg := rf.CreateDefaultConfig().(*operatorlogsreceiver.Config)
	rcfg.Include = []string{filepath.Join(dir, "*.log")}
	rcfg.StartAt = "beginning"
	rcfg.PollInterval = 10 * time.Millisecond
	recv, err := rf.CreateLogs(ctx, receivertest.NewNopSettings(rf.Type()), rcfg, proc)
	if err != nil {
		b.Fatal(err)
	}
	want := int64(files * fileLines)
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	cpu0, cpuOK := cputime.Process() // user+system: on a shared 2-core machine steadier than wall time
	b.ResetTimer()
	start := time.Now()
	if err := recv.Start(ctx, host); err != nil {
		b.Fatal(err)
	}
	for out.Load() < want {
		time.Sleep(time.Millisecond)
		if time.Since(start) > 10*time.Minute {
			b.Fatalf("only %d of %d lines after 10 minutes", out.Load(), want)
		}
	}
	elapsed := time.Since(start)
	cpu1, _ := cputime.Process()
	cpu := cpu1 - cpu0
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	_ = recv.Shutdown(ctx)
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(want), "ns/line")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(want), "allocs/line")
	b.ReportMetric(float64(want)/elapsed.Seconds(), "lines/s")
	b.ReportMetric(float64(want)*float64(bytesPerFile)/float64(fileLines)/elapsed.Seconds()/(1<<20), "MiB/s")
	if cpuOK {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(want), "cpu-ns/line")
		b.ReportMetric(float64(want)/cpu.Seconds(), "lines/cpu-s")
	}
}
