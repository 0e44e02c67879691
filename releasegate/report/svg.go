package report

import (
	"fmt"
	"html"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/opsight/opsight/releasegate/gate"
	"github.com/opsight/opsight/releasegate/stats"
)

const (
	svgW      = 760
	panelH    = 280
	padL      = 60
	padR      = 20
	padT      = 48
	padB      = 40
	colorBase = "#1f77b4"
	colorCand = "#ff7f0e"
)

// SVG draws, per operation, the ECDFs of both revisions on a log duration
// axis with the compared quantiles marked. The vertical axis counts nines
// (-log10(1-F)), so p50, p90, p99 and p99.9 are evenly spaced: on a linear
// axis the tail, where regressions hide, would be a flat line at the top. Raw data is drawn at 400
// log-spaced points (millions of spans stay a small file); histograms are
// drawn through their bucket bounds.
func SVG(w io.Writer, r *gate.Report) error {
	h := panelH*len(r.Dists) + 10
	if len(r.Dists) == 0 {
		h = panelH
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", svgW, h, svgW, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	for i, d := range r.Dists {
		panel(&b, r, d, float64(i*panelH))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

type curve struct{ x, y []float64 }

func rawCurve(sorted []float64, lo, hi float64) curve {
	var c curve
	n := float64(len(sorted))
	for i := 0; i <= 400; i++ {
		x := lo * math.Pow(hi/lo, float64(i)/400)
		k := sort.SearchFloat64s(sorted, math.Nextafter(x, math.Inf(1)))
		c.x = append(c.x, x)
		c.y = append(c.y, float64(k)/n)
	}
	return c
}

func histCurve(h *stats.Histogram, lo, hi float64) curve {
	var c curve
	for i := 0; i <= 400; i++ {
		x := lo * math.Pow(hi/lo, float64(i)/400)
		c.x = append(c.x, x)
		c.y = append(c.y, h.CDFAt(x))
	}
	return c
}

func panel(b *strings.Builder, r *gate.Report, d gate.Dist, y0 float64) {
	// x range: the 0.1th percentile to the maximum over both sides.
	lo, hi := math.Inf(1), 0.0
	extend := func(v float64) {
		if v > 0 && !math.IsInf(v, 0) && !math.IsNaN(v) {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	for _, s := range [][]float64{d.BaseRaw, d.CandRaw} {
		if len(s) > 0 {
			extend(s[int(float64(len(s)-1)*0.001)])
			extend(s[len(s)-1])
		}
	}
	var curves [2]curve
	for i, hist := range [2]*stats.Histogram{d.BaseHist, d.CandHist} {
		if hist == nil || len(hist.Buckets) == 0 {
			continue
		}
		xs, ys := hist.CDF()
		first := hist.Buckets[0].Lower
		if first <= 0 {
			first = xs[0] / 2
		}
		curves[i] = curve{x: append([]float64{first}, xs...), y: append([]float64{0}, ys...)}
		for _, x := range curves[i].x {
			extend(x)
		}
	}
	if hi <= lo || math.IsInf(lo, 1) {
		lo, hi = 1e-3, 1
	}
	for i, hist := range [2]*stats.Histogram{d.BaseHist, d.CandHist} {
		if hist != nil && len(hist.Buckets) > 0 {
			curves[i] = histCurve(hist, lo, hi)
		}
	}
	if d.BaseRaw != nil {
		curves[0] = rawCurve(d.BaseRaw, lo, hi)
	}
	if d.CandRaw != nil {
		curves[1] = rawCurve(d.CandRaw, lo, hi)
	}
	pw, ph := float64(svgW-padL-padR), float64(panelH-padT-padB)
	X := func(x float64) float64 {
		if x <= lo {
			return padL
		}
		return padL + pw*math.Log(x/lo)/math.Log(hi/lo)
	}
	maxN := math.Max(d.BaselineN, d.CandidateN)
	ymax := math.Min(4, math.Max(2.3, math.Log10(math.Max(maxN, 1))))
	Y := func(f float64) float64 {
		nines := -math.Log10(math.Max(1-f, math.Pow(10, -ymax)))
		return y0 + padT + ph*(1-nines/ymax)
	}

	fmt.Fprintf(b, `<text x="%d" y="%.1f" font-size="13" font-weight="bold">%s</text>`+"\n", padL, y0+18, html.EscapeString(name(d.Service, d.Operation)))
	fmt.Fprintf(b, `<text x="%d" y="%.1f" fill="%s">&#9473; %s (n=%.0f)</text>`+"\n", padL, y0+34, colorBase, html.EscapeString("baseline "+r.Baseline), d.BaselineN)
	fmt.Fprintf(b, `<text x="%d" y="%.1f" fill="%s">&#9473; %s (n=%.0f)</text>`+"\n", padL+300, y0+34, colorCand, html.EscapeString("candidate "+r.Candidate), d.CandidateN)
	// axes and grid
	fmt.Fprintf(b, `<rect x="%d" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#999"/>`+"\n", padL, y0+padT, pw, ph)
	for _, y := range []float64{0, 0.5, 0.9, 0.99, 0.999, 0.9999} {
		if -math.Log10(1-y) > ymax+1e-9 {
			continue
		}
		label := "0"
		if y > 0 {
			label = gate.QuantileName(y)
		}
		fmt.Fprintf(b, `<line x1="%d" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#eee"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n",
			padL, padL+pw, Y(y), Y(y), padL-4, Y(y)+4, label)
	}
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for _, m := range []float64{1, 2, 5} {
			x := m * math.Pow(10, e)
			if x < lo || x > hi {
				continue
			}
			fmt.Fprintf(b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#eee"/><text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n",
				X(x), X(x), Y(0), Y(1), X(x), Y(0)+14, Dur(x))
		}
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">duration (log scale); vertical: share of spans faster, in nines</text>`+"\n", padL+pw/2, Y(0)+30)
	for i, c := range curves {
		if len(c.x) == 0 {
			continue
		}
		col := colorBase
		if i == 1 {
			col = colorCand
		}
		var pts []string
		for k := range c.x {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", X(c.x[k]), Y(c.y[k])))
		}
		fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="1.6" points="%s"/>`+"\n", col, strings.Join(pts, " "))
	}
	// quantile marks
	qs := make([]float64, 0, len(d.BaseQuant))
	for q := range d.BaseQuant {
		qs = append(qs, q)
	}
	sort.Float64s(qs)
	for _, q := range qs {
		for i, v := range []float64{d.BaseQuant[q], d.CandQuant[q]} {
			if math.IsNaN(v) || v <= 0 {
				continue
			}
			col := colorBase
			if i == 1 {
				col = colorCand
			}
			fmt.Fprintf(b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="3,3"/>`+"\n", X(v), X(v), Y(0), Y(q), col)
			fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s %s = %s</title></circle>`+"\n", X(v), Y(q), col, gate.QuantileName(q), []string{"baseline", "candidate"}[i], Dur(v))
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f" fill="%s" font-size="10" stroke="white" stroke-width="3" paint-order="stroke">%s</text>`+"\n", X(v)+4, Y(q)-4-10*float64(1-i), col, Dur(v))
		}
	}
}
