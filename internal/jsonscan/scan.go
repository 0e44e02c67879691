// Package jsonscan is opsight's one hand-written JSON reader and string
// writer: the receiver's Docker framing, the processor's field scan and the
// local-file exporter's object merge read JSON with it, and the exporters
// write JSON strings with it.
//
// It exists because it is cheaper than the alternatives on opsight's hot path
// (see collector/processor/operatorenrichprocessor/README.md: one scan of a
// 300 B line with no allocation beyond the fields kept) and because it says
// why a line is not JSON, which no library tells apart: the input ended
// inside a value (Truncated: the logger's line was cut) or it broke the
// grammar (Syntax). Binary lines are a caller's classification (a NUL or many
// control bytes), made after the scan.
//
// The scanner works on string indexes: each function takes the text and the
// index where a token starts and returns the index after it, so callers
// route what they need (a key, a scalar's raw text) without a tree or a map.
//
// Where it differs from encoding/json on purpose (FuzzAgainstEncodingJSON
// checks everything else):
//   - Lenient accepts raw control bytes inside strings, which some loggers
//     emit; Strict rejects them as encoding/json does.
//   - Neither checks UTF-8: bytes that are not UTF-8 are accepted inside
//     strings (as encoding/json's Valid does) and Unescape keeps them as they
//     are (the operator's bytes), where encoding/json's Unmarshal writes
//     U+FFFD for each. Callers that need valid UTF-8 check it.
//   - Lenient validates nesting deeper than 256 by matching brackets only
//     (commas and colons unchecked), so a deep valid value is still valid;
//     Strict validates to encoding/json's limit of 10000 and rejects deeper.
//   - AppendString writes what encoding/json's Encoder with SetEscapeHTML(false)
//     writes: no \u003c for '<', '>' and '&' (Loki and log readers show the
//     line as it is), U+2028 and U+2029 escaped, each invalid byte as \ufffd.
package jsonscan

import "strings"

// Err says where a scan stopped.
type Err uint8

const (
	OK        Err = iota
	Truncated     // the input ended inside a value
	Syntax        // the input broke JSON's grammar before its end
)

// Kind is the kind of a scalar value.
type Kind uint8

const (
	KindString  Kind = iota
	KindNumber       // raw is the number's JSON text
	KindLiteral      // true, false or null
)

// Scanner holds the one choice callers make: how strict strings are.
type Scanner struct {
	lenient bool
}

var (
	// Strict accepts exactly what encoding/json's Valid accepts.
	Strict = Scanner{}
	// Lenient also accepts raw control bytes inside strings, and matches
	// only brackets beyond depth 256 (no recursion on hostile input).
	Lenient = Scanner{lenient: true}
)

const (
	lenientDepth = 256
	strictDepth  = 10000 // encoding/json's limit
)

// SkipWS returns the index of the first byte at or after i that is not JSON
// whitespace.
func SkipWS(s string, i int) int {
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

// Valid reports whether s is one JSON value, surrounded by optional
// whitespace, and if not whether it was cut short or is broken.
func (sc Scanner) Valid(s string) Err {
	i, err := sc.SkipValue(s, 0, 0)
	if err != OK {
		return err
	}
	if SkipWS(s, i) != len(s) {
		return Syntax
	}
	return OK
}

// ObjectStart opens the object at s[i] == '{'. It returns the index of the
// first key (whitespace skipped), or with empty, the index after the '}'.
func ObjectStart(s string, i int) (j int, empty bool, err Err) {
	i = SkipWS(s, i+1)
	if i >= len(s) {
		return i, false, Truncated
	}
	if s[i] == '}' {
		return i + 1, true, OK
	}
	return i, false, OK
}

// Key reads a member's `"key" :` at s[i] and returns the key's raw content
// (esc: it has escapes, see Unescape) and the index of the value, whitespace
// skipped, which is within s when err is OK.
func (sc Scanner) Key(s string, i int) (key string, esc bool, j int, err Err) {
	if i >= len(s) {
		return "", false, i, Truncated
	}
	if s[i] != '"' {
		return "", false, i, Syntax
	}
	key, j, esc, err = sc.ScanString(s, i)
	if err != OK {
		return "", false, j, err
	}
	j = SkipWS(s, j)
	if j >= len(s) {
		return key, esc, j, Truncated
	}
	if s[j] != ':' {
		return key, esc, j, Syntax
	}
	j = SkipWS(s, j+1)
	if j >= len(s) {
		return key, esc, j, Truncated
	}
	return key, esc, j, OK
}

// MemberEnd follows a member's value ending at s[i]: with more, the index of
// the next key (whitespace skipped); else the index after the object's '}'.
func MemberEnd(s string, i int) (j int, more bool, err Err) {
	i = SkipWS(s, i)
	if i >= len(s) {
		return i, false, Truncated
	}
	switch s[i] {
	case ',':
		return SkipWS(s, i+1), true, OK
	case '}':
		return i + 1, false, OK
	}
	return i, false, Syntax
}

// ScanString scans the string at s[i] == '"' and returns its raw content
// (escapes checked, not decoded), the index after the closing quote and
// whether it had escapes.
func (sc Scanner) ScanString(s string, i int) (raw string, end int, esc bool, err Err) {
	if !sc.lenient {
		return scanStringStrict(s, i)
	}
	start := i + 1
	j := start
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
			return "", len(s), false, Truncated
		}
		if s[k] == '"' {
			return s[start:k], k + 1, esc, OK
		}
		esc = true // s[k] is a backslash
		if e := checkEscape(s, k); e != OK {
			return "", k, false, e
		}
		if s[k+1] == 'u' {
			j = k + 6
		} else {
			j = k + 2
		}
	}
}

// scanStringStrict is ScanString that rejects raw control bytes, as JSON
// does: one byte loop, since each byte must be looked at anyway.
func scanStringStrict(s string, i int) (string, int, bool, Err) {
	start := i + 1
	esc := false
	for k := start; k < len(s); {
		switch c := s[k]; {
		case c == '"':
			return s[start:k], k + 1, esc, OK
		case c == '\\':
			if e := checkEscape(s, k); e != OK {
				return "", k, false, e
			}
			esc = true
			if s[k+1] == 'u' {
				k += 6
			} else {
				k += 2
			}
		case c < 0x20:
			return "", k, false, Syntax
		default:
			k++
		}
	}
	return "", len(s), false, Truncated
}

// checkEscape validates the escape at s[p] == '\\'.
func checkEscape(s string, p int) Err {
	if p+1 >= len(s) {
		return Truncated
	}
	switch s[p+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return OK
	case 'u':
		for k := p + 2; k < p+6; k++ {
			if k >= len(s) {
				return Truncated
			}
			if unhex(s[k]) < 0 {
				return Syntax
			}
		}
		return OK
	}
	return Syntax
}

// Scalar scans the number or literal at s[i] (i within s).
func Scalar(s string, i int) (int, Kind, Err) {
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
				return len(s), KindLiteral, Truncated
			}
			return i, KindLiteral, Syntax
		}
		if s[i:i+len(lit)] != lit {
			return i, KindLiteral, Syntax
		}
		return i + len(lit), KindLiteral, OK
	}
	j, err := scanNumber(s, i)
	return j, KindNumber, err
}

// scanNumber validates a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(s string, i int) (int, Err) {
	n := len(s)
	if i < n && s[i] == '-' {
		i++
	}
	if i >= n {
		return i, Truncated
	}
	switch {
	case s[i] == '0':
		i++
	case '1' <= s[i] && s[i] <= '9':
		for i < n && isDigit(s[i]) {
			i++
		}
	default:
		return i, Syntax
	}
	if i < n && s[i] == '.' {
		var err Err
		if i, err = digitRun(s, i+1); err != OK {
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
	return i, OK
}

// digitRun skips the one or more digits a fraction or exponent needs at s[i].
func digitRun(s string, i int) (int, Err) {
	if i >= len(s) {
		return i, Truncated
	}
	if !isDigit(s[i]) {
		return i, Syntax
	}
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i, OK
}

// SkipValue validates and skips the value at s[i] (whitespace before it
// skipped); depth is the nesting of that value, 0 for a whole document.
func (sc Scanner) SkipValue(s string, i, depth int) (int, Err) {
	if sc.lenient && depth > lenientDepth {
		return skipDeep(s, i)
	}
	i = SkipWS(s, i)
	if i >= len(s) {
		return i, Truncated
	}
	switch s[i] {
	case '"':
		_, j, _, err := sc.ScanString(s, i)
		return j, err
	case '{', '[':
		if depth >= strictDepth {
			return i, Syntax // as encoding/json: "exceeded max depth"
		}
		closer := byte('}')
		if s[i] == '[' {
			closer = ']'
		}
		isObj := closer == '}'
		i = SkipWS(s, i+1)
		if i >= len(s) {
			return i, Truncated
		}
		if s[i] == closer {
			return i + 1, OK
		}
		for {
			var err Err
			if isObj {
				if _, _, i, err = sc.Key(s, i); err != OK {
					return i, err
				}
			}
			if i, err = sc.SkipValue(s, i, depth+1); err != OK {
				return i, err
			}
			i = SkipWS(s, i)
			if i >= len(s) {
				return i, Truncated
			}
			switch s[i] {
			case ',':
				i = SkipWS(s, i+1)
			case closer:
				return i + 1, OK
			default:
				return i, Syntax
			}
		}
	default:
		j, _, err := Scalar(s, i)
		return j, err
	}
}

// skipDeep skips the value at s[i] without recursion, for nesting beyond
// the lenient depth: it matches brackets (strings scanned properly) but does
// not check commas and colons, so a deep valid object is still valid.
func skipDeep(s string, i int) (int, Err) {
	i = SkipWS(s, i)
	if i >= len(s) {
		return i, Truncated
	}
	if s[i] != '{' && s[i] != '[' {
		if s[i] == '"' {
			_, j, _, err := Lenient.ScanString(s, i)
			return j, err
		}
		j, _, err := Scalar(s, i)
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
				return i, Syntax
			}
			stack = stack[:len(stack)-1]
			i++
			if len(stack) == 0 {
				return i, OK
			}
		case '"':
			_, j, _, err := Lenient.ScanString(s, i)
			if err != OK {
				return j, err
			}
			i = j
		default:
			i++
		}
	}
	return i, Truncated
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
