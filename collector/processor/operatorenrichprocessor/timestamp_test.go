package operatorenrichprocessor

import (
	"testing"
	"time"
)

func TestScanTimestamps(t *testing.T) {
	at := func(s string) int64 {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm.UnixNano()
	}
	tests := []struct {
		line string
		want int64 // 0 = none
	}{
		{`{"ts":1700000000.123456}`, 1700000000123456000},
		{`{"ts":1700000000}`, 1700000000e9},
		{`{"ts":"1700000000.5"}`, 1700000000500000000},
		{`{"ts":1700000000123}`, 1700000000123e6},        // ms
		{`{"ts":1.7000000001e+09}`, 1700000000100000000}, // exponent form
		{`{"time":"2024-02-29T23:59:59.999999999Z"}`, at("2024-02-29T23:59:59.999999999Z")},
		{`{"@timestamp":"2024-05-01T12:00:00+02:00"}`, at("2024-05-01T10:00:00Z")},
		{`{"timestamp":"2024-05-01T12:00:00.5-0130"}`, at("2024-05-01T13:30:00.5Z")}, // zap ISO8601
		{`{"ts":"2024-05-01 10:00:00"}`, at("2024-05-01T10:00:00Z")},
		{`{"ts":"2023-02-29T00:00:00Z"}`, 0}, // no such day
		{`{"ts":"yesterday"}`, 0},
		{`{"ts":true}`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			var f fields
			scanLine(tt.line, "reconcileID", &f)
			got := int64(0)
			if f.hasTS {
				got = f.ts
			}
			if d := got - tt.want; d > 1000 || d < -1000 { // float exponent form: µs precision
				t.Errorf("ts %d, want %d", got, tt.want)
			}
		})
	}
}

func TestKlogHeader(t *testing.T) {
	ref := time.Date(2025, 1, 1, 0, 10, 0, 0, time.UTC)
	tests := []struct {
		line   string
		ok     bool
		lvl    level
		wantTS time.Time
	}{
		{`I1231 23:59:58.123456       1 controller.go:120] "Reconciling" controller="foo" reconcileID="abc"`, true, levelInfo,
			time.Date(2024, 12, 31, 23, 59, 58, 123456000, time.UTC)}, // year boundary: last year
		{`E0101 00:05:00.000001   42 reflector.go:1] failed to list`, true, levelError, time.Date(2025, 1, 1, 0, 5, 0, 1000, time.UTC)},
		{`W0101 00:05:00.000001 1 x.go:1] w`, true, levelWarn, time.Date(2025, 1, 1, 0, 5, 0, 1000, time.UTC)},
		{`F0101 00:05:00.000001 1 x.go:1] f`, true, levelFatal, time.Date(2025, 1, 1, 0, 5, 0, 1000, time.UTC)},
		{`X0101 00:05:00.000001 1 x.go:1] f`, false, 0, time.Time{}},
		{`I1301 00:05:00.000001 1 x.go:1] f`, false, 0, time.Time{}},
		{`plain text`, false, 0, time.Time{}},
	}
	for _, tt := range tests {
		l, ts, ok := parseKlogHeader(tt.line, ref)
		if ok != tt.ok || (ok && (l != tt.lvl || ts != tt.wantTS.UnixNano())) {
			t.Errorf("%q: got %v %v %v, want %v %v %v", tt.line, l, time.Unix(0, ts).UTC(), ok, tt.lvl, tt.wantTS, tt.ok)
		}
	}
}

// BenchmarkParseTimestamp: a log field's time in RFC 3339 (controller-runtime)
// and in zap's ISO 8601 form.
func BenchmarkParseTimestamp(b *testing.B) {
	for _, s := range []string{"2024-05-01T10:00:00.123Z", "2024-05-01T12:00:00.123+02:00", "2024-05-01T12:00:00.123+0200"} {
		b.Run(s[len(s)-6:], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := parseTimestamp(s, kindString); !ok {
					b.Fatal(s)
				}
			}
		})
	}
}

// FuzzParseTimestamp: a string timestamp is read as time.Parse reads its
// RFC 3339 spelling (zap's ISO 8601 offset, a space or 't' for 'T', a comma
// before the fraction, no zone or 'z' for Z rewritten), and whatever
// time.Parse accepts in RFC 3339's exact shape is accepted.
func FuzzParseTimestamp(f *testing.F) {
	for _, s := range []string{
		"2024-05-01T10:00:00.123Z", "2024-05-01T12:00:00+02:00", "2024-05-01T12:00:00.5-0130",
		"2024-05-01 10:00:00", "2024-05-01t10:00:00,25z", "2024-05-01T10:00:00+02", "2023-02-29T00:00:00Z",
		"2024-05-01T23:59:60Z", "2024-05-01T10:00:00+24:00", "2024-05-01T1:00:00Z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got, ok := parseTimestamp(v, kindString)
		if len(v) < 19 || v[4] != '-' {
			return // epoch seconds: FuzzScanJSON covers them for panics
		}
		norm := rfc3339Spelling(v)
		ref, err := time.Parse(time.RFC3339Nano, norm)
		if ok && v[17:19] != "60" { // time.Parse has no leap second
			if err != nil {
				t.Fatalf("%q accepted, time.Parse(%q): %v", v, norm, err)
			}
			if ref.UnixNano() != got {
				t.Fatalf("%q: %d, time.Parse(%q) %d", v, got, norm, ref.UnixNano())
			}
		}
		if !ok && err == nil && rfc3339Shape(norm) {
			t.Fatalf("%q rejected, time.Parse accepts %q", v, norm)
		}
	})
}

// rfc3339Spelling rewrites the non-standard parts parseISO8601 accepts.
func rfc3339Spelling(v string) string {
	b := []byte(v)
	if b[10] == ' ' || b[10] == 't' {
		b[10] = 'T'
	}
	i := 19
	if i < len(b) && b[i] == ',' {
		b[i] = '.'
	}
	if i < len(b) && b[i] == '.' {
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	head, zone := string(b[:i]), string(b[i:])
	switch {
	case zone == "" || zone == "z":
		zone = "Z"
	case len(zone) == 5 && (zone[0] == '+' || zone[0] == '-'):
		zone = zone[:3] + ":" + zone[3:]
	case len(zone) == 3 && (zone[0] == '+' || zone[0] == '-'):
		zone += ":00"
	}
	return head + zone
}
