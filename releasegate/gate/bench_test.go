package gate

import (
	"testing"
	"time"

	"github.com/opsight/opsight/internal/cputime"
)

// BenchmarkCompare10M compares 10 million spans (5M per revision, 4
// operations, 3 quantiles): sort + quantiles + intervals + Holm + error and
// mix checks. Generating the spans is outside the timing.
func BenchmarkCompare10M(b *testing.B) {
	const n = 10_000_000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		res := BenchData(n, 4, uint64(i))
		b.StartTimer()
		start := time.Now()
		cpu0, cpuOK := cputime.Process()
		rep := Compare(res, Config{})
		el := time.Since(start)
		cpu1, _ := cputime.Process()
		cpu := cpu1 - cpu0
		if len(rep.Comparisons) != 12 {
			b.Fatalf("%d comparisons", len(rep.Comparisons))
		}
		b.ReportMetric(float64(n)/el.Seconds(), "spans/s")
		if !cpuOK {
			b.Logf("10M spans compared in %v wall, CPU time not available on this system (verdict %s)", el.Round(time.Millisecond), rep.Verdict)
			continue
		}
		b.ReportMetric(cpu.Seconds(), "cpu-s/op")
		b.Logf("10M spans compared in %v wall, %v CPU (verdict %s)", el.Round(time.Millisecond), cpu.Round(time.Millisecond), rep.Verdict)
	}
}
