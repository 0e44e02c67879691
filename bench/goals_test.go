package main

import (
	"testing"
	"time"
)

func TestGoals(t *testing.T) {
	run := func(cpu time.Duration) result { return result{lines: 1_000_000, cpu: cpu} }
	variants := []variant{
		{name: "opsight", on: true, results: []result{run(5 * time.Second)}},
		{name: "opsight-env", on: true, results: []result{run(8 * time.Second)}},
		{name: "contrib-norisk", on: true, results: []result{run(24 * time.Second)}},
	}
	steady := steadyResult{rssMax: 65 << 20, linesIn: 10, linesOut: 10, spansIn: 3, spansOut: 2}
	o := options{steadyLines: 10_000, steadySpans: 1_000, steady: 5 * time.Minute}
	got := map[string]goal{}
	for _, g := range append(throughputGoals(variants), steadyGoals(o, steady)...) {
		got[g.what] = g
	}
	for _, c := range []struct {
		what, figure string
		met          bool
	}{
		{"≥ 150k lines per CPU-second (opsight, --config)", "200k", true},
		{"as deployed ≤ 1.5× the hot path's CPU per line", "1.60×", false},
		{"≥ 2× contrib (without risk matching) in lines per CPU-second", "4.8×", true},
		{"every line and span delivered", "10/10 lines, 2/3 spans", false},
		{"RSS ≤ 64 MiB at 10k lines/s + 1k spans/s, uncapped (max)", "65.0 MiB", false},
	} {
		g, ok := got[c.what]
		if !ok {
			t.Errorf("goal %q not reported", c.what)
			continue
		}
		if g.met != c.met || g.short || g.figure != c.figure {
			t.Errorf("%s: met %v short %v figure %q, want met %v figure %q", c.what, g.met, g.short, g.figure, c.met, c.figure)
		}
	}
	if len(got) != 5 {
		t.Errorf("%d goals reported, want 5", len(got))
	}

	// Too short a run, another load, a memory limit: no RSS verdict.
	o.steady = 30 * time.Second
	if gs := steadyGoals(o, steady); len(gs) != 2 || !gs[1].short {
		t.Errorf("30 s run: %+v, want the RSS goal undecided", gs)
	}
	o.steady, o.steadyLines = 5*time.Minute, 20_000
	if gs := steadyGoals(o, steady); len(gs) != 1 {
		t.Errorf("20k lines/s: %+v, want no RSS goal", gs)
	}
	if gs := throughputGoals(variants[1:]); gs != nil {
		t.Errorf("without the hot path: %+v", gs)
	}
}
