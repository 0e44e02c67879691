package stats

import (
	"math"
	"sort"
)

// hdMaxN is where the Harrell-Davis estimator hands over to the plain
// interpolated order statistic: beyond it the two differ by far less than
// their standard error and HD's Beta weights cost more than the sort.
const hdMaxN = 50000

// MinDuration keeps logarithms finite for zero-length spans (1 ns).
const MinDuration = 1e-9

// HarrellDavis is the Harrell-Davis quantile of sorted data: a weighted mean of
// all order statistics with Beta(p(n+1), (1-p)(n+1)) weights. It has a smaller
// variance than a single order statistic at the sample sizes the gate sees
// (hundreds to thousands), which matters for p99. Weights further than 12
// standard deviations from p are below 1e-30 and skipped.
func HarrellDavis(sorted []float64, p float64) float64 {
	n := len(sorted)
	switch {
	case n == 0:
		return math.NaN()
	case n == 1:
		return sorted[0]
	}
	a, b := p*float64(n+1), (1-p)*float64(n+1)
	sd := math.Sqrt(a * b / ((a + b) * (a + b) * (a + b + 1)))
	iLo := int(math.Floor((p - 12*sd) * float64(n)))
	iHi := int(math.Ceil((p + 12*sd) * float64(n)))
	if iLo < 1 {
		iLo = 1
	}
	if iHi > n {
		iHi = n
	}
	var sum, wsum float64
	prev := BetaInc(float64(iLo-1)/float64(n), a, b)
	for i := iLo; i <= iHi; i++ {
		cur := BetaInc(float64(i)/float64(n), a, b)
		w := cur - prev
		prev = cur
		sum += w * sorted[i-1]
		wsum += w
	}
	if wsum <= 0 {
		return Type7(sorted, p)
	}
	return sum / wsum
}

// Type7 is the linearly interpolated order statistic (R's default, numpy's
// "linear").
func Type7(sorted []float64, p float64) float64 {
	n := len(sorted)
	if n == 0 {
		return math.NaN()
	}
	h := float64(n-1) * p
	i := int(math.Floor(h))
	if i >= n-1 {
		return sorted[n-1]
	}
	return sorted[i] + (h-float64(i))*(sorted[i+1]-sorted[i])
}

// Quantile is the gate's point estimate from sorted raw durations.
func Quantile(sorted []float64, p float64) float64 {
	if len(sorted) <= hdMaxN {
		return HarrellDavis(sorted, p)
	}
	return Type7(sorted, p)
}

// SETail is the per-side tail of the order-statistic interval from which
// the standard error of log q is read (a 90% interval). It also sets the
// minimum sample size: MinSamples(p, SETail) (299 for p99).
const SETail = 0.05

// RawEstimate is one side of a raw-duration comparison at one quantile.
type RawEstimate struct {
	N int
	Q float64 // point estimate (seconds)
	// Standard errors of ln Q below and above the estimate; NaN when n is
	// too small. Two of them because a quantile's sampling distribution is
	// skewed wherever the density is (a tail, the valley between two modes).
	LogSELo, LogSEHi float64
	Lo, Hi           float64 // distribution-free 90% interval of q (order statistics)
}

// EstimateRaw estimates the p-quantile of sorted durations and the standard
// errors of its logarithm, read off the distribution-free order-statistic
// interval: ln Q - ln x_(l) spans z_lo standard errors, where z_lo is the
// normal quantile of that bound's exact binomial tail (and likewise above).
// This is Price & Bonett's device for ratios of medians, used for any
// quantile and kept one-sided on each side. No density estimate and no
// resampling are needed, so it is deterministic and O(1) after the sort.
func EstimateRaw(sorted []float64, p float64) RawEstimate {
	n := len(sorted)
	e := RawEstimate{N: n, Q: math.NaN(), LogSELo: math.NaN(), LogSEHi: math.NaN(), Lo: math.NaN(), Hi: math.NaN()}
	if n == 0 {
		return e
	}
	e.Q = math.Max(Quantile(sorted, p), MinDuration)
	l, u := OrderStatRanks(n, p, SETail)
	if l >= 1 {
		e.Lo = sorted[l-1]
	}
	if u <= n {
		e.Hi = sorted[u-1]
	}
	if l >= 1 && u <= n {
		lo := math.Min(math.Max(e.Lo, MinDuration), e.Q)
		hi := math.Max(math.Max(e.Hi, MinDuration), e.Q)
		// Ranks are whole numbers, so each bound misses with probability a
		// little under 5%: use the z of its exact binomial tail, not 1.645,
		// or the standard errors come out too large.
		zLo := NormQuantile(1 - BinomCDF(l-1, n, p))
		zHi := NormQuantile(BinomCDF(u-1, n, p))
		e.LogSELo = (math.Log(e.Q) - math.Log(lo)) / zLo
		e.LogSEHi = (math.Log(hi) - math.Log(e.Q)) / zHi
		// Tied data (durations rounded to a clock tick) can make a bound equal
		// the estimate and claim infinite precision. The value is only known to
		// within half the gap to the next distinct duration: floor there.
		if lo >= e.Q {
			if i := sort.SearchFloat64s(sorted, e.Q); i > 0 {
				mid := math.Max((sorted[i-1]+e.Q)/2, MinDuration)
				e.LogSELo = (math.Log(e.Q) - math.Log(mid)) / zLo
			}
		}
		if hi <= e.Q {
			if i := sort.Search(n, func(k int) bool { return sorted[k] > e.Q }); i < n {
				e.LogSEHi = (math.Log((sorted[i]+e.Q)/2) - math.Log(e.Q)) / zHi
			}
		}
		e.LogSELo = math.Max(e.LogSELo, 1e-6)
		e.LogSEHi = math.Max(e.LogSEHi, 1e-6)
	}
	return e
}
