package operatorenrichprocessor

import (
	"strings"
	"unicode/utf8"

	"github.com/opsight/opsight/internal/jsonscan"
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

// valueKind is the kind of a scalar handed to scanner.set.
type valueKind = jsonscan.Kind

const (
	kindString  = jsonscan.KindString
	kindNumber  = jsonscan.KindNumber
	kindLiteral = jsonscan.KindLiteral // true, false, null
)

// maxDepth: deeper than this, jsonscan.Lenient matches brackets only.
const maxDepth = 256

// scanner walks one JSON line with jsonscan.Lenient (loggers do write raw
// control bytes into strings) and hands the top-level and one-level-nested
// scalar members to set (fields.go). It validates the whole line, so a
// broken line is classified, but extracts nothing deeper than one level.
type scanner struct {
	s      string
	logKey string
	f      *fields
}

// scanLine classifies and scans one line: "" when it is one JSON object,
// else a parse error reason. Fields found before a failure are kept.
func scanLine(s, logKey string, f *fields) string {
	i := jsonscan.SkipWS(s, 0)
	if i == len(s) {
		return reasonEmpty
	}
	err := jsonscan.Syntax
	if s[i] == '{' {
		sc := scanner{s: s, logKey: logKey, f: f}
		i, err = sc.object(i, 0, "")
		if err == jsonscan.OK && jsonscan.SkipWS(s, i) != len(s) {
			err = jsonscan.Syntax // trailing bytes after the object
		}
	}
	valid := utf8.ValidString(s)
	if err == jsonscan.OK {
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
	if err == jsonscan.Truncated {
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

// object scans the object at s[i] == '{'. depth 0 is the line, 1 a member of
// it; parent is the member's key at depth 1. The key, colon and comma steps
// are written out here rather than calling jsonscan.Key and MemberEnd: two
// calls fewer per member were ~8% of scanLine on the benchmark line.
func (sc *scanner) object(i, depth int, parent string) (int, jsonscan.Err) {
	s, lenient := sc.s, jsonscan.Lenient
	i, empty, err := jsonscan.ObjectStart(s, i)
	if err != jsonscan.OK || empty {
		return i, err
	}
	for {
		if i >= len(s) {
			return i, jsonscan.Truncated
		}
		if s[i] != '"' {
			return i, jsonscan.Syntax
		}
		key, j, esc, err := lenient.ScanString(s, i)
		if err != jsonscan.OK {
			return j, err
		}
		if esc {
			key = jsonscan.Unescape(key)
		}
		i = jsonscan.SkipWS(s, j)
		if i >= len(s) {
			return i, jsonscan.Truncated
		}
		if s[i] != ':' {
			return i, jsonscan.Syntax
		}
		i = jsonscan.SkipWS(s, i+1)
		if i >= len(s) {
			return i, jsonscan.Truncated
		}
		switch c := s[i]; {
		case c == '"':
			v, j, esc, err := lenient.ScanString(s, i)
			if err != jsonscan.OK {
				return j, err
			}
			sc.set(depth, parent, key, v, esc, kindString)
			i = j
		case c == '{' && depth == 0:
			if i, err = sc.object(i, 1, key); err != jsonscan.OK {
				return i, err
			}
		case c == '{' || c == '[':
			if i, err = lenient.SkipValue(s, i, depth+1); err != jsonscan.OK {
				return i, err
			}
		default:
			j, kind, err := jsonscan.Scalar(s, i)
			if err != jsonscan.OK {
				return j, err
			}
			sc.set(depth, parent, key, s[i:j], false, kind)
			i = j
		}
		i = jsonscan.SkipWS(s, i)
		if i >= len(s) {
			return i, jsonscan.Truncated
		}
		switch s[i] {
		case ',':
			i = jsonscan.SkipWS(s, i+1)
		case '}':
			return i + 1, jsonscan.OK
		default:
			return i, jsonscan.Syntax
		}
	}
}
