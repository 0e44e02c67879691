package operatorlogsreceiver

import (
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/opsight/opsight/internal/civil"
)

// Stream a line was written to, as far as the framing says.
const (
	streamUnknown uint8 = iota
	streamStdout
	streamStderr
)

var streamNames = [...]string{streamUnknown: "", streamStdout: "stdout", streamStderr: "stderr"}

func streamOf(s string) uint8 {
	switch s {
	case "stdout":
		return streamStdout
	case "stderr":
		return streamStderr
	}
	return streamUnknown
}

// criFrame is one physical line of the CRI log format written by containerd
// and CRI-O: "<RFC3339Nano timestamp> <stdout|stderr> <P|F>[:more tags] <message>".
type criFrame struct {
	ts      uint64 // Unix nanoseconds, 0 when before 1970
	stream  uint8
	partial bool   // tag P: the runtime split the line (kubelet does so at 16 KiB)
	msg     string // the message, a substring of the input
}

// parseCRI parses one physical CRI line without its trailing newline. It
// returns ok=false when the framing is broken; the caller then ships the
// whole line raw with opsight.parse_error=bad_framing.
func parseCRI(line string) (l criFrame, ok bool) {
	sp := strings.IndexByte(line, ' ')
	if sp <= 0 {
		return l, false
	}
	ts, ok := parseTimestamp(line[:sp])
	if !ok {
		return l, false
	}
	rest := line[sp+1:]
	switch {
	case strings.HasPrefix(rest, "stdout "):
		l.stream, rest = streamStdout, rest[len("stdout "):]
	case strings.HasPrefix(rest, "stderr "):
		l.stream, rest = streamStderr, rest[len("stderr "):]
	default:
		return l, false
	}
	// Tags are ':'-separated; the first is P (partial) or F (full). The
	// message follows one space; an empty message may have lost it.
	if rest == "" || (rest[0] != 'P' && rest[0] != 'F') {
		return l, false
	}
	l.partial = rest[0] == 'P'
	end := strings.IndexByte(rest, ' ')
	tags := rest
	if end >= 0 {
		tags, l.msg = rest[:end], rest[end+1:]
	}
	if len(tags) > 1 && tags[1] != ':' {
		return l, false
	}
	l.ts = ts
	return l, true
}

// parseTimestamp parses RFC 3339 with optional fraction, "Z" (containerd) or
// a numeric offset (CRI-O). The hand-written path avoids time.Parse's cost on
// every line; anything unusual falls back to time.Parse so both agree.
func parseTimestamp(s string) (uint64, bool) {
	if ns, ok := fastRFC3339(s); ok {
		if ns < 0 {
			return 0, true
		}
		return uint64(ns), true
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, false
	}
	if y := t.Year(); y < 1970 || y > 2261 {
		return 0, true // valid framing, but no usable Unix nanoseconds
	}
	if ns := t.UnixNano(); ns > 0 {
		return uint64(ns), true
	}
	return 0, true
}

func digits(s string, n int) (int, bool) {
	v := 0
	for i := 0; i < n; i++ {
		c := s[i] - '0'
		if c > 9 {
			return 0, false
		}
		v = v*10 + int(c)
	}
	return v, true
}

// fastRFC3339 accepts exactly "YYYY-MM-DDTHH:MM:SS[.1-9 digits](Z|±HH:MM)".
func fastRFC3339(s string) (int64, bool) {
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return 0, false
	}
	year, ok1 := digits(s, 4)
	month, ok2 := digits(s[5:], 2)
	day, ok3 := digits(s[8:], 2)
	hour, ok4 := digits(s[11:], 2)
	minute, ok5 := digits(s[14:], 2)
	sec, ok6 := digits(s[17:], 2)
	// Outside 1970..2261 Unix nanoseconds do not fit; time.Parse decides.
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || year < 1970 || year > 2261 || month < 1 || month > 12 || day < 1 ||
		day > civil.DaysIn(month, year) || hour > 23 || minute > 59 || sec > 59 {
		return 0, false
	}
	rest := s[19:]
	var nanos int64
	if rest[0] == '.' {
		i := 1
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		nd := i - 1
		if nd < 1 || nd > 9 {
			return 0, false
		}
		f, _ := digits(rest[1:], nd)
		for k := nd; k < 9; k++ {
			f *= 10
		}
		nanos = int64(f)
		rest = rest[i:]
	}
	var off int64
	switch {
	case rest == "Z":
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := digits(rest[1:], 2)
		om, ok2 := digits(rest[4:], 2)
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return 0, false
		}
		off = int64(oh*3600 + om*60)
		if rest[0] == '-' {
			off = -off
		}
	default:
		return 0, false
	}
	secs := civil.DaysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec) - off
	return secs*1e9 + nanos, true
}

// dockerFrame is one line of Docker's json-file driver:
// {"log":"<text, with its newline unless split>","stream":"stdout","time":"..."}.
type dockerFrame struct {
	ts      uint64
	stream  uint8
	partial bool // "log" does not end in "\n": docker split the line at 16 KiB
	msg     []byte
}

// parseDocker decodes one json-file line. scratch is reused for the unescaped
// message (msg aliases it). ok=false means the framing is broken.
func parseDocker(line string, scratch []byte) (l dockerFrame, ok bool) {
	p := jsonScan{s: line}
	p.ws()
	if !p.eat('{') {
		return l, false
	}
	var haveLog, haveStream bool
	p.ws()
	if p.eat('}') {
		return l, false
	}
	for {
		p.ws()
		key, ok := p.rawString()
		if !ok {
			return l, false
		}
		p.ws()
		if !p.eat(':') {
			return l, false
		}
		p.ws()
		switch key {
		case `log`:
			s, ok := p.rawString()
			if !ok {
				return l, false
			}
			scratch, ok = unquoteAppend(scratch[:0], s)
			if !ok {
				return l, false
			}
			l.msg, haveLog = scratch, true
		case `stream`:
			s, ok := p.rawString()
			if !ok {
				return l, false
			}
			l.stream, haveStream = streamOf(s), true
		case `time`:
			s, ok := p.rawString()
			if !ok {
				return l, false
			}
			ts, ok := parseTimestamp(s)
			if !ok {
				return l, false
			}
			l.ts = ts
		default:
			if !p.skipValue(0) {
				return l, false
			}
		}
		p.ws()
		if p.eat('}') {
			break
		}
		if !p.eat(',') {
			return l, false
		}
	}
	p.ws()
	if p.i != len(p.s) || !haveLog || !haveStream {
		return l, false
	}
	if n := len(l.msg); n > 0 && l.msg[n-1] == '\n' {
		l.msg = l.msg[:n-1]
	} else {
		l.partial = true
	}
	return l, true
}

// jsonScan is the minimal JSON reader the docker framing needs.
type jsonScan struct {
	s string
	i int
}

func (p *jsonScan) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonScan) eat(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// rawString returns the contents between the quotes, still escaped.
func (p *jsonScan) rawString() (string, bool) {
	if !p.eat('"') {
		return "", false
	}
	start := p.i
	for p.i < len(p.s) {
		switch c := p.s[p.i]; {
		case c == '"':
			p.i++
			return p.s[start : p.i-1], true
		case c == '\\':
			p.i += 2
		case c < 0x20:
			return "", false
		default:
			p.i++
		}
	}
	return "", false
}

func (p *jsonScan) skipValue(depth int) bool {
	if depth > 64 || p.i >= len(p.s) {
		return false
	}
	switch c := p.s[p.i]; {
	case c == '"':
		s, ok := p.rawString()
		if !ok {
			return false
		}
		_, ok = unquoteAppend(nil, s)
		return ok
	case c == '{' || c == '[':
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		p.i++
		p.ws()
		if p.eat(closer) {
			return true
		}
		for {
			p.ws()
			if c == '{' {
				if _, ok := p.rawString(); !ok {
					return false
				}
				p.ws()
				if !p.eat(':') {
					return false
				}
				p.ws()
			}
			if !p.skipValue(depth + 1) {
				return false
			}
			p.ws()
			if p.eat(closer) {
				return true
			}
			if !p.eat(',') {
				return false
			}
		}
	case strings.HasPrefix(p.s[p.i:], "true"):
		p.i += 4
	case strings.HasPrefix(p.s[p.i:], "false"):
		p.i += 5
	case strings.HasPrefix(p.s[p.i:], "null"):
		p.i += 4
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	default:
		return false
	}
	return true
}

// number follows the JSON number grammar exactly.
func (p *jsonScan) number() bool {
	p.eat('-')
	if p.eat('0') {
	} else if !p.digits() {
		return false
	}
	if p.eat('.') && !p.digits() {
		return false
	}
	if p.i < len(p.s) && (p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		p.i++
		if !p.eat('+') {
			p.eat('-')
		}
		if !p.digits() {
			return false
		}
	}
	return true
}

func (p *jsonScan) digits() bool {
	start := p.i
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	return p.i > start
}

// unquoteAppend appends the unescaped JSON string contents s to dst. Raw bytes
// that are not valid UTF-8 are kept as they are (the Body keeps the
// operator's bytes); invalid \u surrogates become U+FFFD as in encoding/json.
func unquoteAppend(dst []byte, s string) ([]byte, bool) {
	for {
		i := strings.IndexByte(s, '\\')
		if i < 0 {
			return append(dst, s...), true
		}
		dst = append(dst, s[:i]...)
		s = s[i:]
		if len(s) < 2 {
			return dst, false
		}
		switch c := s[1]; c {
		case '"', '\\', '/':
			dst = append(dst, c)
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := hex4(s[2:])
			if !ok {
				return dst, false
			}
			s = s[6:]
			if utf16.IsSurrogate(r) {
				if len(s) >= 6 && s[0] == '\\' && s[1] == 'u' {
					if r2, ok := hex4(s[2:]); ok {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							dst = utf8.AppendRune(dst, dec)
							s = s[6:]
							continue
						}
					}
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default:
			return dst, false
		}
		s = s[2:]
	}
}

func hex4(s string) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for i := 0; i < 4; i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// detectFormat decides a file's format from its first complete line.
func detectFormat(line string) string {
	if len(line) > 0 && line[0] == '{' {
		if l, ok := parseDocker(line, nil); ok && l.ts != 0 {
			return FormatDocker
		}
		return FormatJSON
	}
	if _, ok := parseCRI(line); ok {
		return FormatCRI
	}
	return FormatJSON
}
