package main

import (
	"fmt"
	"time"
)

// goal is one of the README's performance goals, checked against this run's
// figures. The bench only reports: figures from a shared machine vary, and a
// missed goal is for a person to look into, not for CI to retry.
type goal struct {
	what   string
	met    bool
	short  bool // the run was too short to decide it
	figure string
}

func printGoals(gs []goal) {
	if len(gs) == 0 {
		return
	}
	fmt.Println("\ngoals (README, Performance):")
	for _, g := range gs {
		verdict := "met"
		switch {
		case g.short:
			verdict = "n/a"
		case !g.met:
			verdict = "MISSED"
		}
		fmt.Printf("  %-62s %-6s %s\n", g.what, verdict, g.figure)
	}
}

// throughputGoals: those the backlog runs decide, for the variants that ran.
func throughputGoals(variants []variant) []goal {
	cpuPerM := map[string]float64{}
	for _, v := range variants {
		if v.on && len(v.results) > 0 {
			cpuPerM[v.name], _ = medianSpread(v.results, result.cpuPerM)
		}
	}
	hot, ok := cpuPerM["opsight"]
	if !ok {
		return nil
	}
	gs := []goal{{
		what:   "≥ 150k lines per CPU-second (opsight, --config)",
		met:    1e6/hot >= 150e3,
		figure: fmt.Sprintf("%.0fk", 1e3/hot),
	}}
	if dep, ok := cpuPerM["opsight-env"]; ok {
		gs = append(gs, goal{
			what:   "as deployed ≤ 1.5× the hot path's CPU per line",
			met:    dep/hot <= 1.5,
			figure: fmt.Sprintf("%.2f×", dep/hot),
		})
	}
	if c, ok := cpuPerM["contrib-norisk"]; ok {
		gs = append(gs, goal{
			what:   "≥ 2× contrib (without risk matching) in lines per CPU-second",
			met:    c/hot >= 2,
			figure: fmt.Sprintf("%.1f×", c/hot),
		})
	}
	return gs
}

// steadyState is how long the steady load runs before the sidecar's
// memory stops growing.
const steadyState = 2 * time.Minute

// steadyGoals: nothing lost, and the RSS goal at the load it is set for.
func steadyGoals(o options, s steadyResult) []goal {
	gs := []goal{{
		what:   "every line and span delivered",
		met:    s.linesOut == s.linesIn && s.spansOut == s.spansIn,
		figure: fmt.Sprintf("%d/%d lines, %d/%d spans", s.linesOut, s.linesIn, s.spansOut, s.spansIn),
	}}
	if o.steadyLines == 10_000 && o.steadySpans == 1_000 && o.memLimitMiB == 0 {
		g := goal{
			what:   "RSS ≤ 64 MiB at 10k lines/s + 1k spans/s, uncapped (max)",
			met:    s.rssMax <= 64<<20,
			figure: fmt.Sprintf("%.1f MiB", mib(s.rssMax)),
		}
		if o.steady < steadyState {
			// The span index fills for its first 100 s at 1,000 keyed
			// spans/s (docs/benchmarks.md, "Steady RSS").
			g.short = true
			g.figure += fmt.Sprintf(" after %v: run -steady %v or longer", o.steady, steadyState)
		}
		gs = append(gs, g)
	}
	return gs
}
