package alerts

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// This file is a recursive-descent parser for the LogQL subset opsight
// generates (rules and dashboard log panels), so a typo fails `go generate`
// and the tests instead of the Loki ruler at deploy time. Grammar:
//
//	query     = metric | logExpr
//	metric    = aggr [ cmpOp number ]
//	aggr      = aggOp [ ("by"|"without") "(" ident {"," ident} ")" ] "(" aggr ")" | rangeAgg
//	rangeAgg  = rangeOp "(" logExpr "[" duration "]" ")"
//	logExpr   = "{" matcher {"," matcher} "}" { stage }
//	stage     = "|" matcher | ("|=" | "!=" | "|~" | "!~") string
//	matcher   = ident ("=" | "!=" | "=~" | "!~") string
//
// Regular expressions are Go RE2, like Loki's, and fully anchored.

// LogMatcher is one label matcher (stream selector or label filter stage).
type LogMatcher struct {
	Name, Op, Value string
	re              *regexp.Regexp
}

// Matches reports whether a label value (empty when absent) satisfies the matcher.
func (m LogMatcher) Matches(v string) bool {
	switch m.Op {
	case "=":
		return v == m.Value
	case "!=":
		return v != m.Value
	case "=~":
		return m.re.MatchString(v)
	case "!~":
		return !m.re.MatchString(v)
	}
	return false
}

// LogLineFilter is a line filter stage (|=, !=, |~, !~).
type LogLineFilter struct {
	Op, Value string
	re        *regexp.Regexp
}

// LogQuery is a parsed query.
type LogQuery struct {
	Selector     []LogMatcher
	LabelFilters []LogMatcher
	LineFilters  []LogLineFilter
	// Metric part; empty for a log query.
	Aggs      []string // outermost first, e.g. ["sum"]
	Grouping  []string
	RangeOp   string
	Range     string
	CmpOp     string
	Threshold float64
}

// MatchEntry evaluates the log part of the query on one entry: stream labels
// and structured metadata both act as labels in label filters.
func (q *LogQuery) MatchEntry(line string, stream, metadata map[string]string) bool {
	for _, m := range q.Selector {
		if !m.Matches(stream[m.Name]) {
			return false
		}
	}
	for _, f := range q.LineFilters {
		var ok bool
		switch f.Op {
		case "|=":
			ok = strings.Contains(line, f.Value)
		case "!=":
			ok = !strings.Contains(line, f.Value)
		case "|~":
			ok = f.re.MatchString(line)
		case "!~":
			ok = !f.re.MatchString(line)
		}
		if !ok {
			return false
		}
	}
	for _, m := range q.LabelFilters {
		v, ok := metadata[m.Name]
		if !ok {
			v = stream[m.Name]
		}
		if !m.Matches(v) {
			return false
		}
	}
	return true
}

var (
	logAggOps   = map[string]bool{"sum": true, "max": true, "min": true, "avg": true, "count": true, "topk": false}
	logRangeOps = map[string]bool{"count_over_time": true, "rate": true, "bytes_over_time": true, "bytes_rate": true}
	cmpOps      = []string{"==", "!=", ">=", "<=", ">", "<"}
	durationRe  = regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)
	labelNameRe = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

type logParser struct {
	s   string
	pos int
}

// ParseLogQL parses a query of the subset above.
func ParseLogQL(s string) (*LogQuery, error) {
	p := &logParser{s: s}
	q := &LogQuery{}
	var err error
	p.ws()
	if p.peek() == '{' {
		err = p.logExpr(q)
	} else {
		err = p.metric(q)
	}
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.pos != len(p.s) {
		return nil, p.errf("unexpected %q after the query", p.rest(10))
	}
	if err := q.validate(); err != nil {
		return nil, err
	}
	return q, nil
}

func (q *LogQuery) validate() error {
	if len(q.Selector) == 0 {
		return fmt.Errorf("logql: empty stream selector")
	}
	// Loki refuses selectors whose every matcher matches the empty string.
	for _, m := range q.Selector {
		if !m.Matches("") {
			return nil
		}
	}
	return fmt.Errorf("logql: stream selector needs at least one matcher that cannot match the empty string (e.g. service_name=~\".+\")")
}

func (p *logParser) errf(format string, a ...any) error {
	return fmt.Errorf("logql: at offset %d: %s", p.pos, fmt.Sprintf(format, a...))
}

func (p *logParser) rest(n int) string {
	r := p.s[p.pos:]
	if len(r) > n {
		r = r[:n]
	}
	return r
}

func (p *logParser) ws() {
	for p.pos < len(p.s) && unicode.IsSpace(rune(p.s[p.pos])) {
		p.pos++
	}
}

func (p *logParser) peek() byte {
	if p.pos < len(p.s) {
		return p.s[p.pos]
	}
	return 0
}

func (p *logParser) accept(tok string) bool {
	p.ws()
	if strings.HasPrefix(p.s[p.pos:], tok) {
		p.pos += len(tok)
		return true
	}
	return false
}

func (p *logParser) expect(tok string) error {
	if !p.accept(tok) {
		return p.errf("expected %q, found %q", tok, p.rest(10))
	}
	return nil
}

func (p *logParser) ident() (string, error) {
	p.ws()
	start := p.pos
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || p.pos > start && c >= '0' && c <= '9' {
			p.pos++
			continue
		}
		break
	}
	if p.pos == start {
		return "", p.errf("expected an identifier, found %q", p.rest(10))
	}
	return p.s[start:p.pos], nil
}

// str parses a double-quoted or back-quoted string.
func (p *logParser) str() (string, error) {
	p.ws()
	switch p.peek() {
	case '`':
		end := strings.IndexByte(p.s[p.pos+1:], '`')
		if end < 0 {
			return "", p.errf("unterminated raw string")
		}
		v := p.s[p.pos+1 : p.pos+1+end]
		p.pos += end + 2
		return v, nil
	case '"':
		i := p.pos + 1
		for i < len(p.s) && p.s[i] != '"' {
			if p.s[i] == '\\' {
				i++
			}
			i++
		}
		if i >= len(p.s) {
			return "", p.errf("unterminated string")
		}
		v, err := strconv.Unquote(p.s[p.pos : i+1])
		if err != nil {
			return "", p.errf("bad string %s: %v", p.s[p.pos:i+1], err)
		}
		p.pos = i + 1
		return v, nil
	}
	return "", p.errf("expected a string, found %q", p.rest(10))
}

func (p *logParser) matcher() (LogMatcher, error) {
	name, err := p.ident()
	if err != nil {
		return LogMatcher{}, err
	}
	if !labelNameRe.MatchString(name) {
		return LogMatcher{}, p.errf("bad label name %q", name)
	}
	var op string
	for _, o := range []string{"=~", "!~", "!=", "="} {
		if p.accept(o) {
			op = o
			break
		}
	}
	if op == "" {
		return LogMatcher{}, p.errf("expected a matcher operator after %q", name)
	}
	v, err := p.str()
	if err != nil {
		return LogMatcher{}, err
	}
	m := LogMatcher{Name: name, Op: op, Value: v}
	if op == "=~" || op == "!~" {
		if m.re, err = regexp.Compile("^(?:" + v + ")$"); err != nil {
			return LogMatcher{}, p.errf("bad regexp for %s: %v", name, err)
		}
	}
	return m, nil
}

func (p *logParser) logExpr(q *LogQuery) error {
	if err := p.expect("{"); err != nil {
		return err
	}
	for {
		m, err := p.matcher()
		if err != nil {
			return err
		}
		q.Selector = append(q.Selector, m)
		if p.accept(",") {
			continue
		}
		if err := p.expect("}"); err != nil {
			return err
		}
		break
	}
	for {
		p.ws()
		switch {
		case p.accept("|="), p.accept("|~"), p.accept("!="), p.accept("!~"):
			op := p.s[p.pos-2 : p.pos]
			v, err := p.str()
			if err != nil {
				return err
			}
			f := LogLineFilter{Op: op, Value: v}
			if op == "|~" || op == "!~" {
				var err error
				if f.re, err = regexp.Compile(v); err != nil {
					return p.errf("bad line filter regexp: %v", err)
				}
			}
			q.LineFilters = append(q.LineFilters, f)
		case p.accept("|"):
			m, err := p.matcher()
			if err != nil {
				return err
			}
			q.LabelFilters = append(q.LabelFilters, m)
		default:
			return nil
		}
	}
}

func (p *logParser) metric(q *LogQuery) error {
	if err := p.aggr(q); err != nil {
		return err
	}
	p.ws()
	for _, op := range cmpOps {
		if p.accept(op) {
			q.CmpOp = op
			p.ws()
			start := p.pos
			for p.pos < len(p.s) && strings.IndexByte("0123456789.eE+-", p.s[p.pos]) >= 0 {
				p.pos++
			}
			v, err := strconv.ParseFloat(p.s[start:p.pos], 64)
			if err != nil {
				return p.errf("expected a number after %s", op)
			}
			q.Threshold = v
			break
		}
	}
	return nil
}

func (p *logParser) aggr(q *LogQuery) error {
	name, err := p.ident()
	if err != nil {
		return err
	}
	if logRangeOps[name] {
		q.RangeOp = name
		if err := p.expect("("); err != nil {
			return err
		}
		if err := p.logExpr(q); err != nil {
			return err
		}
		if err := p.expect("["); err != nil {
			return err
		}
		p.ws()
		end := strings.IndexByte(p.s[p.pos:], ']')
		if end < 0 {
			return p.errf("unterminated range")
		}
		q.Range = strings.TrimSpace(p.s[p.pos : p.pos+end])
		if !durationRe.MatchString(q.Range) {
			return p.errf("bad range duration %q", q.Range)
		}
		p.pos += end + 1
		return p.expect(")")
	}
	if !logAggOps[name] {
		return p.errf("unknown function %q", name)
	}
	q.Aggs = append(q.Aggs, name)
	if p.accept("by") || p.accept("without") {
		if err := p.expect("("); err != nil {
			return err
		}
		for {
			l, err := p.ident()
			if err != nil {
				return err
			}
			q.Grouping = append(q.Grouping, l)
			if p.accept(",") {
				continue
			}
			if err := p.expect(")"); err != nil {
				return err
			}
			break
		}
	}
	if err := p.expect("("); err != nil {
		return err
	}
	if err := p.aggr(q); err != nil {
		return err
	}
	return p.expect(")")
}
