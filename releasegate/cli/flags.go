package cli

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/opsight/opsight/releasegate/source"
)

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// parseQuantile accepts 0.99, p99, p99.9, 99%.
func parseQuantile(s string) (float64, error) {
	s = strings.TrimSpace(s)
	var q float64
	var err error
	switch {
	case strings.HasPrefix(strings.ToLower(s), "p"):
		q, err = strconv.ParseFloat(s[1:], 64)
		q /= 100
	case strings.HasSuffix(s, "%"):
		q, err = strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		q /= 100
	default:
		q, err = strconv.ParseFloat(s, 64)
	}
	if err != nil || !(q > 0 && q < 1) {
		return 0, fmt.Errorf("%q is not a quantile: expected a number in (0,1) such as 0.99, or p99", s)
	}
	return math.Round(q*1e6) / 1e6, nil
}

// ParseQuantiles parses --quantiles.
func ParseQuantiles(s string) ([]float64, error) {
	var out []float64
	seen := map[float64]bool{}
	for _, f := range strings.Split(s, ",") {
		if strings.TrimSpace(f) == "" {
			continue
		}
		q, err := parseQuantile(f)
		if err != nil {
			return nil, fmt.Errorf("--quantiles: %v", err)
		}
		if !seen[q] {
			seen[q] = true
			out = append(out, q)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--quantiles: empty; expected a list such as 0.5,0.9,0.99")
	}
	sort.Float64s(out)
	return out, nil
}

// ParseThresholds parses --threshold values: "p99:+15%", "p50:10%,p99:+15%",
// or a bare "+15%" that applies to every quantile in --quantiles.
func ParseThresholds(vals []string, quantiles []float64) (map[float64]float64, error) {
	out := map[float64]float64{}
	for _, v := range vals {
		for _, item := range strings.Split(v, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			qs, pctStr, hasQ := strings.Cut(item, ":")
			if !hasQ {
				pctStr, qs = qs, ""
			}
			t, err := parsePercent(pctStr)
			if err != nil {
				return nil, fmt.Errorf("--threshold %q: %v; expected p99:+15%% (per quantile) or +15%% (all quantiles)", item, err)
			}
			if qs == "" {
				for _, q := range quantiles {
					out[q] = t
				}
				continue
			}
			q, err := parseQuantile(qs)
			if err != nil {
				return nil, fmt.Errorf("--threshold %q: %v", item, err)
			}
			out[q] = t
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--threshold: empty; expected p99:+15%% (per quantile) or +15%% (all quantiles)")
	}
	return out, nil
}

func parsePercent(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if !strings.HasSuffix(s, "%") {
		return 0, fmt.Errorf("%q lacks a %% sign", s)
	}
	v, err := strconv.ParseFloat(strings.TrimPrefix(strings.TrimSuffix(s, "%"), "+"), 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a percentage", s)
	}
	if v < 0 || v > 1000 {
		return 0, fmt.Errorf("%q must be an increase between 0%% and 1000%%", s)
	}
	return v / 100, nil
}

// ParseWindow parses "start,end": RFC 3339 times, unix seconds, or now /
// now-30m. Empty gives a zero window.
func ParseWindow(flag, s string, now time.Time) (source.Window, error) {
	if strings.TrimSpace(s) == "" {
		return source.Window{}, nil
	}
	a, b, ok := strings.Cut(s, ",")
	if !ok {
		return source.Window{}, fmt.Errorf("%s %q: expected start,end (RFC 3339, unix seconds, or now-30m,now)", flag, s)
	}
	start, err := parseTime(a, now)
	if err != nil {
		return source.Window{}, fmt.Errorf("%s start: %v", flag, err)
	}
	end, err := parseTime(b, now)
	if err != nil {
		return source.Window{}, fmt.Errorf("%s end: %v", flag, err)
	}
	if !end.After(start) {
		return source.Window{}, fmt.Errorf("%s %q: end must be after start", flag, s)
	}
	return source.Window{Start: start, End: end}, nil
}

func parseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "now" {
		return now, nil
	}
	if rest, ok := strings.CutPrefix(s, "now-"); ok {
		d, err := time.ParseDuration(rest)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q: bad duration after now-: %v", s, err)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time: expected RFC 3339 (2026-11-25T18:00:00Z), unix seconds, or now-30m", s)
}
