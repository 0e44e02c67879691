package gate

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/releasegate/source"
	"github.com/opsight/opsight/releasegate/stats"
)

// pow2Hist buckets durations the way Tempo does (powers of two of ns).
func pow2Hist(x []float64) *stats.Histogram {
	h := &stats.Histogram{Exponential: true}
	for _, v := range x {
		up := 1e-9
		for up < v {
			up *= 2
		}
		h.Buckets = append(h.Buckets, stats.Bucket{Lower: up / 2, Upper: up, Count: 1})
	}
	h.Normalize()
	return h
}

func histOp(b, c []float64) source.Op {
	return source.Op{Service: "svc", Name: "Reconcile",
		Baseline:  source.Side{Hist: pow2Hist(b), Count: float64(len(b))},
		Candidate: source.Side{Hist: pow2Hist(c), Count: float64(len(c))}}
}

func TestHistogramVerdicts(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	base := sample(r, 3000, lognormal(recSigma))
	tests := []struct {
		name    string
		cand    []float64
		verdict string
		reason  string
	}{
		// +59% at p99 inside one factor-2 bucket: the histogram cannot tell.
		{"shift finer than the buckets", sample(r, 3000, scaled(1.1)), conventions.VerdictInconclusive, "coarser than the threshold"},
		// x5 moves p99 several buckets up: unambiguous despite the resolution.
		{"shift across bucket bounds", sample(r, 3000, scaled(5)), conventions.VerdictFail, "crosses bucket bounds"},
		{"shift far down", sample(r, 3000, scaled(0.2)), conventions.VerdictPass, "wholly below"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := Evaluate(&source.Result{Ops: []source.Op{histOp(base, tc.cand)}}, "a", "b", Config{})
			c := rep.Comparisons[2]
			if c.Verdict != tc.verdict || !strings.Contains(c.Reason, tc.reason) || !c.Histogram || c.Resolution != 2 {
				t.Errorf("verdict %s resolution %v reason %q; want %s with %q", c.Verdict, c.Resolution, c.Reason, tc.verdict, tc.reason)
			}
		})
	}
}

func TestManyOperationsHolm(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 9))
	var ops []source.Op
	for i := 0; i < 10; i++ {
		cand := lognormal(recSigma)
		if i == 3 {
			cand = scaled(2)
		}
		op := rawOp(sample(r, 2000, lognormal(recSigma)), sample(r, 2000, cand))
		op.Name = string(rune('a' + i))
		ops = append(ops, op)
	}
	rep := Evaluate(&source.Result{Ops: ops}, "a", "b", Config{})
	fails := 0
	for _, c := range rep.Comparisons {
		if c.Verdict == conventions.VerdictFail {
			fails++
			if c.Operation != "d" {
				t.Errorf("false fail on %s", c.Operation)
			}
			// The first Holm step reads its interval at alpha/K.
			if c.Level != 0.05/10 {
				t.Errorf("fail read at level %v, want %v", c.Level, 0.05/10)
			}
		}
	}
	if fails != 1 || rep.Verdict != conventions.VerdictFail || rep.ExitCode != conventions.ExitFail {
		t.Errorf("%d fails, verdict %s exit %d", fails, rep.Verdict, rep.ExitCode)
	}
	if !strings.Contains(strings.Join(rep.Notes, " "), "10 gating tests") {
		t.Errorf("notes %q", rep.Notes)
	}
}

func TestErrorsThroughputMix(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 11))
	a := rawOp(sample(r, 2000, lognormal(recSigma)), sample(r, 2000, lognormal(recSigma)))
	a.Baseline.ErrorsKnown, a.Candidate.ErrorsKnown = true, true
	a.Baseline.Errors, a.Candidate.Errors = 40, 120 // 2% -> 6%
	b := rawOp(sample(r, 2000, lognormal(recSigma)), sample(r, 600, lognormal(recSigma)))
	b.Name = "GET"
	start := time.Unix(1_800_000_000, 0)
	res := &source.Result{Ops: []source.Op{b, a},
		BaselineWindow:  source.Window{Start: start, End: start.Add(100 * time.Second)},
		CandidateWindow: source.Window{Start: start, End: start.Add(300 * time.Second)}}

	rep := Evaluate(res, "a", "b", Config{})
	w := strings.Join(rep.Warnings, "\n")
	for _, want := range []string{"candidate fails more often", "throughput differs", "traffic mix differs"} {
		if !strings.Contains(w, want) {
			t.Errorf("no %q warning in:\n%s", want, w)
		}
	}
	if rep.Operations[1].ErrorVerdict != VerdictContext || rep.Operations[1].ErrorGating {
		t.Errorf("errors must not gate by default: %+v", rep.Operations[1])
	}
	if rep.Operations[1].RateBaseline != 20 || rep.Operations[1].RateCandidate != 2000.0/300 {
		t.Errorf("rates %v %v", rep.Operations[1].RateBaseline, rep.Operations[1].RateCandidate)
	}
	rep = Evaluate(res, "a", "b", Config{GateErrors: true})
	if rep.Operations[1].ErrorVerdict != conventions.VerdictFail || rep.Verdict != conventions.VerdictFail {
		t.Errorf("--gate-errors: %s / %s: %s", rep.Operations[1].ErrorVerdict, rep.Verdict, rep.Operations[1].ErrorReason)
	}
	// 2% -> 6% is within an allowed rise of 10 pp, and clearly beyond 1 pp.
	for _, c := range []struct {
		delta float64
		want  string
	}{{0.10, conventions.VerdictPass}, {0.01, conventions.VerdictFail}} {
		rep = Evaluate(res, "a", "b", Config{GateErrors: true, ErrorThreshold: c.delta})
		if got := rep.Operations[1].ErrorVerdict; got != c.want {
			t.Errorf("--error-threshold %v: %s (%s)", c.delta, got, rep.Operations[1].ErrorReason)
		}
	}
}

func TestQuantileName(t *testing.T) {
	for q, want := range map[float64]string{0.5: "p50", 0.99: "p99", 0.999: "p99.9", 0.9999: "p99.99"} {
		if got := QuantileName(q); got != want {
			t.Errorf("%v: %s", q, got)
		}
	}
}

func TestContextRowsNeverPass(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 13))
	a := rawOp(sample(r, 2000, lognormal(recSigma)), sample(r, 2000, lognormal(recSigma)))
	a.Baseline.ErrorsKnown, a.Candidate.ErrorsKnown = true, true
	b := rawOp(sample(r, 2000, lognormal(recSigma)), nil) // no candidate spans
	b.Name = "GET"
	rep := Evaluate(&source.Result{Ops: []source.Op{a, b}}, "a", "b", Config{})
	for _, c := range rep.Comparisons {
		switch {
		case !c.Gating && c.Verdict != VerdictContext:
			t.Errorf("%s %s: non-gating row has verdict %q, want %q", c.Operation, QuantileName(c.Quantile), c.Verdict, VerdictContext)
		case c.Gating && c.Verdict == VerdictContext:
			t.Errorf("%s %s: gating row labelled context", c.Operation, QuantileName(c.Quantile))
		}
	}
	for _, s := range rep.Operations {
		if s.ErrorVerdict != VerdictContext {
			t.Errorf("%s: error share without --gate-errors has verdict %q (%s)", s.Operation, s.ErrorVerdict, s.ErrorReason)
		}
	}
	// The overall verdict is never context: here the GET p99 cannot be told.
	if rep.Verdict != conventions.VerdictInconclusive {
		t.Errorf("overall %s", rep.Verdict)
	}
	rep = Evaluate(&source.Result{Ops: []source.Op{b}}, "a", "b", Config{GateErrors: true})
	if rep.Operations[0].ErrorVerdict != conventions.VerdictInconclusive {
		t.Errorf("gating errors, unknown counts: %s", rep.Operations[0].ErrorVerdict)
	}
}
