package operatorenrichprocessor

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"golang.org/x/sys/unix"

	"github.com/opsight/opsight/internal/conventions"
)

// benchLine is a realistic controller-runtime (zap JSON) line, ~300 bytes.
const benchLine = `{"level":"info","ts":"2024-05-01T10:00:00.123Z","logger":"controller.foo","msg":"Reconciling","controller":"foo","controllerGroup":"apps.example.com","controllerKind":"Foo","Foo":{"name":"bar","namespace":"default"},"namespace":"default","name":"bar","reconcileID":"6b3a0a5e-2d2c-4d7e-9c1e-9a3b1b1f2e11"}`

const benchBatch = 100

// BenchmarkEnrichLine: one op = one line through ConsumeLogs (batches of
// 100 as the receiver sends them; building the batch is not timed).
func BenchmarkEnrichLine(b *testing.B) {
	for _, tc := range []struct{ name, line string }{
		{"controller-runtime", benchLine},
		{"error-with-risk", `{"level":"error","ts":1714557600.25,"logger":"controller.foo","msg":"Reconciler error","controller":"foo","namespace":"default","name":"bar","reconcileID":"6b3a0a5e-2d2c-4d7e-9c1e-9a3b1b1f2e11","error":"Operation cannot be fulfilled: the object has been modified; please apply your changes"}`},
		{"klog-text", `I0501 10:00:00.123456       1 controller.go:120] "Reconciling" controller="foo" reconcileID="6b3a0a5e-2d2c-4d7e-9c1e-9a3b1b1f2e11"`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := newHarness(b, joinCfg(0), map[string]string{conventions.EnvRevision: "v1"})
			lines := make([]string, benchBatch)
			for i := range lines {
				lines[i] = tc.line
			}
			// The machine running benchmarks is shared: besides wall time per
			// line, report this thread's CPU time per line, which other
			// processes' load does not inflate.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var cpu time.Duration
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.line)))
			b.ResetTimer()
			for done := 0; done < b.N; done += benchBatch {
				b.StopTimer()
				ld := fileLogs(lines[:min(benchBatch, b.N-done)]...)
				h.logSink.Reset()
				b.StartTimer()
				c0 := threadCPU()
				if err := h.logs.ConsumeLogs(context.Background(), ld); err != nil {
					b.Fatal(err)
				}
				cpu += threadCPU() - c0
			}
			b.StopTimer()
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/line")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/line")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}

// BenchmarkEnrichRecord isolates the per-record work (scan, match,
// attribute writes) from the pipeline around it.
func BenchmarkEnrichRecord(b *testing.B) {
	h := newHarness(b, joinCfg(0), nil)
	e := h.sharedState().e
	lines := make([]string, benchBatch)
	for i := range lines {
		lines[i] = benchLine
	}
	bt := e.getBatch()
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += benchBatch {
		b.StopTimer()
		recs := records(fileLogs(lines[:min(benchBatch, b.N-done)]...))
		b.StartTimer()
		for _, r := range recs {
			e.enrichRecord(r, true, bt)
		}
		bt.pending = bt.pending[:0]
	}
}

// BenchmarkSpansEnrichJoin: spans through ConsumeTraces (resource stamped,
// keyed spans indexed), and log lines joined to them by reconcile id.
func BenchmarkSpansEnrichJoin(b *testing.B) {
	mkSpans := func(round, n int) ptrace.Traces {
		keys := make([]string, n)
		for i := range keys {
			keys[i] = fmt.Sprintf("rec-%d-%d", round, i)
		}
		td, _ := keyedSpans(keys...)
		return td
	}
	b.Run("spans", func(b *testing.B) {
		h := newHarness(b, joinCfg(0), nil)
		b.ReportAllocs()
		b.ResetTimer()
		for done, round := 0, 0; done < b.N; done, round = done+benchBatch, round+1 {
			b.StopTimer()
			td := mkSpans(round, min(benchBatch, b.N-done))
			h.spanOut.Reset()
			b.StartTimer()
			if err := h.traces.ConsumeTraces(context.Background(), td); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "spans/s")
	})
	b.Run("join", func(b *testing.B) {
		h := newHarness(b, joinCfg(0), nil)
		b.ReportAllocs()
		b.ResetTimer()
		for done, round := 0, 0; done < b.N; done, round = done+benchBatch, round+1 {
			b.StopTimer()
			n := min(benchBatch, b.N-done)
			_ = h.traces.ConsumeTraces(context.Background(), mkSpans(round, n))
			lines := make([]string, n)
			for i := range lines {
				lines[i] = lineFor(fmt.Sprintf("rec-%d-%d", round, i), "Reconciling")
			}
			ld := fileLogs(lines...)
			h.logSink.Reset()
			b.StartTimer()
			if err := h.logs.ConsumeLogs(context.Background(), ld); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if got := records(h.logSink.AllLogs()[0])[0]; attrOf(got, conventions.LogCorrelation) != "join" {
			b.Fatal("lines were not joined")
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "joined-lines/s")
	})
}

// threadCPU is the calling OS thread's CPU time, to the nanosecond.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

func attrOf(lr plog.LogRecord, k string) string { return attr(lr.Attributes(), k) }

// BenchmarkHeldLineMemory measures what holding costs beyond the batch
// itself: heap while a batch of keyed lines waits for its spans, minus the
// heap with the same batch not yet handed over, per held line.
func BenchmarkHeldLineMemory(b *testing.B) {
	const n = 10000
	var perLine, batchPerLine float64
	for i := 0; i < b.N; i++ {
		cfg := joinCfg(30 * time.Second)
		cfg.Correlation.MaxHeld = 2 * n
		h := newHarness(b, cfg, nil)
		warm, _ := keyedSpans("warm-up")
		_ = h.traces.ConsumeTraces(context.Background(), warm)
		lines := make([]string, n)
		for k := range lines {
			lines[k] = lineFor(fmt.Sprintf("held-%08d", k), "Reconciling")
		}
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		before := ms.HeapAlloc
		ld := fileLogs(lines...)
		runtime.GC()
		runtime.ReadMemStats(&ms)
		withBatch := ms.HeapAlloc
		done := consumeAsync(h, ld)
		waitHeld(b, h, n)
		runtime.GC()
		runtime.ReadMemStats(&ms)
		held := ms.HeapAlloc
		// Records grew their attributes during enrichment: measure that
		// separately by enriching an identical batch with no hold.
		if err := h.logs.Shutdown(context.Background()); err != nil {
			b.Fatal(err)
		}
		<-done
		h2 := newHarness(b, joinCfg(0), nil)
		ld2 := fileLogs(lines...)
		runtime.GC()
		runtime.ReadMemStats(&ms)
		base2 := ms.HeapAlloc
		_ = h2.logs.ConsumeLogs(context.Background(), ld2)
		runtime.GC()
		runtime.ReadMemStats(&ms)
		enrichedGrowth := float64(ms.HeapAlloc) - float64(base2)
		perLine = (float64(held) - float64(withBatch) - enrichedGrowth) / n
		batchPerLine = (float64(withBatch) - float64(before)) / n
		runtime.KeepAlive(ld2)
		runtime.KeepAlive(lines)
	}
	b.ReportMetric(perLine, "bytes/held-line")
	b.ReportMetric(batchPerLine, "batch-bytes/line")
}

// BenchmarkIndexMemory: memory per span index entry at its bound (a
// 36-byte UUID key, as controller-runtime's reconcile ids are), on the Go
// heap and mapped outside it.
func BenchmarkIndexMemory(b *testing.B) {
	const n = 100_000
	var heap, mapped float64
	for i := 0; i < b.N; i++ {
		ix, grew := fillIndex(n)
		heap = float64(grew) / n
		mapped = float64(ix.mem.bytes) / n
		if ix.len() != n {
			b.Fatalf("index has %d entries", ix.len())
		}
		runtime.KeepAlive(ix)
	}
	b.ReportMetric(heap, "heap-bytes/index-entry")
	b.ReportMetric(mapped, "mapped-bytes/index-entry")
}
