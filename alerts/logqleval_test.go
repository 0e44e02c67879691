package alerts

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// A small evaluator of parsed LogQL metric queries over in-memory entries,
// for testing what the generated Loki rules would return at one instant:
// range aggregations (count_over_time, rate, bytes_over_time, bytes_rate)
// over the window (at-offset-range, at-offset], vector aggregations,
// binary operators with one-to-one matching on identical label sets (no
// on/ignoring, as the parser), Prometheus' semantics for filtering
// comparisons, bool, and/or/unless. Series labels are the stream labels.

type testEntry struct {
	ts     time.Time
	line   string
	stream map[string]string
	meta   map[string]string
}

type evalSample struct {
	labels map[string]string
	v      float64
}

// evalValue is a vector (by label-set key) or, with scalar set, a number.
type evalValue struct {
	scalar bool
	s      float64
	vec    map[string]evalSample
}

func labelKey(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q,", k, l[k])
	}
	return b.String()
}

var durPartRe = regexp.MustCompile(`([0-9]+)(ms|s|m|h|d|w|y)`)

func parseLogQLDuration(s string) time.Duration {
	unit := map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour,
		"d": 24 * time.Hour, "w": 7 * 24 * time.Hour, "y": 365 * 24 * time.Hour}
	var d time.Duration
	for _, m := range durPartRe.FindAllStringSubmatch(s, -1) {
		n, _ := strconv.Atoi(m[1])
		d += time.Duration(n) * unit[m[2]]
	}
	return d
}

func evalLogQL(q *LogQuery, at time.Time, entries []testEntry) (evalValue, error) {
	switch {
	case q.IsScalar:
		return evalValue{scalar: true, s: q.Scalar}, nil
	case q.Op != "":
		l, err := evalLogQL(q.LHS, at, entries)
		if err != nil {
			return l, err
		}
		r, err := evalLogQL(q.RHS, at, entries)
		if err != nil {
			return r, err
		}
		return evalBinary(q.Op, q.Bool, l, r)
	case q.RangeOp == "":
		return evalValue{}, fmt.Errorf("a log query has no value")
	}
	rng, off := parseLogQLDuration(q.Range), parseLogQLDuration(q.Offset)
	end := at.Add(-off)
	start := end.Add(-rng)
	vec := map[string]evalSample{}
	for _, e := range entries {
		if !e.ts.After(start) || e.ts.After(end) || !q.MatchEntry(e.line, e.stream, e.meta) {
			continue
		}
		k := labelKey(e.stream)
		s, ok := vec[k]
		if !ok {
			s.labels = e.stream
		}
		switch q.RangeOp {
		case "count_over_time", "rate":
			s.v++
		case "bytes_over_time", "bytes_rate":
			s.v += float64(len(e.line))
		}
		vec[k] = s
	}
	if q.RangeOp == "rate" || q.RangeOp == "bytes_rate" {
		for k, s := range vec {
			s.v /= rng.Seconds()
			vec[k] = s
		}
	}
	for i := len(q.Aggs) - 1; i >= 0; i-- {
		vec = evalAgg(q.Aggs[i], q.AggBy[i], vec)
	}
	return evalValue{vec: vec}, nil
}

func evalAgg(op string, g LogGrouping, in map[string]evalSample) map[string]evalSample {
	type acc struct {
		labels map[string]string
		sum    float64
		n      int
		min    float64
		max    float64
	}
	groups := map[string]*acc{}
	for _, s := range in {
		l := map[string]string{}
		named := map[string]bool{}
		for _, n := range g.Labels {
			named[n] = true
		}
		for k, v := range s.labels {
			if named[k] != g.Without {
				l[k] = v
			}
		}
		k := labelKey(l)
		a := groups[k]
		if a == nil {
			a = &acc{labels: l, min: math.Inf(1), max: math.Inf(-1)}
			groups[k] = a
		}
		a.sum += s.v
		a.n++
		a.min = math.Min(a.min, s.v)
		a.max = math.Max(a.max, s.v)
	}
	out := map[string]evalSample{}
	for k, a := range groups {
		v := a.sum
		switch op {
		case "avg":
			v = a.sum / float64(a.n)
		case "count":
			v = float64(a.n)
		case "min":
			v = a.min
		case "max":
			v = a.max
		}
		out[k] = evalSample{labels: a.labels, v: v}
	}
	return out
}

func arith(op string, a, b float64) (v float64, keep bool, cmp bool) {
	switch op {
	case "+":
		return a + b, true, false
	case "-":
		return a - b, true, false
	case "*":
		return a * b, true, false
	case "/":
		return a / b, true, false
	case "%":
		return math.Mod(a, b), true, false
	case "^":
		return math.Pow(a, b), true, false
	case "==":
		return a, a == b, true
	case "!=":
		return a, a != b, true
	case ">":
		return a, a > b, true
	case "<":
		return a, a < b, true
	case ">=":
		return a, a >= b, true
	case "<=":
		return a, a <= b, true
	}
	panic("operator " + op)
}

func evalBinary(op string, boolMod bool, l, r evalValue) (evalValue, error) {
	switch op {
	case "and", "or", "unless":
		out := map[string]evalSample{}
		for k, s := range l.vec {
			if _, in := r.vec[k]; in == (op != "unless") || op == "or" {
				out[k] = s
			}
		}
		if op == "or" {
			for k, s := range r.vec {
				if _, in := l.vec[k]; !in {
					out[k] = s
				}
			}
		}
		return evalValue{vec: out}, nil
	}
	one := func(a, b, keepVal float64) (float64, bool) {
		v, keep, cmp := arith(op, a, b)
		switch {
		case cmp && boolMod:
			if keep {
				return 1, true
			}
			return 0, true
		case cmp:
			return keepVal, keep
		}
		return v, true
	}
	switch {
	case l.scalar && r.scalar:
		v, _ := one(l.s, r.s, l.s)
		return evalValue{scalar: true, s: v}, nil
	case r.scalar:
		out := map[string]evalSample{}
		for k, s := range l.vec {
			if v, ok := one(s.v, r.s, s.v); ok {
				out[k] = evalSample{s.labels, v}
			}
		}
		return evalValue{vec: out}, nil
	case l.scalar:
		out := map[string]evalSample{}
		for k, s := range r.vec {
			if v, ok := one(l.s, s.v, s.v); ok {
				out[k] = evalSample{s.labels, v}
			}
		}
		return evalValue{vec: out}, nil
	}
	out := map[string]evalSample{}
	for k, s := range l.vec {
		o, in := r.vec[k]
		if !in {
			continue
		}
		if v, ok := one(s.v, o.v, s.v); ok {
			out[k] = evalSample{s.labels, v}
		}
	}
	return evalValue{vec: out}, nil
}
