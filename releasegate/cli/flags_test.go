package cli

import (
	"strings"
	"testing"
	"time"
)

func TestParseThresholds(t *testing.T) {
	qs := []float64{0.5, 0.9, 0.99}
	tests := []struct {
		in   []string
		want map[float64]float64
		err  string
	}{
		{[]string{"p99:+15%"}, map[float64]float64{0.99: 0.15}, ""},
		{[]string{"p50:10%,p99:+15%"}, map[float64]float64{0.5: 0.10, 0.99: 0.15}, ""},
		{[]string{"+5%"}, map[float64]float64{0.5: 0.05, 0.9: 0.05, 0.99: 0.05}, ""},
		{[]string{"+5%", "p99:+20%"}, map[float64]float64{0.5: 0.05, 0.9: 0.05, 0.99: 0.20}, ""},
		{[]string{"0.999:+30%"}, map[float64]float64{0.999: 0.30}, ""},
		{[]string{"p99:15"}, nil, "lacks a % sign"},
		{[]string{"p99:-5%"}, nil, "must be an increase"},
		{[]string{"p0:+5%"}, nil, "is not a quantile"},
		{[]string{""}, nil, "empty"},
	}
	for _, tc := range tests {
		got, err := ParseThresholds(tc.in, qs)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("%q: %v, want %v", tc.in, got, tc.want)
		}
		for q, v := range tc.want {
			if d := got[q] - v; d > 1e-12 || d < -1e-12 {
				t.Errorf("%q: %v = %v, want %v", tc.in, q, got[q], v)
			}
		}
	}
}

func TestParseQuantiles(t *testing.T) {
	got, err := ParseQuantiles("p99, 0.5,90%,p99.9,0.5")
	if err != nil || len(got) != 4 || got[0] != 0.5 || got[1] != 0.9 || got[2] != 0.99 || got[3] != 0.999 {
		t.Errorf("%v %v", got, err)
	}
	for _, bad := range []string{"1", "0", "p100", "x", ""} {
		if _, err := ParseQuantiles(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseWindow(t *testing.T) {
	now := time.Date(2026, 11, 25, 19, 0, 0, 0, time.UTC)
	tests := []struct {
		in         string
		start, end time.Time
		err        string
	}{
		{"2026-11-25T18:00:00Z,2026-11-25T18:30:00Z", time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC), time.Date(2026, 11, 25, 18, 30, 0, 0, time.UTC), ""},
		{"now-30m,now", now.Add(-30 * time.Minute), now, ""},
		{"1795630492,1795630792.5", time.Unix(1795630492, 0), time.Unix(1795630792, 5e8), ""},
		{"now,now-1h", time.Time{}, time.Time{}, "end must be after start"},
		{"yesterday,now", time.Time{}, time.Time{}, "is not a time"},
		{"now-5x,now", time.Time{}, time.Time{}, "bad duration"},
		{"2026-11-25T18:00:00Z", time.Time{}, time.Time{}, "expected start,end"},
	}
	for _, tc := range tests {
		w, err := ParseWindow("--baseline-window", tc.in, now)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "--baseline-window") {
				t.Errorf("%q: err %v, want %q naming the flag", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !w.Start.Equal(tc.start) || !w.End.Equal(tc.end) {
			t.Errorf("%q: %v %v", tc.in, w, err)
		}
	}
}
