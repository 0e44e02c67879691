package stats

import (
	"math"
	"sort"

	"gonum.org/v1/gonum/mathext"
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
	Histogram              bool    // bucketed data
	Resolution             float64 // histogram only: coarsest bucket factor at the quantile
	// Edges is true when a histogram's interval runs between bucket edges
	// (buckets too coarse for the threshold); false when it is computed like
	// raw data, from interpolated order statistics.
	Edges bool

	logRatio   float64 // raw and interpolated histograms
	seLo, seHi float64 // standard errors of ln ratio below and above
	hb, hc     *Histogram

	// Per side, for NeededN: the sampling part of each standard error of ln q
	// (which shrinks like 1/sqrt(n)) and the bucket part (which does not).
	// When the side has too few spans for the SETail ranks, the sampling
	// part comes from the most extreme ranks it has (roughLogSE).
	bLo, bHi, cLo, cHi float64
	bQuant, cQuant     float64
}

// Value is the point estimate of the ratio.
func (r *Ratio) Value() float64 { return r.Cand / r.Base }

// Valid reports whether an interval can be formed at all.
func (r *Ratio) Valid() bool {
	if r.Edges {
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
	r.bLo, r.bHi = eb.LogSELo, eb.LogSEHi
	if math.IsNaN(r.bLo) || math.IsNaN(r.bHi) {
		r.bLo, r.bHi = roughLogSE(base, p, eb.Q)
	}
	r.cLo, r.cHi = ec.LogSELo, ec.LogSEHi
	if math.IsNaN(r.cLo) || math.IsNaN(r.cHi) {
		r.cLo, r.cHi = roughLogSE(cand, p, ec.Q)
	}
	return r
}

// roughLogSE estimates the standard errors of ln q like EstimateRaw when the
// sample is too small for ranks at SETail: from the most extreme order
// statistics there are (x_(1), x_(n)), each with the z of its own exact
// binomial tail (for x_(n) at p99 and n=201: P(X_(n) < q) = 0.99^201 = 13%,
// z = 1.11). A side with no usable bound borrows the other's (a symmetric
// sampling distribution). Only NeededN uses it: it never makes an interval.
func roughLogSE(sorted []float64, p, q float64) (lo, hi float64) {
	n := len(sorted)
	lo, hi = math.NaN(), math.NaN()
	if n < 2 || !(q > 0) {
		return lo, hi
	}
	l, u := OrderStatRanks(n, p, SETail)
	l, u = max(l, 1), min(u, n)
	if tl := BinomCDF(l-1, n, p); tl < 0.5 && sorted[l-1] < q {
		lo = (math.Log(q) - math.Log(math.Max(sorted[l-1], MinDuration))) / NormQuantile(1-tl)
	}
	if tu := 1 - BinomCDF(u-1, n, p); tu < 0.5 && sorted[u-1] > q {
		hi = (math.Log(sorted[u-1]) - math.Log(q)) / NormQuantile(1-tu)
	}
	if math.IsNaN(lo) {
		lo = hi
	}
	if math.IsNaN(hi) {
		hi = lo
	}
	return lo, hi
}

// NewHistogramRatio compares bucketed durations. fine is the bucket factor
// up to which the buckets count as fine enough to interpolate (1+threshold):
// then the interval is built like NewRawRatio's from interpolated order
// statistics, with each side's error widened by the spread of a value
// uniform (in log) over its bucket, ln(factor)/sqrt(12). Coarser buckets
// give the bucket-edge interval, which only a shift across bucket bounds
// can clear.
func NewHistogramRatio(base, cand *Histogram, p, fine float64) *Ratio {
	r := &Ratio{P: p, Histogram: true, Edges: true, hb: base, hc: cand,
		Base: base.Quantile(p), Cand: cand.Quantile(p),
		NBase: int(math.Floor(base.Total() + 1e-9)), NCand: int(math.Floor(cand.Total() + 1e-9))}
	r.Resolution = math.Max(base.Resolution(p), cand.Resolution(p))
	bl, bh := base.Bounds(p, SETail)
	cl, ch := cand.Bounds(p, SETail)
	r.BaseSpread = (bh - bl) / 2 / r.Base
	r.CandSpread = (ch - cl) / 2 / r.Cand
	if r.Resolution <= fine {
		eb, ec := estimateHist(base, p), estimateHist(cand, p)
		if !math.IsNaN(eb.LogSELo+eb.LogSEHi+ec.LogSELo+ec.LogSEHi) && r.Base > 0 && r.Cand > 0 {
			r.Edges = false
			r.logRatio = math.Log(r.Cand) - math.Log(r.Base)
			r.seLo = math.Hypot(ec.LogSELo, eb.LogSEHi)
			r.seHi = math.Hypot(ec.LogSEHi, eb.LogSELo)
			// estimateHist added the bucket spread in quadrature: take it
			// back out so NeededN can keep it fixed while n grows.
			r.bQuant = math.Log(base.Resolution(p)) / math.Sqrt(12)
			r.cQuant = math.Log(cand.Resolution(p)) / math.Sqrt(12)
			stat := func(se, quant float64) float64 { return math.Sqrt(math.Max(se*se-quant*quant, 0)) }
			r.bLo, r.bHi = stat(eb.LogSELo, r.bQuant), stat(eb.LogSEHi, r.bQuant)
			r.cLo, r.cHi = stat(ec.LogSELo, r.cQuant), stat(ec.LogSEHi, r.cQuant)
		}
	}
	return r
}

// estimateHist is EstimateRaw for a histogram: the order statistics of
// ranks l and u are read by interpolation, and the bucket's own spread is
// added to each standard error.
func estimateHist(h *Histogram, p float64) RawEstimate {
	total := h.Total()
	n := int(math.Floor(total + 1e-9))
	e := RawEstimate{N: n, Q: h.Quantile(p), LogSELo: math.NaN(), LogSEHi: math.NaN()}
	l, u := OrderStatRanks(n, p, SETail)
	if l < 1 || u > n || !(e.Q > 0) {
		return e
	}
	e.Lo, e.Hi = h.Quantile(float64(l)/total), h.Quantile(float64(u)/total)
	if !(e.Lo > 0) || math.IsInf(e.Hi, 1) {
		return e
	}
	zLo := NormQuantile(1 - BinomCDF(l-1, n, p))
	zHi := NormQuantile(BinomCDF(u-1, n, p))
	quant := math.Log(h.Resolution(p)) / math.Sqrt(12)
	e.LogSELo = math.Hypot(math.Max(math.Log(e.Q)-math.Log(e.Lo), 0)/zLo, quant)
	e.LogSEHi = math.Hypot(math.Max(math.Log(e.Hi)-math.Log(e.Q), 0)/zHi, quant)
	return e
}

// Interval is the two-sided interval of the ratio with at most tail
// probability of lying wholly above (and, separately, wholly below) the
// true ratio.
func (r *Ratio) Interval(tail float64) (lo, hi float64) {
	if !r.Valid() {
		return 0, math.Inf(1)
	}
	if !r.Edges {
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
	if !r.Edges {
		return 1 - NormCDF((r.logRatio-math.Log(bound))/r.seLo)
	}
	return r.searchTail(func(t float64) bool { lo, _ := r.Interval(t); return lo > bound })
}

// NeededN is the number of spans per side at which the interval read at tail
// would exclude bound with probability power, if the true ratio were the
// observed one and each side's distribution the observed one: the power
// analysis behind an inconclusive verdict. +Inf when no n does (the observed
// ratio is the bound, or the bucket spread alone is wider than the distance);
// NaN when it cannot be estimated (bucket-edge intervals, which n does not
// narrow; no spread on a side).
//
// The model. Each side's standard error of ln q comes from its
// order-statistic interval; asymptotically a quantile's variance is
// p(1-p)/(n f(q)²), so the sampling part scales as sqrt(n_obs/n) while the
// shape (the density at q, and the skew that makes the lower and upper
// errors differ) stays what was observed. The bucket part of an
// interpolated histogram, ln(factor)/sqrt(12), does not shrink. With d the
// distance from ln(ratio) to ln(bound), the side of the interval that faces
// the bound (the lower one when the ratio is above: fail; the upper one when
// below: pass) has, at n spans per side,
//
//	se(n)² = (g_c s_c² n_c + g_b s_b² n_b)/n + k_c² + k_b²
//
// (s the sampling part of a side's error at its observed count, k the
// bucket part, g below), and the estimate of ln ratio lands at least z_(1-tail)·se(n) from the
// bound on the true side with probability power when
// d = (z_(1-tail) + z_power)·se(n): the textbook normal power formula,
// solved for n. Inverting the order-statistic interval exactly instead
// would need the distribution beyond the ranks observed; the scaling needs
// only the spread already measured.
//
// g is the pilot-variance allowance (Browne 1995, "On the use of a pilot
// sample for sample size determination"): the observed s is itself an
// estimate, read from the gap between the quantile and one bound of its
// interval, which holds only m = |rank of the bound - p(n+1)| spans (5 for
// p99 at 1,000 spans, 45 for p50 at 3,000). The gap is a sum of m spacings,
// close to Gamma(m) in its own scale, so g = (m / its (1-conf) quantile)² puts
// s at its conf upper confidence limit. Planning with the plain s fell short
// of the target power over pilots (measured in the gate's
// TestCalibrationPower: 64-87% instead of 80%), the usual fate of a power
// analysis fed by a small pilot. conf = 0 turns the allowance off.
func (r *Ratio) NeededN(bound, tail, power, conf float64) float64 {
	return r.NeededNAt(math.Exp(r.logRatio), bound, tail, power, conf)
}

// NeededNAt is NeededN for a true ratio other than the observed one, at the
// observed spread: NeededNAt(1, …) is the number of spans per side that
// would let an unchanged release pass (or fail, below a negative threshold)
// with probability power.
func (r *Ratio) NeededNAt(ratio, bound, tail, power, conf float64) float64 {
	if r.Edges || !(bound > 0) || !(ratio > 0) || math.IsNaN(r.logRatio) {
		return math.NaN()
	}
	d := math.Log(ratio) - math.Log(bound)
	if d == 0 {
		return math.Inf(1)
	}
	// Fail side: the candidate's lower error and the baseline's upper one.
	sc, sb, upC, upB := r.cLo, r.bHi, false, true
	if d < 0 {
		sc, sb, upC, upB = r.cHi, r.bLo, true, false
	}
	if math.IsNaN(sc) || math.IsNaN(sb) {
		return math.NaN()
	}
	gc, gb := spreadAllowance(r.NCand, r.P, upC, conf), spreadAllowance(r.NBase, r.P, upB, conf)
	z := NormQuantile(1-tail) + NormQuantile(power)
	room := d*d/(z*z) - r.cQuant*r.cQuant - r.bQuant*r.bQuant
	if room <= 0 {
		return math.Inf(1)
	}
	return (gc*sc*sc*float64(r.NCand) + gb*sb*sb*float64(r.NBase)) / room
}

// spreadAllowance is NeededN's g for one side of n spans: the factor that
// takes the squared standard error read from the lower (or upper) bound of
// the order-statistic interval to its conf upper confidence limit.
func spreadAllowance(n int, p float64, upper bool, conf float64) float64 {
	if conf <= 0 || n < 1 {
		return 1
	}
	l, u := OrderStatRanks(n, p, SETail)
	l, u = max(l, 1), min(u, n)
	m := p*float64(n+1) - float64(l)
	if upper {
		m = float64(u) - p*float64(n+1)
	}
	m = math.Max(m, 1)
	g := m / mathext.GammaIncRegInv(m, 1-conf)
	return g * g
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
// the candidate. P is the one-sided p-value for H0: p2 - p1 <= Delta (the
// candidate's share rose by no more than Delta): the pooled two-proportion z
// test when Delta is 0, the unpooled (Wald) one otherwise. Lo and Hi bound
// the difference (candidate - baseline) with a 90% Wald interval.
type Proportions struct {
	Base, Cand float64
	Delta      float64
	P          float64
	Lo, Hi     float64
}

// TwoProportionDelta runs the test against an allowed rise delta. Empty sides
// give P = 1.
func TwoProportionDelta(x1, n1, x2, n2, delta float64) Proportions {
	r := Proportions{P: 1, Lo: math.Inf(-1), Hi: math.Inf(1), Delta: delta}
	if n1 <= 0 || n2 <= 0 {
		return r
	}
	p1, p2 := x1/n1, x2/n2
	r.Base, r.Cand = p1, p2
	wald := math.Sqrt(p1*(1-p1)/n1 + p2*(1-p2)/n2)
	se := wald
	if delta == 0 {
		pool := (x1 + x2) / (n1 + n2)
		se = math.Sqrt(pool * (1 - pool) * (1/n1 + 1/n2))
	}
	if se > 0 {
		r.P = 1 - NormCDF((p2-p1-delta)/se)
	} else if p2-p1 > delta {
		r.P = 0
	}
	w := NormQuantile(0.95) * wald
	r.Lo, r.Hi = p2-p1-w, p2-p1+w
	return r
}
