package gate

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/releasegate/source"
	"github.com/opsight/opsight/releasegate/stats"
)

// Reconcile latencies: lognormal with a 50 ms median and sigma 0.5, the
// shape controller-runtime reconcile times usually have (and the shape the
// Tempo fixture was generated with).
const (
	recMedian = 0.05
	recSigma  = 0.5
)

type shape func(r *rand.Rand) float64

func lognormal(sigma float64) shape {
	return func(r *rand.Rand) float64 { return recMedian * math.Exp(sigma*r.NormFloat64()) }
}

// tailStretch keeps the median and stretches the upper half in log space so
// that p99 rises by factor f.
func tailStretch(f float64) shape {
	k := 1 + math.Log(f)/(recSigma*2.3263478740408408)
	return func(r *rand.Rand) float64 {
		z := r.NormFloat64()
		if z > 0 {
			z *= k
		}
		return recMedian * math.Exp(recSigma*z)
	}
}

// bimodal slows a share of reconciles by a factor (a slow path: retries,
// a cold cache, a lock).
func bimodal(share, factor float64) shape {
	return func(r *rand.Rand) float64 {
		x := recMedian * math.Exp(recSigma*r.NormFloat64())
		if r.Float64() < share {
			x *= factor
		}
		return x
	}
}

// ticks rounds lognormal durations up to a clock tick.
func ticks(tick float64) shape {
	return func(r *rand.Rand) float64 {
		return tick * math.Ceil(recMedian*math.Exp(recSigma*r.NormFloat64())/tick)
	}
}

func scaled(f float64) shape {
	return func(r *rand.Rand) float64 { return f * recMedian * math.Exp(recSigma*r.NormFloat64()) }
}

func sample(r *rand.Rand, n int, s shape) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = s(r)
	}
	slices.Sort(x)
	return x
}

func rawOp(b, c []float64) source.Op {
	return source.Op{Service: "etcd-operator", Name: "Reconcile",
		Baseline:  source.Side{Durations: b, Count: float64(len(b))},
		Candidate: source.Side{Durations: c, Count: float64(len(c))}}
}

// rate runs the gate over many seeds and returns the share of each verdict.
func rate(t *testing.T, seeds, n int, base, cand shape, cfg Config) (fail, pass, inc float64) {
	t.Helper()
	for seed := 0; seed < seeds; seed++ {
		r := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
		res := &source.Result{Source: "test", Ops: []source.Op{rawOp(sample(r, n, base), sample(r, n, cand))}}
		rep := Evaluate(res, "a", "b", cfg)
		switch rep.Verdict {
		case conventions.VerdictFail:
			fail++
		case conventions.VerdictPass:
			pass++
		default:
			inc++
		}
	}
	s := float64(seeds)
	return fail / s, pass / s, inc / s
}

// skipShort leaves the Monte Carlo calibration (minutes of CPU) out of
// go test -short (make unit); make test runs it.
func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("Monte Carlo calibration: left out under -short (make unit); make test runs it")
	}
}

// mcSlack is three binomial standard errors of a rate alpha over seeds runs:
// the Monte Carlo noise allowed above the nominal level.
func mcSlack(alpha float64, seeds int) float64 {
	return 3 * math.Sqrt(alpha*(1-alpha)/float64(seeds))
}

func TestCalibrationFalseFails(t *testing.T) {
	skipShort(t)
	const seeds = 400
	const alpha = 0.05
	cases := []struct {
		name      string
		n         int
		cand      shape
		threshold map[float64]float64
	}{
		// Threshold 0 on all three quantiles puts A/A exactly on the null
		// boundary: the sharpest check of the familywise level.
		{"A/A n=2000, +0% on p50,p90,p99 (3 tests, Holm)", 2000, lognormal(recSigma), map[float64]float64{0.5: 0, 0.9: 0, 0.99: 0}},
		{"A/A n=500, +0% on p99", 500, lognormal(recSigma), map[float64]float64{0.99: 0}},
		{"A/A n=2000, default p99:+15%", 2000, lognormal(recSigma), nil},
		// A heavy, two-humped tail: 10% of reconciles take a slow path.
		{"A/A bimodal n=1000, +0% on p50,p90,p99", 1000, bimodal(0.1, 8), map[float64]float64{0.5: 0, 0.9: 0, 0.99: 0}},
		// Durations rounded to a 5 ms clock tick: heavy ties at every quantile.
		{"A/A 5ms ticks n=2000, +0% on p50,p90,p99", 2000, ticks(0.005), map[float64]float64{0.5: 0, 0.9: 0, 0.99: 0}},
		// True p99 ratio exactly 1.15: on the boundary of the default threshold.
		{"p99 exactly +15%, n=2000, default p99:+15%", 2000, tailStretch(1.15), nil},
		{"p99 exactly +15%, n=300, default p99:+15%", 300, tailStretch(1.15), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Alpha: alpha, Thresholds: tc.threshold}
			base := lognormal(recSigma)
			if strings.HasPrefix(tc.name, "A/A bimodal") || strings.HasPrefix(tc.name, "A/A 5ms") {
				base = tc.cand
			}
			fail, _, _ := rate(t, seeds, tc.n, base, tc.cand, cfg)
			t.Logf("CALIBRATION false-fail rate %-48s %.4f (nominal %.2f, %d seeds)", tc.name, fail, alpha, seeds)
			if fail > alpha+mcSlack(alpha, seeds) {
				t.Errorf("false-fail rate %.4f exceeds nominal %.2f (+MC slack %.3f)", fail, alpha, mcSlack(alpha, seeds))
			}
		})
	}
}

// nativeHist buckets durations like a Prometheus native histogram of schema 3
// (bucket bounds 2^(k/8), factor 1.09).
func nativeHist(x []float64) *stats.Histogram {
	h := &stats.Histogram{Exponential: true}
	for _, v := range x {
		k := math.Ceil(8 * math.Log2(v))
		h.Buckets = append(h.Buckets, stats.Bucket{Lower: math.Exp2((k - 1) / 8), Upper: math.Exp2(k / 8), Count: 1})
	}
	h.Normalize()
	return h
}

func TestCalibrationHistogram(t *testing.T) {
	skipShort(t)
	const seeds, alpha = 400, 0.05
	cases := []struct {
		name      string
		cand      shape
		threshold map[float64]float64
		maxFail   float64
		minFail   float64
	}{
		{"A/A native buckets, n=2000, +0% on p50,p90,p99", lognormal(recSigma), map[float64]float64{0.5: 0, 0.9: 0, 0.99: 0}, alpha, 0},
		// Interpolated within fine buckets: must stay valid on the boundary.
		{"p99 exactly +15% native buckets, n=2000, p99:+15%", tailStretch(1.15), nil, alpha, 0},
		{"uniform +10% native buckets, n=2000, +10% on p50,p90,p99", scaled(1.1), map[float64]float64{0.5: 0.1, 0.9: 0.1, 0.99: 0.1}, alpha, 0},
		{"bimodal tail (5% x3) native buckets, n=2000, p99:+15%", bimodal(0.05, 3), nil, 1, 0.85},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var fails float64
			for seed := 0; seed < seeds; seed++ {
				r := rand.New(rand.NewPCG(uint64(seed), 0x415))
				b, c := sample(r, 2000, lognormal(recSigma)), sample(r, 2000, tc.cand)
				op := source.Op{Name: "Reconcile",
					Baseline:  source.Side{Hist: nativeHist(b), Count: 2000},
					Candidate: source.Side{Hist: nativeHist(c), Count: 2000}}
				if Evaluate(&source.Result{Ops: []source.Op{op}}, "a", "b", Config{Alpha: alpha, Thresholds: tc.threshold}).Verdict == conventions.VerdictFail {
					fails++
				}
			}
			rate := fails / seeds
			t.Logf("CALIBRATION histogram fail rate %-52s %.4f (%d seeds)", tc.name, rate, seeds)
			if rate > tc.maxFail+mcSlack(alpha, seeds)*boolf(tc.maxFail < 1) || rate < tc.minFail {
				t.Errorf("fail rate %.4f outside [%.2f, %.2f]", rate, tc.minFail, tc.maxFail)
			}
		})
	}
}

func boolf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func TestCalibrationDetection(t *testing.T) {
	skipShort(t)
	const seeds = 200
	cases := []struct {
		name    string
		n       int
		cand    shape
		cfg     Config
		minRate float64 // required detection rate
	}{
		// 5% of reconciles 3x slower (the Tempo fixture's story): p99 about +45%.
		{"bimodal tail (5% x3), n=2000", 2000, bimodal(0.05, 3), Config{}, 0.90},
		// p99 +25%, median unchanged. At n=2000 a p99 is known to about ±8%
		// per side, so a +25% shift tested against +15% is near the edge;
		// the rate is reported and required to clear a third, and at n=10000
		// it must be reliable.
		{"p99 +25% median unchanged, n=2000", 2000, tailStretch(1.25), Config{}, 0.30},
		{"p99 +25% median unchanged, n=10000", 10000, tailStretch(1.25), Config{}, 0.80},
		// Uniform +20%: every quantile moves; gate all three at +5%.
		{"uniform +20%, n=2000, --threshold 5%", 2000, scaled(1.2), Config{Thresholds: map[float64]float64{0.5: 0.05, 0.9: 0.05, 0.99: 0.05}}, 0.95},
		{"uniform +20%, n=2000, default p99:+15%", 2000, scaled(1.2), Config{}, 0.0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fail, pass, inc := rate(t, seeds, tc.n, lognormal(recSigma), tc.cand, tc.cfg)
			t.Logf("CALIBRATION detection rate %-42s fail %.3f  pass %.3f  inconclusive %.3f (%d seeds)", tc.name, fail, pass, inc, seeds)
			if fail < tc.minRate {
				t.Errorf("detection rate %.3f below required %.2f", fail, tc.minRate)
			}
			if pass > 0.05 {
				t.Errorf("a real regression passed in %.3f of runs", pass)
			}
		})
	}
}

func TestSmallSamplesInconclusive(t *testing.T) {
	for _, n := range []int{20, 100, 298} {
		r := rand.New(rand.NewPCG(uint64(n), 1))
		// Even a doubled p99 cannot be called with too few spans.
		res := &source.Result{Ops: []source.Op{rawOp(sample(r, n, lognormal(recSigma)), sample(r, n, scaled(2)))}}
		rep := Evaluate(res, "a", "b", Config{})
		if rep.Verdict != conventions.VerdictInconclusive || rep.ExitCode != conventions.ExitInconclusive {
			t.Errorf("n=%d: verdict %s exit %d, want inconclusive/2", n, rep.Verdict, rep.ExitCode)
		}
		for _, c := range rep.Comparisons {
			if c.Quantile == 0.99 && (c.Verdict != conventions.VerdictInconclusive || !contains(c.Reason, "too few spans")) {
				t.Errorf("n=%d p99: %s %q", n, c.Verdict, c.Reason)
			}
		}
		rep = Evaluate(res, "a", "b", Config{InconclusiveAsPass: true})
		if rep.ExitCode != conventions.ExitPass {
			t.Errorf("--inconclusive-as-pass: exit %d", rep.ExitCode)
		}
	}
	// 299 spans are enough for p99 to be decidable at all.
	r := rand.New(rand.NewPCG(7, 1))
	res := &source.Result{Ops: []source.Op{rawOp(sample(r, 299, lognormal(recSigma)), sample(r, 299, scaled(3)))}}
	if rep := Evaluate(res, "a", "b", Config{}); rep.Comparisons[2].Verdict != conventions.VerdictFail {
		t.Errorf("n=299, p99 x3: %s %q", rep.Comparisons[2].Verdict, rep.Comparisons[2].Reason)
	}
}

func contains(s, sub string) bool {
	return len(s) >= len(sub) && (s == sub || len(sub) == 0 || indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}
