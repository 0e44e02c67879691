package scenario

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/opsight/opsight/triage/internal/analysis"
	"github.com/opsight/opsight/triage/internal/data"
	"github.com/opsight/opsight/triage/internal/render"
)

// triage runs the scenario and the triage over its output, revision mode.
func triage(t *testing.T, s Scenario) *analysis.Report {
	t.Helper()
	res, err := Run(context.Background(), s, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tf, err := data.Glob("--traces", []string{res.TracesGlob})
	if err != nil {
		t.Fatal(err)
	}
	lf, err := data.Glob("--logs", []string{res.LogsGlob})
	if err != nil {
		t.Fatal(err)
	}
	var in analysis.Input
	if in.Spans, err = data.ReadSpans(tf); err != nil {
		t.Fatal(err)
	}
	if in.Logs, err = data.ReadLogs(lf); err != nil {
		t.Fatal(err)
	}
	if int64(len(in.Spans)) != res.Spans {
		t.Fatalf("read %d spans, the operators sent %d", len(in.Spans), res.Spans)
	}
	r, err := analysis.Run(in, analysis.Options{Service: Service, Namespace: Namespace, BaselineRevision: Baseline, CandidateRevision: Candidate})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := render.TextReport(&b, r); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d spans, %d log lines\n%s", s.Name, len(in.Spans), len(in.Logs), b.String())
	return r
}

func split(f analysis.Finding, dim string) analysis.Split {
	for _, s := range f.Where {
		if s.Dimension == dim {
			return s
		}
	}
	return analysis.Split{}
}

func movedValues(s analysis.Split) []string {
	var out []string
	for _, v := range s.Values {
		if v.Moved {
			out = append(out, v.Value)
		}
	}
	return out
}

// TestScenarios runs each scenario with a known cause through the real
// sidecar components and checks the report names that cause as its only
// finding — and, for A/A, that it names nothing.
func TestScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("runs simulated operators and the sidecar's collector for a few seconds each")
	}
	tests := []struct {
		name  string
		s     Scenario
		check func(t *testing.T, r *analysis.Report)
	}{
		{"zone-b API calls slow for the candidate", ZoneSlowAPI(), func(t *testing.T, r *analysis.Report) {
			if len(r.Findings) != 1 {
				t.Fatalf("%d findings, want exactly 1 (the slow GET under Reconcile): %+v", len(r.Findings), headlines(r))
			}
			f := r.Findings[0]
			if f.Moves[0].Direction != "up" || f.Moves[0].Measure == "errors" {
				t.Errorf("top move %+v, want a latency rise", f.Moves[0])
			}
			// The injected span: the finding is GET itself or its parent
			// with GET taking most of the added time.
			if f.Span != "GET" && (f.Time == nil || f.Time.Parts[0].Span != "GET" || f.Time.Parts[0].Self || f.Time.Parts[0].Share < 0.5) {
				t.Errorf("finding %s, cause %q: want GET (client) as the span or the main part of the added time; time %+v", f.Span, f.Cause, f.Time)
			}
			if f.Cause != "GET (client)" {
				t.Errorf("cause %q, want GET (client)", f.Cause)
			}
			if got := movedValues(split(f, "zone")); len(got) != 1 || got[0] != "zone-b" {
				t.Errorf("zones moved %v, want [zone-b]; where: %s", got, f.WhereText)
			}
			if got := movedValues(split(f, "revision")); len(got) != 1 || got[0] != Candidate {
				t.Errorf("revisions moved %v, want [%s]", got, Candidate)
			}
			for _, v := range split(f, "pod").Values {
				if v.Moved != strings.HasPrefix(v.Value, "etcd-operator-cand-b") {
					t.Errorf("pod %s moved=%v (zone %s), want only the zone-b candidate pods", v.Value, v.Moved, v.Zone)
				}
			}
			if !strings.Contains(f.WhereText, "zone zone-b only") {
				t.Errorf("where %q does not say zone-b only", f.WhereText)
			}
			for _, p := range f.Logs.Patterns {
				if p.Rose {
					t.Errorf("risk pattern %s rose in the slow traces' logs, but none was injected", p.Pattern)
				}
			}
			requireLinks(t, f)
		}},
		{"etcd timeout storm in the candidate", EtcdTimeoutStorm(), func(t *testing.T, r *analysis.Report) {
			if len(r.Findings) != 1 {
				t.Fatalf("%d findings, want exactly 1 (Reconcile errors): %+v", len(r.Findings), headlines(r))
			}
			f := r.Findings[0]
			if f.Span != "Reconcile" || f.Moves[0].Measure != "errors" || f.Moves[0].Direction != "up" {
				t.Errorf("finding %s %s %s, want Reconcile errors up", f.Span, f.Moves[0].Measure, f.Moves[0].Direction)
			}
			if f.Cause != "risk pattern etcd_timeout" {
				t.Errorf("cause %q, want risk pattern etcd_timeout", f.Cause)
			}
			if len(f.Logs.Patterns) == 0 || f.Logs.Patterns[0].Pattern != "etcd_timeout" || !f.Logs.Patterns[0].Rose {
				t.Errorf("top pattern of the failing traces %+v, want etcd_timeout, risen", f.Logs.Patterns)
			}
			if got := movedValues(split(f, "zone")); len(got) != 2 {
				t.Errorf("zones moved %v, want both: the storm is in every zone", got)
			}
			if len(r.Logs.Patterns) == 0 || r.Logs.Patterns[0].Pattern != "etcd_timeout" || !r.Logs.Patterns[0].Rose {
				t.Errorf("window-level top pattern %+v, want etcd_timeout, risen", r.Logs.Patterns)
			}
			if f.Logs.Lines == 0 || len(f.Logs.Sample) == 0 || !strings.Contains(f.Logs.Sample[0], "etcdserver: request timed out") {
				t.Errorf("sample lines %q: want the etcd timeout line first", f.Logs.Sample)
			}
			requireLinks(t, f)
		}},
		{"one candidate pod CPU-throttled", PodCPUThrottle(), func(t *testing.T, r *analysis.Report) {
			if len(r.Findings) != 1 {
				t.Fatalf("%d findings, want exactly 1 (Reconcile, the throttled pod): %+v", len(r.Findings), headlines(r))
			}
			f := r.Findings[0]
			if f.Span != "Reconcile" || f.Moves[0].Direction != "up" || f.Moves[0].Measure == "errors" {
				t.Errorf("finding %s %s %s, want a Reconcile latency rise", f.Span, f.Moves[0].Measure, f.Moves[0].Direction)
			}
			pods := split(f, "pod")
			if got := movedValues(pods); len(got) != 1 || got[0] != "etcd-operator-cand-a2" {
				t.Errorf("pods moved %v, want only etcd-operator-cand-a2; where: %s", got, f.WhereText)
			}
			if len(pods.Values) != 3 {
				t.Errorf("pod split over %d pods, want the 3 candidate pods", len(pods.Values))
			}
			if !strings.Contains(f.WhereText, "one pod: etcd-operator-cand-a2") {
				t.Errorf("where %q does not name the one pod", f.WhereText)
			}
			if got := movedValues(split(f, "zone")); len(got) > 1 || len(got) == 1 && got[0] != "zone-a" {
				t.Errorf("zones moved %v, want at most the throttled pod's zone-a", got)
			}
			// Slow in everything: the pod's own time and its calls, so no
			// one child span takes the added time.
			if f.Time == nil || len(f.Time.Parts) == 0 || !f.Time.Parts[0].Self {
				t.Errorf("time %+v: want the reconcile's own time first (a throttle slows everything, not one call)", f.Time)
			}
			for _, p := range f.Logs.Patterns {
				if p.Rose {
					t.Errorf("risk pattern %s rose, but none was injected", p.Pattern)
				}
			}
			requireLinks(t, f)
		}},
		{"A/A", AA(), func(t *testing.T, r *analysis.Report) {
			if len(r.Findings) != 0 || r.ExitCode != analysis.ExitNothingMoved {
				t.Errorf("A/A: %d findings, exit %d, want none and 0: %v", len(r.Findings), r.ExitCode, headlines(r))
			}
			tested := 0
			for _, o := range r.Operations {
				for _, e := range o.Latency {
					if e.Tested {
						tested++
					}
				}
			}
			if tested == 0 {
				t.Error("A/A: no latency comparison could be made at all: the scenario is too small to prove anything")
			}
			for _, p := range r.Logs.Patterns {
				if p.Rose {
					t.Errorf("A/A: risk pattern %s rose", p.Pattern)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, triage(t, tt.s))
		})
	}
}

func headlines(r *analysis.Report) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, f.Headline)
	}
	return out
}

func requireLinks(t *testing.T, f analysis.Finding) {
	t.Helper()
	kinds := map[string]bool{}
	for _, l := range f.Links {
		kinds[l.Kind] = true
		if !strings.HasPrefix(l.URL, "http://localhost:3000/explore?") {
			t.Errorf("link %q: not a Grafana Explore URL", l.URL)
		}
	}
	for _, k := range []string{"metrics", "traces", "trace", "logs"} {
		if !kinds[k] {
			t.Errorf("no %s link among %+v", k, f.Links)
		}
	}
	if len(f.Traces) == 0 {
		t.Error("no trace ids")
	}
}
