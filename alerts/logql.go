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
// and the tests instead of the Loki ruler at deploy time. The grammar
// follows Loki's LogQL documentation: log queries
// (https://grafana.com/docs/loki/latest/query/log_queries/), metric queries
// with range and vector aggregations and the offset modifier
// (https://grafana.com/docs/loki/latest/query/metric_queries/: "The offset
// modifier allows changing the time offset for individual range vectors in
// a query", `count_over_time({job="mysql"}[5m] offset 1h)`), and binary
// operators with their order of operations
// (https://grafana.com/docs/loki/latest/query/query_reference/#binary-operators:
// `^` binds tightest, then `* / %`, `+ -`, the comparisons, `and unless`,
// and `or` loosest; all left-associative but `^`; comparisons may carry
// `bool`; `and`, `or` and `unless` are defined between vectors only):
//
//	query     = logExpr | expr
//	expr      = operand { binOp [ "bool" ] operand }      (precedence above)
//	binOp     = "or" | "and" | "unless" | "==" | "!=" | ">=" | "<=" | ">" | "<"
//	          | "+" | "-" | "*" | "/" | "%" | "^"
//	operand   = number | "(" expr ")" | aggr
//	aggr      = aggOp [ grouping ] "(" aggr ")" [ grouping ] | rangeAgg
//	grouping  = ("by" | "without") "(" ident {"," ident} ")"
//	rangeAgg  = rangeOp "(" logExpr "[" duration "]" [ "offset" duration ] ")"
//	logExpr   = "{" matcher {"," matcher} "}" { stage }
//	stage     = "|" matcher | ("|=" | "!=" | "|~" | "!~") string
//	matcher   = ident ("=" | "!=" | "=~" | "!~") string
//
// Not covered (opsight does not generate them): parsers and formatters
// (| json, | line_format …), unwrap, vector matching (on, ignoring,
// group_left), aggregations over a binary expression, functions other than
// the aggregations below. Regular expressions are Go RE2, like Loki's, and
// label matchers are fully anchored.

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

// LogQuery is a parsed query: a log query, a metric query (range
// aggregation under zero or more vector aggregations), a number, or a
// binary expression of those.
type LogQuery struct {
	Selector     []LogMatcher
	LabelFilters []LogMatcher
	LineFilters  []LogLineFilter
	// Metric part; empty for a log query.
	Aggs     []string      // outermost first, e.g. ["sum"]
	AggBy    []LogGrouping // one per Aggs entry (zero value: no grouping)
	Grouping []string      // every label any of Aggs groups by
	RangeOp  string
	Range    string
	Offset   string // the range's offset modifier, "" if none

	// A binary expression: LHS Op RHS (Bool: a comparison with `bool`);
	// the fields above are then empty.
	Op       string
	Bool     bool
	LHS, RHS *LogQuery
	// A number literal (IsScalar); the fields above are then empty.
	IsScalar bool
	Scalar   float64
}

// LogGrouping is an aggregation's by (…) or without (…) clause.
type LogGrouping struct {
	Without bool
	Labels  []string
}

// IsMetric reports whether the query returns samples rather than log lines.
func (q *LogQuery) IsMetric() bool {
	return q.RangeOp != "" || q.Op != "" || q.IsScalar
}

// Walk calls f on q and every sub-expression, LHS before RHS.
func (q *LogQuery) Walk(f func(*LogQuery)) {
	f(q)
	if q.LHS != nil {
		q.LHS.Walk(f)
	}
	if q.RHS != nil {
		q.RHS.Walk(f)
	}
}

// MatchEntry evaluates the log part of the query on one entry: stream labels
// and structured metadata both act as labels in label filters.
// A number or a binary expression matches no entry.
func (q *LogQuery) MatchEntry(line string, stream, metadata map[string]string) bool {
	if q.Op != "" || q.IsScalar || len(q.Selector) == 0 {
		return false
	}
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
	// Binary operators by precedence, loosest first (Loki's order of
	// operations); within a level the longer spelling is tried first.
	binOpLevels = [][]string{{"or"}, {"and", "unless"}, {"==", "!=", ">=", "<=", ">", "<"}, {"+", "-"}, {"*", "/", "%"}, {"^"}}
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
	var q *LogQuery
	var err error
	p.ws()
	if p.peek() == '{' {
		q = &LogQuery{}
		err = p.logExpr(q)
	} else {
		q, err = p.expr(0)
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

// validate checks what the grammar does not: every selector can select
// something, set operators join vectors, comparing two numbers needs bool,
// and the query reads logs somewhere.
func (q *LogQuery) validate() error {
	selectors := 0
	var err error
	q.Walk(func(n *LogQuery) {
		if err != nil {
			return
		}
		switch {
		case n.Op != "":
			err = n.validateBinary()
		case !n.IsScalar:
			selectors++
			err = n.validateSelector()
		}
	})
	if err != nil {
		return err
	}
	if selectors == 0 {
		return fmt.Errorf("logql: empty stream selector")
	}
	return nil
}

func (q *LogQuery) validateBinary() error {
	switch q.Op {
	case "and", "or", "unless":
		if q.LHS.IsScalar || q.RHS.IsScalar {
			return fmt.Errorf("logql: %q is defined between vectors only", q.Op)
		}
	case "==", "!=", ">=", "<=", ">", "<":
		if q.LHS.IsScalar && q.RHS.IsScalar && !q.Bool {
			return fmt.Errorf("logql: comparisons between numbers need the bool modifier")
		}
	}
	return nil
}

func (q *LogQuery) validateSelector() error {
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

// keyword accepts a word only when no identifier character follows it
// ("by" is not the start of "bytes_rate").
func (p *logParser) keyword(w string) bool {
	p.ws()
	if !strings.HasPrefix(p.s[p.pos:], w) {
		return false
	}
	if end := p.pos + len(w); end < len(p.s) && isIdentChar(p.s[end]) {
		return false
	}
	p.pos += len(w)
	return true
}

func isIdentChar(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
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

// expr parses a binary expression whose operators bind at least as
// tightly as binOpLevels[level] (precedence climbing).
func (p *logParser) expr(level int) (*LogQuery, error) {
	if level == len(binOpLevels) {
		return p.operand()
	}
	lhs, err := p.expr(level + 1)
	if err != nil {
		return nil, err
	}
	for {
		op := p.binOp(binOpLevels[level])
		if op == "" {
			return lhs, nil
		}
		n := &LogQuery{Op: op, LHS: lhs}
		if level == 2 {
			n.Bool = p.keyword("bool")
		}
		next := level + 1
		if op == "^" {
			next = level // right-associative
		}
		if n.RHS, err = p.expr(next); err != nil {
			return nil, err
		}
		lhs = n
	}
}

// binOp accepts one of ops; words must stand alone, and "|" stages or "=~"
// are not operators.
func (p *logParser) binOp(ops []string) string {
	p.ws()
	for _, op := range ops {
		if isIdentChar(op[0]) {
			if p.keyword(op) {
				return op
			}
			continue
		}
		if strings.HasPrefix(p.s[p.pos:], op) {
			p.pos += len(op)
			return op
		}
	}
	return ""
}

func (p *logParser) operand() (*LogQuery, error) {
	p.ws()
	switch c := p.peek(); {
	case c == '(':
		p.pos++
		q, err := p.expr(0)
		if err != nil {
			return nil, err
		}
		return q, p.expect(")")
	case c >= '0' && c <= '9' || c == '.':
		v, err := p.number()
		if err != nil {
			return nil, err
		}
		return &LogQuery{IsScalar: true, Scalar: v}, nil
	}
	if !isIdentChar(p.peek()) {
		return nil, p.errf("expected a number, \"(\" or a function, found %q", p.rest(10))
	}
	q := &LogQuery{}
	return q, p.aggr(q)
}

// number parses an unsigned decimal literal: digits, a fraction, an exponent.
func (p *logParser) number() (float64, error) {
	start := p.pos
	digits := func() int {
		n := 0
		for p.pos < len(p.s) && p.s[p.pos] >= '0' && p.s[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	n := digits()
	if p.peek() == '.' {
		p.pos++
		n += digits()
	}
	if n == 0 {
		return 0, p.errf("expected a number, found %q", p.rest(10))
	}
	if c := p.peek(); c == 'e' || c == 'E' {
		p.pos++
		if c := p.peek(); c == '+' || c == '-' {
			p.pos++
		}
		if digits() == 0 {
			return 0, p.errf("bad exponent in %q", p.s[start:p.pos])
		}
	}
	v, err := strconv.ParseFloat(p.s[start:p.pos], 64)
	if err != nil {
		return 0, p.errf("bad number %q", p.s[start:p.pos])
	}
	return v, nil
}

// duration parses a Prometheus-style duration (5m, 1h30m, 1d).
func (p *logParser) duration(what string) (string, error) {
	p.ws()
	start := p.pos
	for p.pos < len(p.s) && (p.s[p.pos] >= '0' && p.s[p.pos] <= '9' || p.s[p.pos] >= 'a' && p.s[p.pos] <= 'z') {
		p.pos++
	}
	d := p.s[start:p.pos]
	if !durationRe.MatchString(d) {
		return "", p.errf("bad %s duration %q", what, d)
	}
	return d, nil
}

func (p *logParser) grouping() (LogGrouping, bool, error) {
	var g LogGrouping
	switch {
	case p.keyword("by"):
	case p.keyword("without"):
		g.Without = true
	default:
		return g, false, nil
	}
	if err := p.expect("("); err != nil {
		return g, true, err
	}
	for {
		l, err := p.ident()
		if err != nil {
			return g, true, err
		}
		g.Labels = append(g.Labels, l)
		if p.accept(",") {
			continue
		}
		return g, true, p.expect(")")
	}
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
		if q.Range, err = p.duration("range"); err != nil {
			return err
		}
		if err := p.expect("]"); err != nil {
			return err
		}
		if p.keyword("offset") {
			if q.Offset, err = p.duration("offset"); err != nil {
				return err
			}
		}
		return p.expect(")")
	}
	if !logAggOps[name] {
		return p.errf("unknown function %q", name)
	}
	i := len(q.Aggs)
	q.Aggs = append(q.Aggs, name)
	q.AggBy = append(q.AggBy, LogGrouping{})
	g, ok, err := p.grouping()
	if err != nil {
		return err
	}
	if err := p.expect("("); err != nil {
		return err
	}
	if err := p.aggr(q); err != nil {
		return err
	}
	if err := p.expect(")"); err != nil {
		return err
	}
	if !ok { // Loki also takes the clause after the parentheses
		if g, ok, err = p.grouping(); err != nil {
			return err
		}
	}
	if ok {
		q.AggBy[i] = g
		q.Grouping = append(q.Grouping, g.Labels...)
	}
	return nil
}

// String renders the query in a canonical form that ParseLogQL reads back
// to the same query: line filters before label filters (both are filters,
// so their order does not change the result), binary operands in
// parentheses, strings double-quoted.
func (q *LogQuery) String() string {
	var b strings.Builder
	q.write(&b)
	return b.String()
}

func (q *LogQuery) write(b *strings.Builder) {
	switch {
	case q.IsScalar:
		b.WriteString(strconv.FormatFloat(q.Scalar, 'g', -1, 64))
		return
	case q.Op != "":
		b.WriteByte('(')
		q.LHS.write(b)
		b.WriteString(") " + q.Op)
		if q.Bool {
			b.WriteString(" bool")
		}
		b.WriteString(" (")
		q.RHS.write(b)
		b.WriteByte(')')
		return
	}
	for i, a := range q.Aggs {
		b.WriteString(a)
		if g := q.AggBy[i]; len(g.Labels) > 0 {
			if g.Without {
				b.WriteString(" without (")
			} else {
				b.WriteString(" by (")
			}
			b.WriteString(strings.Join(g.Labels, ", ") + ")")
		}
		b.WriteString(" (")
	}
	if q.RangeOp != "" {
		b.WriteString(q.RangeOp + "(")
	}
	b.WriteByte('{')
	for i, m := range q.Selector {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(m.Name + m.Op + strconv.Quote(m.Value))
	}
	b.WriteByte('}')
	for _, f := range q.LineFilters {
		b.WriteString(" " + f.Op + " " + strconv.Quote(f.Value))
	}
	for _, m := range q.LabelFilters {
		b.WriteString(" | " + m.Name + m.Op + strconv.Quote(m.Value))
	}
	if q.RangeOp != "" {
		b.WriteString(" [" + q.Range + "]")
		if q.Offset != "" {
			b.WriteString(" offset " + q.Offset)
		}
		b.WriteByte(')')
	}
	for range q.Aggs {
		b.WriteByte(')')
	}
}
