package alerts

import (
	"math"
	"strings"
	"testing"
	"time"

	c "github.com/opsight/opsight/internal/conventions"
)

// volPhase is a constant log rate from..to (relative to the evaluation
// time, so negative) for one service.
type volPhase struct {
	from, to time.Duration
	perSec   float64
}

func volEntries(t0 time.Time, svc string, phases ...volPhase) []testEntry {
	stream := map[string]string{c.LabelCluster: "c1", c.LabelNamespace: "ops", c.LabelServiceName: svc, c.LabelPod: svc + "-0"}
	var out []testEntry
	for _, ph := range phases {
		step := time.Duration(float64(time.Second) / ph.perSec)
		for ts := t0.Add(ph.from); ts.Before(t0.Add(ph.to)); ts = ts.Add(step) {
			out = append(out, testEntry{ts: ts, line: `{"level":"info","msg":"Reconciling"}`, stream: stream})
		}
	}
	return out
}

// lokiAlertFires evaluates the alert as the Loki ruler would with its group
// interval and `for`: true at every evaluation of the last `for`.
func lokiAlertFires(t *testing.T, q *LogQuery, t0 time.Time, entries []testEntry, svc string) (bool, float64) {
	t.Helper()
	interval, hold := parseLogQLDuration(lokiVolumeAlertInterval), parseLogQLDuration(LogVolumeFor)
	var last float64
	for at := t0.Add(-hold); !at.After(t0); at = at.Add(interval) {
		v, err := evalLogQL(q, at, entries)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, s := range v.vec {
			if s.labels[c.LabelServiceName] == svc {
				found, last = true, s.v
			}
		}
		if !found {
			return false, 0
		}
	}
	return true, last
}

// TestLokiLogVolumeSpike evaluates the generated Loki alert on the cases
// that fool naive volume rules (the Prometheus alert's promtool cases in
// tests/operator-log-volume.yaml), with the ruler's interval and `for`.
func TestLokiLogVolumeSpike(t *testing.T) {
	q, err := ParseLogQL(LokiLogVolumeSpikeExpr())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 1, 14, 0, 0, 0, time.UTC)
	const h, m = time.Hour, time.Minute
	yesterday := func(perSec float64) volPhase { return volPhase{-25 * h, -23 * h, perSec} }
	today := func(perSec float64) volPhase { return volPhase{-30 * m, 0, perSec} }
	for _, tc := range []struct {
		name   string
		phases []volPhase
		fires  bool
		ratio  float64 // when it fires
	}{
		{"10x spike", []volPhase{yesterday(2), today(20)}, true, 10},
		{"steady chatty service", []volPhase{yesterday(20), today(20)}, false, 0},
		// Daily seasonality: a nightly job at this hour yesterday too.
		{"daily job at the same hour", []volPhase{{-25 * h, -24*h - 15*m, 2}, {-24*h - 15*m, -23 * h, 20}, {-30 * m, -15 * m, 2}, {-15 * m, 0, 20}}, false, 0},
		{"quiet service 5x, below the floor", []volPhase{yesterday(0.1), today(0.5)}, false, 0},
		{"new service, no yesterday", []volPhase{today(20)}, false, 0},
		{"10x drop", []volPhase{yesterday(20), today(2)}, false, 0},
		{"logging stopped", []volPhase{yesterday(20)}, false, 0},
		// A restart's start-up burst: 10x for 5 minutes, shorter than `for`.
		{"restart burst", []volPhase{yesterday(2), {-30 * m, -5 * m, 2}, {-5 * m, 0, 20}}, false, 0},
		{"spike just shorter than for", []volPhase{yesterday(2), {-30 * m, -16 * m, 2}, {-16 * m, 0, 20}}, false, 0},
		{"spike just longer than for", []volPhase{yesterday(2), {-30 * m, -21 * m, 2}, {-21 * m, 0, 20}}, true, 10},
		// No one-day mean here (docs/runbooks/operator-log-volume.md): a
		// ramp to 5x within a day fires, where the Prometheus alert does not.
		{"slow ramp to 5x within a day (no 1d mean in Loki)", []volPhase{yesterday(2), today(10)}, true, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var entries []testEntry
			entries = append(entries, volEntries(t0, "widget-operator", tc.phases...)...)
			// A steady neighbour in the same namespace is never part of it.
			entries = append(entries, volEntries(t0, "other-operator", yesterday(5), today(5))...)
			got, v := lokiAlertFires(t, q, t0, entries, "widget-operator")
			if got != tc.fires {
				t.Fatalf("fires = %v, want %v", got, tc.fires)
			}
			if got && math.Abs(v-tc.ratio)/tc.ratio > 0.02 {
				t.Errorf("value %.3f, want the ratio %.1f", v, tc.ratio)
			}
			if other, _ := lokiAlertFires(t, q, t0, entries, "other-operator"); other {
				t.Error("the steady neighbour fired")
			}
		})
	}
}

// The Loki alert mirrors the Prometheus one's thresholds, labels and `for`.
func TestLokiLogVolumeSpikeMatchesPrometheus(t *testing.T) {
	var prom, loki Rule
	var lokiGroup Group
	for _, f := range Files() {
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				switch {
				case r.Alert == "OperatorLogVolumeSpike" && f.Backend == Prometheus:
					prom = r
				case r.Alert == LokiLogVolumeSpikeAlert && f.Backend == Loki:
					loki, lokiGroup = r, g
				}
			}
		}
	}
	if prom.Alert == "" || loki.Alert == "" {
		t.Fatalf("alerts: prometheus %q, loki %q", prom.Alert, loki.Alert)
	}
	if prom.For != loki.For || prom.Labels["severity"] != loki.Labels["severity"] || lokiGroup.Interval != lokiVolumeAlertInterval {
		t.Errorf("prometheus for %s severity %s; loki for %s severity %s interval %s", prom.For, prom.Labels["severity"], loki.For, loki.Labels["severity"], lokiGroup.Interval)
	}
	q, err := ParseLogQL(loki.Expr)
	if err != nil {
		t.Fatal(err)
	}
	// ((now / yesterday) > factor) and (now > floor), grouped like the
	// Prometheus recording rules, yesterday at the same offset.
	if q.Op != "and" || q.LHS.Op != ">" || q.LHS.LHS.Op != "/" || q.RHS.Op != ">" ||
		q.LHS.RHS.Scalar != LogVolumeSpikeFactor || q.RHS.RHS.Scalar != LogVolumeSpikeMinRate {
		t.Fatalf("unexpected shape: %s", q)
	}
	yest := q.LHS.LHS.RHS
	if yest.Offset != LogVolumeYesterdayOffset || yest.Range != "1h" || q.LHS.LHS.LHS.Offset != "" {
		t.Errorf("yesterday: range %s offset %s", yest.Range, yest.Offset)
	}
	for _, n := range []*LogQuery{q.LHS.LHS.LHS, yest, q.RHS.LHS} {
		if strings.Join(n.Grouping, ", ") != volBy {
			t.Errorf("%s groups by %v, want %s", n, n.Grouping, volBy)
		}
	}
}
