package stats

import (
	"math"
	"sort"
)

// Bucket is one histogram bucket: Count observations in (Lower, Upper].
type Bucket struct {
	Lower, Upper float64
	Count        float64
}

// Histogram is bucketed durations (seconds) as Prometheus (classic or native)
// or Tempo (powers of two of nanoseconds) report them. Exponential buckets
// are interpolated geometrically, linear ones linearly, as each scheme's
// bucket layout assumes.
type Histogram struct {
	Buckets     []Bucket
	Exponential bool
}

// Normalize sorts buckets, drops empty ones and merges duplicates.
func (h *Histogram) Normalize() {
	sort.Slice(h.Buckets, func(i, j int) bool { return h.Buckets[i].Upper < h.Buckets[j].Upper })
	out := h.Buckets[:0]
	for _, b := range h.Buckets {
		if b.Count <= 0 || math.IsNaN(b.Count) {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Upper == b.Upper && out[n-1].Lower == b.Lower {
			out[n-1].Count += b.Count
			continue
		}
		out = append(out, b)
	}
	h.Buckets = out
}

// FromCumulative builds a histogram from Prometheus classic buckets:
// cumulative counts by upper bound (le; +Inf included), e.g. the increase()
// of each _bucket series. It returns the histogram and the total count.
// increase() extrapolates each bucket on its own, so a cumulative count can
// dip below the one before by a hair: a bucket never goes negative.
func FromCumulative(le map[float64]float64) (*Histogram, float64) {
	bounds := make([]float64, 0, len(le))
	for b := range le {
		bounds = append(bounds, b)
	}
	sort.Float64s(bounds)
	h := &Histogram{}
	prevLe, prevCum := 0.0, 0.0
	for _, b := range bounds {
		cum := max(le[b], prevCum)
		h.Buckets = append(h.Buckets, Bucket{Lower: prevLe, Upper: b, Count: cum - prevCum})
		prevLe, prevCum = b, cum
	}
	h.Normalize()
	return h, prevCum
}

// Total is the number of observations.
func (h *Histogram) Total() float64 {
	var t float64
	for _, b := range h.Buckets {
		t += b.Count
	}
	return t
}

// bucketAtRank returns the index of the bucket holding the r-th observation
// (r is 1-based; fractional counts from PromQL's increase() are allowed).
func (h *Histogram) bucketAtRank(r float64) int {
	var cum float64
	for i, b := range h.Buckets {
		cum += b.Count
		if cum >= r-1e-9 {
			return i
		}
	}
	return len(h.Buckets) - 1
}

// Quantile interpolates the p-quantile within its bucket.
func (h *Histogram) Quantile(p float64) float64 {
	total := h.Total()
	if total <= 0 {
		return math.NaN()
	}
	rank := p * total
	var cum float64
	for _, b := range h.Buckets {
		if cum+b.Count >= rank {
			lo := math.Max(b.Lower, 0)
			if math.IsInf(b.Upper, 1) {
				return lo // nothing to interpolate towards: report the bound, as Prometheus does
			}
			f := (rank - cum) / b.Count
			if h.Exponential && lo > 0 {
				return lo * math.Pow(b.Upper/lo, f)
			}
			return lo + f*(b.Upper-lo)
		}
		cum += b.Count
	}
	return h.Buckets[len(h.Buckets)-1].Upper
}

// Resolution is the factor Upper/Lower of the bucket holding the p-quantile:
// how finely the histogram can tell a quantile at all (2 for Tempo, about 1.09
// for a native histogram of schema 3, often 2.5 for classic buckets).
func (h *Histogram) Resolution(p float64) float64 {
	total := h.Total()
	if total <= 0 {
		return math.Inf(1)
	}
	b := h.Buckets[h.bucketAtRank(math.Max(p*total, 1))]
	if b.Lower <= 0 {
		return math.Inf(1)
	}
	return b.Upper / b.Lower
}

// Bounds is the distribution-free interval of the p-quantile from bucket
// counts: the order statistics of ranks l and u (OrderStatRanks with the
// given tail) lie somewhere in their buckets, so the interval runs from the
// lower edge of l's bucket to the upper edge of u's. It is as wide as the
// buckets force it to be and never narrower.
func (h *Histogram) Bounds(p, tail float64) (lo, hi float64) {
	n := int(math.Floor(h.Total() + 1e-9))
	l, u := OrderStatRanks(n, p, tail)
	lo, hi = 0, math.Inf(1)
	if n == 0 {
		return
	}
	if l >= 1 {
		lo = math.Max(h.Buckets[h.bucketAtRank(float64(l))].Lower, 0)
	}
	if u <= n {
		hi = h.Buckets[h.bucketAtRank(float64(u))].Upper
	}
	return lo, hi
}

// CDFAt is the share of observations at or below x under the same
// within-bucket model Quantile uses (so a plotted curve passes through the
// quantiles the gate reports).
func (h *Histogram) CDFAt(x float64) float64 {
	total := h.Total()
	if total <= 0 {
		return math.NaN()
	}
	var cum float64
	for _, b := range h.Buckets {
		if x >= b.Upper {
			cum += b.Count
			continue
		}
		lo := math.Max(b.Lower, 0)
		if x > lo && !math.IsInf(b.Upper, 1) {
			f := (x - lo) / (b.Upper - lo)
			if h.Exponential && lo > 0 {
				f = math.Log(x/lo) / math.Log(b.Upper/lo)
			}
			cum += f * b.Count
		}
		break
	}
	return cum / total
}

// CDF returns the points (upper bound, cumulative share) for plotting.
func (h *Histogram) CDF() (x, y []float64) {
	total := h.Total()
	var cum float64
	for _, b := range h.Buckets {
		cum += b.Count
		x = append(x, b.Upper)
		y = append(y, cum/total)
	}
	return
}
