package operatorenrichprocessor

import (
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// Parse error reasons (attribute opsight.parse_error, docs/architecture.md).
const (
	reasonNotJSON       = "not_json"
	reasonTruncatedJSON = "truncated_json"
	reasonInvalidUTF8   = "invalid_utf8"
	reasonBinary        = "binary"
	reasonTooLong       = "too_long"
	reasonEmpty         = "empty"
)

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

// Ranks of the places a trace id can come from; lower wins when a line has
// several (an explicit id field beats traceparent beats Datadog's decimal).
const (
	rankNone        = 0
	rankField       = 1
	rankTraceparent = 2
	rankDatadog     = 3
)

// fields is what one line yields. Strings are substrings of the line (no
// copy) unless the JSON value had escapes.
type fields struct {
	ts    int64 // unix nanoseconds
	hasTS bool
	level level

	msg         string
	controller  string
	reconcileID string
	objNS       string // top-level "namespace" (controller-runtime)
	objName     string // top-level "name"
	kindNS      string // "<Kind>":{"namespace":…}
	kindName    string // "<Kind>":{"name":…}

	traceID   pcommon.TraceID
	traceHex  string // lowercase hex as found in the line, when it already was
	traceRank int8
	spanID    pcommon.SpanID
	spanHex   string
	spanRank  int8

	// klog's JSON format has no level: "v" (verbosity) on info lines, "err"
	// on error lines, and "caller" always.
	klogV     int64
	hasV      bool
	hasErr    bool
	hasCaller bool
}

func (f *fields) objectNamespace() string {
	if f.objNS != "" {
		return f.objNS
	}
	return f.kindNS
}

func (f *fields) objectName() string {
	if f.objName != "" {
		return f.objName
	}
	return f.kindName
}

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

type valueKind uint8

const (
	kindString valueKind = iota
	kindNumber
	kindLiteral // true, false, null
)

type scanErr uint8

const (
	scanOK scanErr = iota
	scanTruncated
	scanSyntax
)

// maxDepth bounds nesting (recursion) while validating deeper values.
const maxDepth = 256

// scanner parses one JSON line and hands the top-level and one-level-nested
// scalar members to fields.set. It validates the whole line (so a broken
// line is classified) but extracts nothing deeper than one level.
type scanner struct {
	s      string
	logKey string
	f      *fields
}

// scanLine classifies and scans one line: "" when it is one JSON object,
// else a parse error reason. Fields found before a failure are kept.
func scanLine(s, logKey string, f *fields) string {
	i := skipWS(s, 0)
	if i == len(s) {
		return reasonEmpty
	}
	var err scanErr
	if s[i] == '{' {
		sc := scanner{s: s, logKey: logKey, f: f}
		i, err = sc.object(i, 0, "")
		if err == scanOK && skipWS(s, i) != len(s) {
			err = scanSyntax // trailing bytes after the object
		}
	} else {
		err = scanSyntax
	}
	valid := utf8.ValidString(s)
	if err == scanOK {
		if !valid {
			return reasonInvalidUTF8
		}
		if strings.IndexByte(s, 0) >= 0 {
			// Well-formed but for raw NUL bytes, which JSON forbids: `| json`
			// and encoding/json reject the line, so it is binary to readers.
			return reasonBinary
		}
		return ""
	}
	if isBinary(s) {
		return reasonBinary
	}
	if !valid {
		return reasonInvalidUTF8
	}
	if err == scanTruncated {
		return reasonTruncatedJSON
	}
	return reasonNotJSON
}

// isBinary: a NUL byte, or more than 1 in 8 bytes being C0 controls other
// than tab, newline, carriage return and escape (ANSI colours are text).
func isBinary(s string) bool {
	if strings.IndexByte(s, 0) >= 0 {
		return true
	}
	ctl := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != 0x1b {
			ctl++
		}
	}
	return ctl*8 > len(s)
}

func skipWS(s string, i int) int {
	for i < len(s) {
		switch s[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// object scans the object at s[i] == '{'. depth 0 is the line, 1 a member of
// it; parent is the member's key at depth 1.
func (sc *scanner) object(i, depth int, parent string) (int, scanErr) {
	s := sc.s
	i = skipWS(s, i+1)
	if i >= len(s) {
		return i, scanTruncated
	}
	if s[i] == '}' {
		return i + 1, scanOK
	}
	for {
		if i >= len(s) {
			return i, scanTruncated
		}
		if s[i] != '"' {
			return i, scanSyntax
		}
		key, j, esc, err := scanString(s, i)
		if err != scanOK {
			return j, err
		}
		if esc {
			key = unescape(key)
		}
		i = skipWS(s, j)
		if i >= len(s) {
			return i, scanTruncated
		}
		if s[i] != ':' {
			return i, scanSyntax
		}
		i = skipWS(s, i+1)
		if i >= len(s) {
			return i, scanTruncated
		}
		switch c := s[i]; {
		case c == '"':
			v, j, esc, err := scanString(s, i)
			if err != scanOK {
				return j, err
			}
			sc.set(depth, parent, key, v, esc, kindString)
			i = j
		case c == '{':
			if depth == 0 {
				i, err = sc.object(i, 1, key)
			} else {
				i, err = skipValue(s, i, depth+1)
			}
			if err != scanOK {
				return i, err
			}
		case c == '[':
			if i, err = skipValue(s, i, depth+1); err != scanOK {
				return i, err
			}
		default:
			j, kind, err := scanScalar(s, i)
			if err != scanOK {
				return j, err
			}
			sc.set(depth, parent, key, s[i:j], false, kind)
			i = j
		}
		i = skipWS(s, i)
		if i >= len(s) {
			return i, scanTruncated
		}
		switch s[i] {
		case ',':
			i = skipWS(s, i+1)
		case '}':
			return i + 1, scanOK
		default:
			return i, scanSyntax
		}
	}
}

// scanString scans the string at s[i] == '"' and returns its raw content
// (escapes not decoded), the index after the closing quote and whether it
// had escapes. Raw control bytes are tolerated (some loggers emit them).
func scanString(s string, i int) (string, int, bool, scanErr) {
	start := i + 1
	j := start
	esc := false
	for {
		// Most keys and values are short: a byte loop beats IndexByte's
		// call and setup there; long strings go to IndexByte (SIMD).
		k := j
		for end := min(len(s), j+16); k < end && s[k] != '"' && s[k] != '\\'; k++ {
		}
		if k == j+16 && k < len(s) {
			q := strings.IndexByte(s[k:], '"')
			if q < 0 {
				q = len(s) - k
			}
			if b := strings.IndexByte(s[k:k+q], '\\'); b >= 0 {
				q = b
			}
			k += q
		}
		if k >= len(s) {
			return "", len(s), false, scanTruncated
		}
		if s[k] == '"' {
			return s[start:k], k + 1, esc, scanOK
		}
		esc = true // s[k] is a backslash
		if e := checkEscape(s, k); e != scanOK {
			return "", k, false, e
		}
		if s[k+1] == 'u' {
			j = k + 6
		} else {
			j = k + 2
		}
	}
}

// checkEscape validates the escape at s[p] == '\\'.
func checkEscape(s string, p int) scanErr {
	if p+1 >= len(s) {
		return scanTruncated
	}
	switch s[p+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return scanOK
	case 'u':
		for k := p + 2; k < p+6; k++ {
			if k >= len(s) {
				return scanTruncated
			}
			if unhex(s[k]) < 0 {
				return scanSyntax
			}
		}
		return scanOK
	}
	return scanSyntax
}

// scanScalar scans a number or literal at s[i].
func scanScalar(s string, i int) (int, valueKind, scanErr) {
	c := s[i]
	if c == 't' || c == 'f' || c == 'n' {
		var lit string
		switch c {
		case 't':
			lit = "true"
		case 'f':
			lit = "false"
		default:
			lit = "null"
		}
		if len(s)-i < len(lit) {
			if lit[:len(s)-i] == s[i:] {
				return len(s), kindLiteral, scanTruncated
			}
			return i, kindLiteral, scanSyntax
		}
		if s[i:i+len(lit)] != lit {
			return i, kindLiteral, scanSyntax
		}
		return i + len(lit), kindLiteral, scanOK
	}
	j, err := scanNumber(s, i)
	return j, kindNumber, err
}

// scanNumber validates a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(s string, i int) (int, scanErr) {
	n := len(s)
	if i < n && s[i] == '-' {
		i++
	}
	if i >= n {
		return i, scanTruncated
	}
	switch {
	case s[i] == '0':
		i++
	case '1' <= s[i] && s[i] <= '9':
		for i < n && isDigit(s[i]) {
			i++
		}
	default:
		return i, scanSyntax
	}
	if i < n && s[i] == '.' {
		var err scanErr
		if i, err = digitRun(s, i+1); err != scanOK {
			return i, err
		}
	}
	if i < n && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < n && (s[i] == '+' || s[i] == '-') {
			i++
		}
		return digitRun(s, i)
	}
	return i, scanOK
}

// digitRun skips the one or more digits a fraction or exponent needs at s[i].
func digitRun(s string, i int) (int, scanErr) {
	if i >= len(s) {
		return i, scanTruncated
	}
	if !isDigit(s[i]) {
		return i, scanSyntax
	}
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i, scanOK
}

// skipValue validates and skips any value at s[i] (objects and arrays
// recursively, up to maxDepth).
func skipValue(s string, i, depth int) (int, scanErr) {
	if depth > maxDepth {
		return skipDeep(s, i)
	}
	i = skipWS(s, i)
	if i >= len(s) {
		return i, scanTruncated
	}
	switch s[i] {
	case '"':
		_, j, _, err := scanString(s, i)
		return j, err
	case '{', '[':
		closer := byte('}')
		if s[i] == '[' {
			closer = ']'
		}
		isObj := closer == '}'
		i = skipWS(s, i+1)
		if i >= len(s) {
			return i, scanTruncated
		}
		if s[i] == closer {
			return i + 1, scanOK
		}
		for {
			var err scanErr
			if isObj {
				if i >= len(s) {
					return i, scanTruncated
				}
				if s[i] != '"' {
					return i, scanSyntax
				}
				if _, i, _, err = scanString(s, i); err != scanOK {
					return i, err
				}
				i = skipWS(s, i)
				if i >= len(s) {
					return i, scanTruncated
				}
				if s[i] != ':' {
					return i, scanSyntax
				}
				i++
			}
			if i, err = skipValue(s, i, depth+1); err != scanOK {
				return i, err
			}
			i = skipWS(s, i)
			if i >= len(s) {
				return i, scanTruncated
			}
			switch s[i] {
			case ',':
				i = skipWS(s, i+1)
			case closer:
				return i + 1, scanOK
			default:
				return i, scanSyntax
			}
		}
	default:
		j, _, err := scanScalar(s, i)
		return j, err
	}
}

// skipDeep skips the value at s[i] without recursion, for nesting beyond
// maxDepth: it matches brackets (strings scanned properly) but does not
// check commas and colons, so a deep valid object is still a JSON object.
func skipDeep(s string, i int) (int, scanErr) {
	i = skipWS(s, i)
	if i >= len(s) {
		return i, scanTruncated
	}
	if s[i] != '{' && s[i] != '[' {
		if s[i] == '"' {
			_, j, _, err := scanString(s, i)
			return j, err
		}
		j, _, err := scanScalar(s, i)
		return j, err
	}
	var stack []byte
	for i < len(s) {
		switch c := s[i]; c {
		case '{', '[':
			stack = append(stack, c)
			i++
		case '}', ']':
			if len(stack) == 0 || (c == '}') != (stack[len(stack)-1] == '{') {
				return i, scanSyntax
			}
			stack = stack[:len(stack)-1]
			i++
			if len(stack) == 0 {
				return i, scanOK
			}
		case '"':
			_, j, _, err := scanString(s, i)
			if err != scanOK {
				return j, err
			}
			i = j
		default:
			i++
		}
	}
	return i, scanTruncated
}

// set routes one scalar member. raw is the JSON text of a number/literal or
// the undecoded content of a string (esc: it has escapes).
func (sc *scanner) set(depth int, parent, key, raw string, esc bool, kind valueKind) {
	f := sc.f
	str := func() string {
		if esc {
			return unescape(raw)
		}
		return raw
	}
	if key == sc.logKey {
		if f.reconcileID == "" && kind != kindLiteral {
			f.reconcileID = str()
		}
		return
	}
	if depth == 1 {
		setNested(f, parent, key, str, kind)
		return
	}
	switch key {
	case "ts", "time", "@timestamp", "timestamp":
		if !f.hasTS {
			f.ts, f.hasTS = parseTimestamp(str(), kind)
		}
	case "level", "lvl", "severity":
		if f.level == levelUnknown {
			f.level = parseLevel(str(), kind)
		}
	case "msg", "message":
		if f.msg == "" && kind == kindString {
			f.msg = str()
		}
	case "controller":
		if f.controller == "" && kind == kindString {
			f.controller = str()
		}
	case "namespace":
		if kind == kindString {
			f.objNS = str()
		}
	case "name":
		if kind == kindString {
			f.objName = str()
		}
	case "v":
		if kind == kindNumber {
			if v, err := strconv.ParseInt(raw, 10, 64); err == nil {
				f.klogV, f.hasV = v, true
			}
		}
	case "err":
		f.hasErr = kind != kindLiteral || raw != "null"
	case "caller":
		f.hasCaller = true
	default:
		setTraceKey(f, key, str, kind)
	}
}

func setNested(f *fields, parent, key string, str func() string, kind valueKind) {
	switch {
	case parent == "trace" && key == "id":
		f.setTrace(str(), rankField)
		return
	case parent == "span" && key == "id":
		f.setSpan(str(), rankField)
		return
	case parent == "dd" && key == "trace_id":
		f.setDatadogTrace(str())
		return
	case parent == "dd" && key == "span_id":
		f.setDatadogSpan(str())
		return
	case key == "name" || key == "namespace":
		// controller-runtime logs the object as "<Kind>":{"name","namespace"}.
		if kind == kindString && parent != "" && (('A' <= parent[0] && parent[0] <= 'Z') || parent == "object") {
			if key == "name" {
				if f.kindName == "" {
					f.kindName = str()
				}
			} else if f.kindNS == "" {
				f.kindNS = str()
			}
		}
		return
	}
	setTraceKey(f, key, str, kind)
}

func setTraceKey(f *fields, key string, str func() string, kind valueKind) {
	switch key {
	case "trace_id", "traceId", "traceID", "trace.id", "otelTraceID", "traceid":
		if kind == kindString {
			f.setTrace(str(), rankField)
		}
	case "span_id", "spanId", "spanID", "span.id", "otelSpanID", "spanid":
		if kind == kindString {
			f.setSpan(str(), rankField)
		}
	case "traceparent":
		if kind == kindString {
			f.setTraceparent(str())
		}
	case "dd.trace_id":
		f.setDatadogTrace(str())
	case "dd.span_id":
		f.setDatadogSpan(str())
	}
}

func (f *fields) setTrace(v string, rank int8) {
	if f.traceRank != rankNone && f.traceRank <= rank {
		return
	}
	if id, lower, ok := parseTraceID(v); ok {
		f.traceID, f.traceRank = id, rank
		f.traceHex = ""
		if lower {
			f.traceHex = v
		}
	}
}

func (f *fields) setSpan(v string, rank int8) {
	if f.spanRank != rankNone && f.spanRank <= rank {
		return
	}
	if id, lower, ok := parseSpanID(v); ok {
		f.spanID, f.spanRank = id, rank
		f.spanHex = ""
		if lower {
			f.spanHex = v
		}
	}
}

func (f *fields) setTraceparent(v string) {
	t, s, ok := parseTraceparent(v)
	if !ok {
		return
	}
	if f.traceRank == rankNone || f.traceRank > rankTraceparent {
		f.traceID, f.traceRank, f.traceHex = t, rankTraceparent, ""
	}
	if f.spanRank == rankNone || f.spanRank > rankTraceparent {
		f.spanID, f.spanRank, f.spanHex = s, rankTraceparent, ""
	}
}

func (f *fields) setDatadogTrace(v string) {
	if f.traceRank != rankNone {
		return
	}
	if id, ok := parseDatadogTraceID(v); ok {
		f.traceID, f.traceRank, f.traceHex = id, rankDatadog, ""
	}
}

func (f *fields) setDatadogSpan(v string) {
	if f.spanRank != rankNone {
		return
	}
	if id, ok := parseDatadogSpanID(v); ok {
		f.spanID, f.spanRank, f.spanHex = id, rankDatadog, ""
	}
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

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// unescape decodes a JSON string's content already validated by scanString.
// Invalid surrogates become U+FFFD, as encoding/json does.
func unescape(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch s[i] {
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r, ok := hex4(s, i+1)
			if !ok {
				b.WriteString(s[i-1:])
				return b.String()
			}
			i += 4
			if utf16.IsSurrogate(r) {
				if i+2 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
					if r2, ok := hex4(s, i+3); ok {
						if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
							b.WriteRune(d)
							i += 6
							continue
						}
					}
				}
				r = utf8.RuneError
			}
			b.WriteRune(r)
		default: // '"', '\\', '/'
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for k := i; k < i+4; k++ {
		d := unhex(s[k])
		if d < 0 {
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}

// scanKeyValues reads key=value pairs of a text line: klog's structured
// text ("msg" controller="foo" reconcileID="…") after its header, or a
// logfmt line (level=info msg=… reconcileID=…). Keys route like top-level
// JSON members; quoted values may carry backslash escapes.
func scanKeyValues(s string, sc *scanner) {
	i := 0
	if k := strings.Index(s, "] "); k >= 0 && k < 64 {
		i = k + 2 // after klog's header
	}
	if i < len(s) && s[i] == '"' { // klog's quoted message
		_, j, _, err := scanString(s, i)
		if err != scanOK {
			return
		}
		i = j
	}
	for i < len(s) {
		eq := strings.IndexByte(s[i:], '=')
		if eq < 0 {
			return
		}
		eq += i
		ks := strings.LastIndexByte(s[i:eq], ' ') + i + 1
		key := s[ks:eq]
		j := eq + 1
		var val string
		esc := false
		if j < len(s) && s[j] == '"' {
			v, end, e, err := scanString(s, j)
			if err != scanOK {
				return
			}
			val, esc, j = v, e, end
		} else {
			end := strings.IndexByte(s[j:], ' ')
			if end < 0 {
				end = len(s) - j
			}
			val, j = s[j:j+end], j+end
		}
		if key != "" && strings.IndexByte(key, '"') < 0 && val != "" {
			sc.set(0, "", key, val, esc, kindString)
		}
		i = j
	}
}

// looksLikeLogfmt: the first token is key=value.
func looksLikeLogfmt(s string) bool {
	sp := strings.IndexByte(s, ' ')
	if sp < 0 {
		sp = len(s)
	}
	eq := strings.IndexByte(s[:sp], '=')
	return eq > 0
}
