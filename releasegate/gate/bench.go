package gate

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/opsight/opsight/releasegate/source"
)

// BenchData generates n span durations split evenly over two revisions and
// ops operations (lognormal, 50 ms median; the candidate's tail 20% slower),
// unsorted, as a source would hand them over before sorting.
func BenchData(n, ops int, seed uint64) *source.Result {
	r := rand.New(rand.NewPCG(seed, 0xbe7c))
	res := &source.Result{Source: "bench"}
	per := n / (2 * ops)
	for o := 0; o < ops; o++ {
		op := source.Op{Service: "bench-operator", Name: "op-" + string(rune('a'+o%26))}
		for side := 0; side < 2; side++ {
			d := make([]float64, per)
			for i := range d {
				x := 0.05 * math.Exp(0.5*r.NormFloat64())
				if side == 1 && x > 0.1 {
					x *= 1.2
				}
				d[i] = x
			}
			s := source.Side{Durations: d, Count: float64(per), ErrorsKnown: true, Errors: float64(per / 50)}
			if side == 0 {
				op.Baseline = s
			} else {
				op.Candidate = s
			}
		}
		res.Ops = append(res.Ops, op)
	}
	start := time.Unix(1_800_000_000, 0)
	res.BaselineWindow = source.Window{Start: start, End: start.Add(10 * time.Minute)}
	res.CandidateWindow = source.Window{Start: start.Add(time.Hour), End: start.Add(70 * time.Minute)}
	return res
}

// Compare is everything the gate does after the source has read the spans:
// sorting the durations and evaluating every comparison. It is what the
// 10M-span budget (under 10 s) applies to.
func Compare(res *source.Result, cfg Config) *Report {
	// Sorting dominates; the sides are independent, so use every core.
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i := range res.Ops {
		for _, s := range []*source.Side{&res.Ops[i].Baseline, &res.Ops[i].Candidate} {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				if !slices.IsSorted(s.Durations) {
					slices.Sort(s.Durations)
				}
			}()
		}
	}
	wg.Wait()
	return Evaluate(res, "baseline", "candidate", cfg)
}
