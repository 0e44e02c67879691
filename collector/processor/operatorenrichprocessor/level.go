package operatorenrichprocessor

import "strconv"

// level is a normalised severity.
type level uint8

const (
	levelUnknown level = iota
	levelDebug
	levelInfo
	levelWarn
	levelError
	levelFatal
	levelPanic
	numLevels
)

var levelNames = [numLevels]string{"unknown", "debug", "info", "warn", "error", "fatal", "panic"}

var levelSeverity = [numLevels]int32{0, 5, 9, 13, 17, 21, 22} // plog.SeverityNumber values

func (l level) String() string { return levelNames[l] }

// resolvedLevel applies klog's implicit levels when the line had no level field.
func (f *fields) resolvedLevel() level {
	if f.level != levelUnknown {
		return f.level
	}
	if f.hasV {
		if f.klogV <= 0 {
			return levelInfo
		}
		return levelDebug
	}
	if f.hasErr && f.hasCaller {
		return levelError
	}
	return levelUnknown
}

// parseLevel normalises a level value: zap/logr names, zap's "Level(-3)"
// for V-levels beyond debug, zap's numeric levels (−1…5) and bunyan/pino's
// (10…60).
func parseLevel(v string, kind valueKind) level {
	if kind == kindLiteral {
		return levelUnknown
	}
	var buf [16]byte
	if len(v) > len(buf) || v == "" {
		return levelUnknown
	}
	n := copy(buf[:], v)
	for i := 0; i < n; i++ {
		buf[i] = lowerASCII(buf[i])
	}
	switch string(buf[:n]) {
	case "debug", "dbug", "dbg", "trace", "trce", "d", "t", "verbose":
		return levelDebug
	case "info", "information", "informational", "notice", "i":
		return levelInfo
	case "warn", "warning", "w":
		return levelWarn
	case "error", "err", "eror", "e":
		return levelError
	case "fatal", "crit", "critical", "alert", "emerg", "emergency", "f":
		return levelFatal
	case "panic", "dpanic":
		return levelPanic
	}
	// zap's String() for levels without a name: "Level(-3)".
	if n > 7 && string(buf[:6]) == "level(" && buf[n-1] == ')' {
		v = string(buf[6 : n-1])
	}
	if x, err := strconv.ParseInt(v, 10, 64); err == nil {
		return numericLevel(x)
	}
	return levelUnknown
}

func numericLevel(x int64) level {
	switch {
	case x < 0: // zap: -1 debug; logr V(n) is zap level -n
		return levelDebug
	case x == 0:
		return levelInfo
	case x == 1:
		return levelWarn
	case x == 2:
		return levelError
	case x == 3 || x == 4: // dpanic, panic
		return levelPanic
	case x == 5:
		return levelFatal
	case x >= 10 && x < 30: // bunyan/pino: 10 trace, 20 debug
		return levelDebug
	case x >= 30 && x < 40:
		return levelInfo
	case x >= 40 && x < 50:
		return levelWarn
	case x >= 50 && x < 60:
		return levelError
	case x >= 60 && x < 70:
		return levelFatal
	}
	return levelUnknown
}
