package operatorenrichprocessor

import (
	"strconv"
	"time"

	"github.com/opsight/opsight/internal/civil"
)

// parseTimestamp reads a ts/time field: RFC 3339 (also zap's ISO 8601 with a
// "+0200" offset and a space for the 'T'), or epoch seconds as a number or
// string (zap's default "ts":1700000000.123456). Larger epoch values are
// read as milli-, micro- or nanoseconds by their magnitude.
func parseTimestamp(v string, kind valueKind) (int64, bool) {
	if kind == kindLiteral || v == "" {
		return 0, false
	}
	if kind == kindString && len(v) >= 19 && v[4] == '-' {
		if rfc3339Shape(v) {
			// time.Parse allocates nothing and costs some 10 ns more than
			// a hand-written parser (BenchmarkParseTimestamp).
			if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
				return t.UnixNano(), true
			}
		}
		return parseISO8601(v)
	}
	return parseEpoch(v)
}

// rfc3339Shape: "YYYY-MM-DDThh:mm:ss[.frac]" and "Z" or "±hh:mm" up to
// ±23:59, the form left to time.Parse. The guard matters: time.Parse also
// takes one-digit hours and offsets up to ±24:60, which RFC 3339 does not.
func rfc3339Shape(v string) bool {
	n := len(v)
	if n < 20 || v[7] != '-' || v[10] != 'T' || v[13] != ':' || v[16] != ':' {
		return false
	}
	if v[n-1] == 'Z' {
		return true
	}
	return n >= 25 && (v[n-6] == '+' || v[n-6] == '-') && v[n-3] == ':' && v[n-5:n-3] <= "23" && v[n-2:] <= "59"
}

// parseISO8601 reads what time.Parse(time.RFC3339Nano) does not: zap's
// ISO 8601 ("+0200", also "+02"), a space or 't' for the 'T', a comma before
// the fraction, a lowercase 'z', no zone (UTC) and a leap second (:60):
// YYYY-MM-DD[Tt ]hh:mm:ss[(.|,)frac][Z|z|±hh:mm|±hhmm|±hh].
func parseISO8601(v string) (int64, bool) {
	if len(v) < 19 || v[4] != '-' || v[7] != '-' || v[13] != ':' || v[16] != ':' {
		return 0, false
	}
	switch v[10] {
	case 'T', 't', ' ':
	default:
		return 0, false
	}
	year, ok1 := digits(v[0:4])
	month, ok2 := digits(v[5:7])
	day, ok3 := digits(v[8:10])
	hour, ok4 := digits(v[11:13])
	minute, ok5 := digits(v[14:16])
	sec, ok6 := digits(v[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 || day > civil.DaysIn(month, year) ||
		hour > 23 || minute > 59 || sec > 60 {
		return 0, false
	}
	i := 19
	var nanos int64
	if i < len(v) && (v[i] == '.' || v[i] == ',') {
		i++
		start := i
		scale := int64(100000000)
		for i < len(v) && isDigit(v[i]) {
			nanos += int64(v[i]-'0') * scale
			scale /= 10
			i++
		}
		if i == start {
			return 0, false
		}
	}
	var offset int64
	if i < len(v) {
		switch v[i] {
		case 'Z', 'z':
			i++
		case '+', '-':
			sign := int64(1)
			if v[i] == '-' {
				sign = -1
			}
			rest := v[i+1:]
			var oh, om int
			var ok bool
			switch {
			case len(rest) == 5 && rest[2] == ':':
				oh, ok = digits(rest[0:2])
				if ok {
					om, ok = digits(rest[3:5])
				}
			case len(rest) == 4:
				oh, ok = digits(rest[0:2])
				if ok {
					om, ok = digits(rest[2:4])
				}
			case len(rest) == 2:
				oh, ok = digits(rest)
			}
			if !ok || oh > 23 || om > 59 {
				return 0, false
			}
			offset = sign * int64(oh*3600+om*60)
			i = len(v)
		default:
			return 0, false
		}
	}
	if i != len(v) {
		return 0, false
	}
	secs := civil.DaysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec) - offset
	return secs*1e9 + nanos, true
}

func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

// parseEpoch reads "1700000000.123456" without float rounding.
func parseEpoch(v string) (int64, bool) {
	i := 0
	for i < len(v) && isDigit(v[i]) {
		i++
	}
	intPart := v[:i]
	if intPart == "" || len(intPart) > 19 {
		return 0, false
	}
	var frac string
	if i < len(v) && v[i] == '.' {
		j := i + 1
		for j < len(v) && isDigit(v[j]) {
			j++
		}
		frac = v[i+1 : j]
		i = j
	}
	if i != len(v) {
		// Exponent form (1.7e+09): rare; precision to the microsecond is enough.
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 || f >= 1e11 {
			return 0, false
		}
		return int64(f * 1e9), true
	}
	n, err := strconv.ParseInt(intPart, 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	// The number of integer digits tells the unit: 10 s, 13 ms, 16 µs, 19 ns.
	var unit int64
	switch {
	case len(intPart) <= 11:
		unit = 1e9
	case len(intPart) <= 14:
		unit = 1e6
	case len(intPart) <= 17:
		unit = 1e3
	default:
		unit = 1
	}
	ns := n * unit
	scale := unit / 10
	for k := 0; k < len(frac) && scale > 0; k++ {
		ns += int64(frac[k]-'0') * scale
		scale /= 10
	}
	return ns, true
}

// parseKlogHeader reads klog's text header "Lmmdd hh:mm:ss.uuuuuu threadid
// file:line] msg" (L = I, W, E, F). klog omits the year: the one that puts
// the line closest to ref (the read time) is taken.
func parseKlogHeader(s string, ref time.Time) (level, int64, bool) {
	if len(s) < 22 || s[5] != ' ' || s[8] != ':' || s[11] != ':' || s[14] != '.' {
		return levelUnknown, 0, false
	}
	var l level
	switch s[0] {
	case 'I':
		l = levelInfo
	case 'W':
		l = levelWarn
	case 'E':
		l = levelError
	case 'F':
		l = levelFatal
	default:
		return levelUnknown, 0, false
	}
	month, ok1 := digits(s[1:3])
	day, ok2 := digits(s[3:5])
	hour, ok3 := digits(s[6:8])
	minute, ok4 := digits(s[9:11])
	sec, ok5 := digits(s[12:14])
	micro, ok6 := digits(s[15:21])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 || day > 31 ||
		hour > 23 || minute > 59 || sec > 60 || (s[21] != ' ' && s[21] != '\t') {
		return levelUnknown, 0, false
	}
	refUTC := ref.UTC()
	best := int64(0)
	bestDist := int64(-1)
	for _, y := range [3]int{refUTC.Year() - 1, refUTC.Year(), refUTC.Year() + 1} {
		if day > civil.DaysIn(month, y) {
			continue
		}
		ns := (civil.DaysFromCivil(y, month, day)*86400+int64(hour*3600+minute*60+sec))*1e9 + int64(micro)*1e3
		d := ns - refUTC.UnixNano()
		if d < 0 {
			d = -d
		}
		if bestDist < 0 || d < bestDist {
			best, bestDist = ns, d
		}
	}
	if bestDist < 0 {
		return levelUnknown, 0, false
	}
	return l, best, true
}
