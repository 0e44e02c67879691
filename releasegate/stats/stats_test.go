package stats

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func binomPMFSum(k, n int, p float64) float64 {
	var s float64
	for i := 0; i <= k; i++ {
		lc, _ := math.Lgamma(float64(n + 1))
		a, _ := math.Lgamma(float64(i + 1))
		b, _ := math.Lgamma(float64(n - i + 1))
		s += math.Exp(lc - a - b + float64(i)*math.Log(p) + float64(n-i)*math.Log1p(-p))
	}
	return s
}

func TestBinomCDF(t *testing.T) {
	for _, c := range []struct {
		n int
		p float64
	}{{10, 0.5}, {300, 0.99}, {2000, 0.9}, {50, 0.01}} {
		for _, k := range []int{0, 1, c.n / 2, int(float64(c.n) * c.p), c.n - 2} {
			got, want := BinomCDF(k, c.n, c.p), binomPMFSum(k, c.n, c.p)
			if math.Abs(got-want) > 1e-9*math.Max(1, want) && math.Abs(got-want) > 1e-12 {
				t.Errorf("BinomCDF(%d,%d,%g) = %.12g, want %.12g", k, c.n, c.p, got, want)
			}
		}
	}
}

// At millions of spans only the tails count: OrderStatRanks and the z of
// each bound read BinomCDF where it is at most a few percent. There it must
// match the summed probabilities (in logs; terms beyond 40 standard
// deviations below k are zero in float64) to 1e-6.
func TestBinomCDFLargeN(t *testing.T) {
	for _, c := range []struct {
		n    int
		p    float64
		tail float64
	}{{5_000_000, 0.99, 0.05}, {5_000_000, 0.5, 0.05}, {5_000_000, 0.999, 0.01}, {2_500_000, 0.9, 0.025}} {
		l, u := OrderStatRanks(c.n, c.p, c.tail)
		sd := math.Sqrt(float64(c.n) * c.p * (1 - c.p))
		from := max(0, int(float64(l)-40*sd))
		for _, k := range []int{l - 1, l} {
			got, want := BinomCDF(k, c.n, c.p), binomPMFRange(from, k, c.n, c.p)
			if math.Abs(got-want) > 1e-6*want {
				t.Errorf("n=%d p=%g: BinomCDF(%d) = %.10g, want %.10g", c.n, c.p, k, got, want)
			}
		}
		for _, k := range []int{u - 2, u - 1} {
			got, want := 1-BinomCDF(k, c.n, c.p), binomPMFRange(k+1, min(c.n, int(float64(u)+40*sd)), c.n, c.p)
			if math.Abs(got-want) > 1e-6*want {
				t.Errorf("n=%d p=%g: 1-BinomCDF(%d) = %.10g, want %.10g", c.n, c.p, k, got, want)
			}
		}
	}
}

// binomPMFRange is P(from <= Bin(n,p) <= to), summed term by term.
func binomPMFRange(from, to, n int, p float64) float64 {
	lc, _ := math.Lgamma(float64(n + 1))
	var s float64
	for i := from; i <= to; i++ {
		a, _ := math.Lgamma(float64(i + 1))
		b, _ := math.Lgamma(float64(n - i + 1))
		s += math.Exp(lc - a - b + float64(i)*math.Log(p) + float64(n-i)*math.Log1p(-p))
	}
	return s
}

func TestOrderStatRanks(t *testing.T) {
	for _, c := range []struct {
		n       int
		p, tail float64
	}{{299, 0.99, 0.05}, {2000, 0.99, 0.025}, {1000, 0.5, 0.05}, {5_000_000, 0.99, 0.05}, {30, 0.9, 0.05}} {
		l, u := OrderStatRanks(c.n, c.p, c.tail)
		// Coverage: each bound is wrong with probability at most tail ...
		if l >= 1 && BinomCDF(l-1, c.n, c.p) > c.tail {
			t.Errorf("%+v: lower rank %d misses too often", c, l)
		}
		if u <= c.n && 1-BinomCDF(u-1, c.n, c.p) > c.tail+1e-12 {
			t.Errorf("%+v: upper rank %d misses too often", c, u)
		}
		// ... and is the tightest such rank.
		if l < c.n && BinomCDF(l, c.n, c.p) <= c.tail {
			t.Errorf("%+v: lower rank %d not the largest", c, l)
		}
		if u > 1 && u <= c.n && 1-BinomCDF(u-2, c.n, c.p) <= c.tail {
			t.Errorf("%+v: upper rank %d not the smallest", c, u)
		}
		t.Logf("n=%d p=%g tail=%g: ranks %d..%d", c.n, c.p, c.tail, l, u)
	}
}

func TestMinSamples(t *testing.T) {
	for _, c := range []struct {
		p    float64
		want int
	}{{0.99, 299}, {0.9, 29}, {0.5, 5}, {0.999, 2995}, {0.01, 299}} {
		if got := MinSamples(c.p, 0.05); got != c.want {
			t.Errorf("MinSamples(%g) = %d, want %d", c.p, got, c.want)
		}
		// The rule is exactly where the upper order-statistic bound starts to exist.
		if c.p >= 0.5 {
			_, u := OrderStatRanks(c.want, c.p, 0.05)
			_, u1 := OrderStatRanks(c.want-1, c.p, 0.05)
			if u > c.want || u1 <= c.want-1 {
				t.Errorf("p=%g: bound exists at n=%d: %v, at n-1: %v", c.p, c.want, u <= c.want, u1 <= c.want-1)
			}
		}
	}
}

func TestHarrellDavis(t *testing.T) {
	if got := HarrellDavis([]float64{1, 2, 3, 4, 5}, 0.5); math.Abs(got-3) > 1e-12 {
		t.Errorf("HD median of 1..5 = %v, want 3 (symmetric weights)", got)
	}
	// Uniform(0,1): HD's p-quantile is unbiased-ish and close to p.
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float64, 20000)
	for i := range x {
		x[i] = r.Float64()
	}
	slices.Sort(x)
	for _, p := range []float64{0.5, 0.9, 0.99} {
		if got := HarrellDavis(x, p); math.Abs(got-p) > 0.01 {
			t.Errorf("HD p%g of uniform = %v", p*100, got)
		}
		if hd, t7 := HarrellDavis(x, p), Type7(x, p); math.Abs(hd-t7) > 0.005 {
			t.Errorf("HD %v and type 7 %v disagree at n=20000", hd, t7)
		}
	}
}

func TestHolm(t *testing.T) {
	reject, level := Holm([]float64{0.01, 0.04, 0.03, 0.005}, 0.05)
	wantR := []bool{true, false, false, true}
	wantL := []float64{0.05 / 3, 0.025, 0.025, 0.0125}
	for i := range wantR {
		if reject[i] != wantR[i] || math.Abs(level[i]-wantL[i]) > 1e-15 {
			t.Errorf("hypothesis %d: reject %v level %v, want %v %v", i, reject[i], level[i], wantR[i], wantL[i])
		}
	}
}

func TestRatioIntervalAgreesWithPValue(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	gen := func(n int, f float64) []float64 {
		x := make([]float64, n)
		for i := range x {
			x[i] = f * 0.05 * math.Exp(0.5*r.NormFloat64())
		}
		slices.Sort(x)
		return x
	}
	toHist := func(x []float64) *Histogram {
		h := &Histogram{Exponential: true}
		for _, v := range x {
			up := math.Pow(2, math.Ceil(math.Log2(v*1e9))) / 1e9
			h.Buckets = append(h.Buckets, Bucket{Lower: up / 2, Upper: up, Count: 1})
		}
		h.Normalize()
		return h
	}
	b, c := gen(3000, 1), gen(3000, 1.4)
	native := func(x []float64) *Histogram {
		h := &Histogram{Exponential: true}
		for _, v := range x {
			k := math.Ceil(8 * math.Log2(v))
			h.Buckets = append(h.Buckets, Bucket{Lower: math.Exp2((k - 1) / 8), Upper: math.Exp2(k / 8), Count: 1})
		}
		h.Normalize()
		return h
	}
	fineR := NewHistogramRatio(native(b), native(c), 0.99, 1.15)
	if fineR.Edges || !NewHistogramRatio(toHist(b), toHist(c), 0.99, 1.15).Edges {
		t.Fatalf("schema-3 buckets must be interpolated and power-of-two ones bounded by edges at a +15%% threshold")
	}
	for _, ratio := range []*Ratio{NewRawRatio(b, c, 0.99), fineR, NewHistogramRatio(toHist(b), toHist(c), 0.5, 1.15), NewHistogramRatio(toHist(b), toHist(gen(3000, 4)), 0.9, 1.15)} {
		for _, bound := range []float64{0.9, 1.0, 1.15, 1.3, 2} {
			p := ratio.PValueAbove(bound)
			for _, tail := range []float64{0.001, 0.01, 0.025, 0.05} {
				lo, _ := ratio.Interval(tail)
				if (lo > bound) != (p < tail) && math.Abs(p-tail) > 1e-6 {
					t.Errorf("hist=%v bound %v tail %v: lo %v but p %v", ratio.Histogram, bound, tail, lo, p)
				}
			}
		}
	}
}

func TestHistogramQuantile(t *testing.T) {
	h := &Histogram{Buckets: []Bucket{{0, 0.1, 50}, {0.1, 0.2, 40}, {0.2, math.Inf(1), 10}}}
	if got := h.Quantile(0.5); math.Abs(got-0.1) > 1e-12 {
		t.Errorf("p50 = %v", got)
	}
	if got := h.Quantile(0.7); math.Abs(got-0.15) > 1e-12 {
		t.Errorf("p70 = %v, want linear 0.15", got)
	}
	if got := h.Quantile(0.95); got != 0.2 {
		t.Errorf("p95 in +Inf bucket = %v, want its lower bound", got)
	}
	e := &Histogram{Exponential: true, Buckets: []Bucket{{1, 2, 10}, {2, 4, 10}}}
	if got := e.Quantile(0.75); math.Abs(got-2*math.Sqrt2) > 1e-12 {
		t.Errorf("exponential p75 = %v, want geometric midpoint %v", got, 2*math.Sqrt2)
	}
	if got := e.Resolution(0.75); got != 2 {
		t.Errorf("resolution %v", got)
	}
}

func TestTwoProportionPooled(t *testing.T) {
	r := TwoProportionDelta(20, 1000, 40, 1000, 0)
	if math.Abs(r.P-0.004385) > 2e-5 {
		t.Errorf("p = %v, want 0.00438 (z = 2.62)", r.P)
	}
	if r.Lo <= 0 || r.Hi <= r.Lo {
		t.Errorf("interval [%v, %v]", r.Lo, r.Hi)
	}
	if r := TwoProportionDelta(0, 0, 1, 10, 0); r.P != 1 {
		t.Errorf("empty side p = %v", r.P)
	}
}

func TestCDFAtInvertsQuantile(t *testing.T) {
	for _, h := range []*Histogram{
		{Buckets: []Bucket{{Lower: 0, Upper: 0.1, Count: 50}, {Lower: 0.1, Upper: 0.25, Count: 40}, {Lower: 0.25, Upper: 1, Count: 10}}},
		{Exponential: true, Buckets: []Bucket{{Lower: 0.5, Upper: 1, Count: 3}, {Lower: 1, Upper: 2, Count: 10}, {Lower: 2, Upper: 4, Count: 7}}},
	} {
		for _, p := range []float64{0.05, 0.5, 0.9, 0.99} {
			if got := h.CDFAt(h.Quantile(p)); math.Abs(got-p) > 1e-9 {
				t.Errorf("exp=%v: CDFAt(Quantile(%v)) = %v", h.Exponential, p, got)
			}
		}
	}
}

// NeededN solves d = (z_(1-tail) + z_power)·se(n) for n, with the side of
// the interval that faces the bound.
func TestNeededN(t *testing.T) {
	r := &Ratio{P: 0.99, NBase: 1000, NCand: 4000, bLo: 0.03, bHi: 0.05, cLo: 0.07, cHi: 0.11}
	z := NormQuantile(1-0.025) + NormQuantile(0.8)
	for _, tc := range []struct {
		ratio  float64
		sc, sb float64 // the errors that face the bound
	}{{1.25, 0.07, 0.05}, {0.95, 0.11, 0.03}} {
		r.logRatio = math.Log(tc.ratio)
		n := r.NeededN(1.15, 0.025, 0.8, 0)
		se := math.Sqrt((tc.sc*tc.sc*4000 + tc.sb*tc.sb*1000) / n)
		if d := math.Abs(math.Log(tc.ratio / 1.15)); math.Abs(d/se-z) > 1e-9 {
			t.Errorf("ratio %v: at n=%.0f the bound is %.4f standard errors away, want %.4f", tc.ratio, n, d/se, z)
		}
		// The pilot-variance allowance only ever asks for more.
		if m := r.NeededN(1.15, 0.025, 0.8, 0.8); !(m > n) {
			t.Errorf("ratio %v: with the allowance n=%.0f, without %.0f", tc.ratio, m, n)
		}
		if m := r.NeededN(1.15, 0.025, 0.9, 0); !(m > n) {
			t.Errorf("ratio %v: 90%% power n=%.0f, 80%% n=%.0f", tc.ratio, m, n)
		}
	}
	// NeededNAt plans for another true ratio at the same spread: at the
	// observed one it is NeededN; for no change (ratio 1 against +15%) the
	// pass side faces the bound.
	r.logRatio = math.Log(0.8)
	if a, b := r.NeededNAt(0.8, 1.15, 0.025, 0.8, 0.8), r.NeededN(1.15, 0.025, 0.8, 0.8); a != b {
		t.Errorf("NeededNAt(observed) = %v, NeededN = %v", a, b)
	}
	n1 := r.NeededNAt(1, 1.15, 0.025, 0.8, 0)
	if se := math.Sqrt((0.11*0.11*4000 + 0.03*0.03*1000) / n1); math.Abs(math.Log(1.15)/se-z) > 1e-9 {
		t.Errorf("no change: at n=%.0f the bound is %.4f standard errors away, want %.4f", n1, math.Log(1.15)/se, z)
	}
	r.logRatio = math.Log(1.15)
	if n := r.NeededN(1.15, 0.025, 0.8, 0.8); !math.IsInf(n, 1) {
		t.Errorf("ratio on the bound: n=%v, want +Inf", n)
	}
	// A bucket spread wider than the distance: no n decides.
	r.logRatio, r.cQuant, r.bQuant = math.Log(1.2), 0.02, 0.02
	if n := r.NeededN(1.15, 0.025, 0.8, 0); !math.IsInf(n, 1) {
		t.Errorf("bucket floor: n=%v, want +Inf", n)
	}
	if n := (&Ratio{Edges: true, NBase: 10, NCand: 10}).NeededN(1.15, 0.05, 0.8, 0.8); !math.IsNaN(n) {
		t.Errorf("bucket-edge interval: n=%v, want NaN", n)
	}
}

func TestSpreadAllowance(t *testing.T) {
	prev := math.Inf(1)
	for _, n := range []int{300, 1000, 3000, 10000, 100000, 1000000} {
		g := spreadAllowance(n, 0.99, true, 0.8)
		if !(g > 1 && g < prev) {
			t.Errorf("n=%d: allowance %v, want in (1, %v)", n, g, prev)
		}
		prev = g
	}
	if g := spreadAllowance(1000000, 0.5, false, 0.8); g > 1.1 {
		t.Errorf("p50 at 1M spans: allowance %v, want about 1", g)
	}
	if g := spreadAllowance(1000, 0.99, true, 0); g != 1 {
		t.Errorf("conf 0: %v", g)
	}
}

// Below the minimum sample the ratio makes no interval, but NeededN still
// has a spread to work from (roughLogSE).
func TestNeededNTooFewSpans(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	draw := func(f float64) []float64 {
		x := make([]float64, 201)
		for i := range x {
			x[i] = f * 0.05 * math.Exp(0.5*r.NormFloat64())
		}
		slices.Sort(x)
		return x
	}
	rt := NewRawRatio(draw(1), draw(1.6), 0.99)
	if rt.Valid() {
		t.Fatal("201 spans made a p99 interval")
	}
	if n := rt.NeededN(1.15, 0.05, 0.8, 0.8); math.IsNaN(n) || math.IsInf(n, 0) || n <= 0 {
		t.Errorf("201 spans, p99 x1.6: n=%v", n)
	}
}
