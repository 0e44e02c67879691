package stats

import (
	"math"
	"sort"
)

// Ratio compares the p-quantile of a candidate against a baseline as the
// ratio q_cand/q_base. Interval and PValueAbove agree by construction:
// Interval(t).Lo > b exactly when PValueAbove(b) < t, so a verdict read from
// the interval is the verdict of the test.
type Ratio struct {
	P          float64
	Base, Cand float64 // point estimates (seconds)
	NBase      int
	NCand      int
	// Spread of each side: relative half-width of its 90% interval.
	BaseSpread, CandSpread float64
	Histogram              bool    // bucketed data: interval from bucket edges
	Resolution             float64 // histogram only: coarsest bucket factor at the quantile

	logRatio     float64 // raw only
	seLo, seHi   float64 // raw only: standard errors of ln ratio below and above
	hb, hc       *Histogram
}

// Value is the point estimate of the ratio.
func (r *Ratio) Value() float64 { return r.Cand / r.Base }

// Valid reports whether an interval can be formed at all.
func (r *Ratio) Valid() bool {
	if r.Histogram {
		return r.NBase > 0 && r.NCand > 0
	}
	return !math.IsNaN(r.seLo) && !math.IsNaN(r.seHi)
}

// NewRawRatio compares raw durations (both slices sorted ascending). The
// interval is exp(ln(qc/qb) - z·sqrt(se_c,lo² + se_b,hi²)) to
// exp(ln(qc/qb) + z·sqrt(se_c,hi² + se_b,lo²)), each se from the side's
// order-statistic interval (EstimateRaw): the ratio is low when the candidate
// is low and the baseline high, hence the pairing.
func NewRawRatio(base, cand []float64, p float64) *Ratio {
	eb, ec := EstimateRaw(base, p), EstimateRaw(cand, p)
	r := &Ratio{P: p, Base: eb.Q, Cand: ec.Q, NBase: eb.N, NCand: ec.N,
		BaseSpread: (eb.Hi - eb.Lo) / 2 / eb.Q, CandSpread: (ec.Hi - ec.Lo) / 2 / ec.Q}
	r.logRatio = math.Log(ec.Q) - math.Log(eb.Q)
	r.seLo = math.Hypot(ec.LogSELo, eb.LogSEHi)
	r.seHi = math.Hypot(ec.LogSEHi, eb.LogSELo)
	return r
}

// NewHistogramRatio compares bucketed durations.
func NewHistogramRatio(base, cand *Histogram, p float64) *Ratio {
	r := &Ratio{P: p, Histogram: true, hb: base, hc: cand,
		Base: base.Quantile(p), Cand: cand.Quantile(p),
		NBase: int(math.Floor(base.Total() + 1e-9)), NCand: int(math.Floor(cand.Total() + 1e-9))}
	r.Resolution = math.Max(base.Resolution(p), cand.Resolution(p))
	bl, bh := base.Bounds(p, SETail)
	cl, ch := cand.Bounds(p, SETail)
	r.BaseSpread = (bh - bl) / 2 / r.Base
	r.CandSpread = (ch - cl) / 2 / r.Cand
	return r
}

// Interval is the two-sided interval of the ratio with at most tail
// probability of lying wholly above (and, separately, wholly below) the
// true ratio.
func (r *Ratio) Interval(tail float64) (lo, hi float64) {
	if !r.Valid() {
		return 0, math.Inf(1)
	}
	if !r.Histogram {
		z := NormQuantile(1 - tail)
		return math.Exp(r.logRatio - z*r.seLo), math.Exp(r.logRatio + z*r.seHi)
	}
	// Two independent sides: each gets tail' with 1-(1-tail')² = tail, since
	// the ratio's bound can only be wrong if one side's bound is.
	t := 1 - math.Sqrt(1-tail)
	bl, bh := r.hb.Bounds(r.P, t)
	cl, ch := r.hc.Bounds(r.P, t)
	lo = cl / bh
	if bl > 0 {
		hi = ch / bl
	} else {
		hi = math.Inf(1)
	}
	if math.IsNaN(lo) {
		lo = 0
	}
	return lo, hi
}

// PValueAbove is the one-sided p-value of H0: ratio <= bound (against the
// alternative that the candidate is slower than bound allows).
func (r *Ratio) PValueAbove(bound float64) float64 {
	if !r.Valid() {
		return 1
	}
	if !r.Histogram {
		return 1 - NormCDF((r.logRatio-math.Log(bound))/r.seLo)
	}
	return r.searchTail(func(t float64) bool { lo, _ := r.Interval(t); return lo > bound })
}

// PValueBelow is the one-sided p-value of H0: ratio >= bound.
func (r *Ratio) PValueBelow(bound float64) float64 {
	if !r.Valid() {
		return 1
	}
	if !r.Histogram {
		return NormCDF((r.logRatio - math.Log(bound)) / r.seHi)
	}
	return r.searchTail(func(t float64) bool { _, hi := r.Interval(t); return hi < bound })
}

// searchTail finds the smallest tail at which ok holds; intervals shrink as
// the tail grows, so ok is monotone in it.
func (r *Ratio) searchTail(ok func(float64) bool) float64 {
	if !ok(0.5) {
		return 1
	}
	lo, hi := math.Log(1e-15), math.Log(0.5)
	if ok(1e-15) {
		return 1e-15
	}
	for i := 0; i < 40; i++ {
		mid := (lo + hi) / 2
		if ok(math.Exp(mid)) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return math.Exp(hi)
}

// Holm runs Holm's step-down procedure at familywise level alpha over
// one-sided p-values. It returns, for every hypothesis, whether it is
// rejected and the per-comparison level its interval must be read at so that
// the interval agrees with the decision: alpha/(K-i+1) for the i-th smallest
// p-value while the chain rejects, and the level of the first non-rejected
// step for all the rest.
func Holm(p []float64, alpha float64) (reject []bool, level []float64) {
	k := len(p)
	reject = make([]bool, k)
	level = make([]float64, k)
	idx := make([]int, k)
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return p[idx[a]] < p[idx[b]] })
	stopped := false
	var stopLevel float64
	for rank, i := range idx {
		lv := alpha / float64(k-rank)
		if !stopped && p[i] <= lv {
			reject[i] = true
			level[i] = lv
			continue
		}
		if !stopped {
			stopped, stopLevel = true, lv
		}
		level[i] = stopLevel
	}
	return reject, level
}

// Proportions compares error shares: x1 of n1 in the baseline, x2 of n2 in
// the candidate. P is the one-sided p-value of the pooled two-proportion z
// test for the candidate's share being higher; Lo and Hi bound the
// difference (candidate - baseline) with a 90% Wald interval.
type Proportions struct {
	Base, Cand float64
	P          float64
	Lo, Hi     float64
}

// TwoProportion runs the test. Empty sides give P = 1.
func TwoProportion(x1, n1, x2, n2 float64) Proportions {
	r := Proportions{P: 1, Lo: math.Inf(-1), Hi: math.Inf(1)}
	if n1 <= 0 || n2 <= 0 {
		return r
	}
	p1, p2 := x1/n1, x2/n2
	r.Base, r.Cand = p1, p2
	pool := (x1 + x2) / (n1 + n2)
	se := math.Sqrt(pool * (1 - pool) * (1/n1 + 1/n2))
	if se > 0 {
		r.P = 1 - NormCDF((p2-p1)/se)
	} else if p2 > p1 {
		r.P = 0
	}
	w := NormQuantile(0.95) * math.Sqrt(p1*(1-p1)/n1+p2*(1-p2)/n2)
	r.Lo, r.Hi = p2-p1-w, p2-p1+w
	return r
}
