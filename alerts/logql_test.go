package alerts

import (
	"bufio"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/opsight/opsight/dashboards"
	"github.com/opsight/opsight/internal/riskpatterns"
)

func TestParseLogQL(t *testing.T) {
	tests := []struct {
		name, q, wantErr string
	}{
		{"log query", `{service_name=~".+", namespace="ops"} | controller="widget"`, ""},
		{"line filters", `{pod="p"} |= "error" != "debug" |~ "(?i)panic" !~ "ignored"`, ""},
		{"metric", `sum by (namespace, pod) (count_over_time({service_name=~".+"} | risk=~"(.*,)?panic(,.*)?" [5m])) > 0`, ""},
		{"nested agg", `max(sum by (pod) (rate({pod="a"}[1m]))) >= 2.5`, ""},
		{"raw string", "{pod=`a`}", ""},
		{"empty-compatible selector", `{namespace=~".*"}`, "cannot match the empty string"},
		{"missing brace", `{pod="a"`, `expected "}"`},
		{"bad regexp", `{pod=~"(["}`, "bad regexp"},
		{"bad duration", `count_over_time({pod="a"}[5x])`, "bad range duration"},
		{"unknown function", `sumx(count_over_time({pod="a"}[5m]))`, "unknown function"},
		{"trailing garbage", `{pod="a"} garbage`, "after the query"},
		{"missing threshold", `sum(count_over_time({pod="a"}[5m])) >`, "expected a number"},
		{"offset", `sum by (service_name) (count_over_time({service_name=~".+"}[5m] offset 1d))`, ""},
		{"binary", `sum by (service_name) (rate({service_name=~".+"}[5m])) / sum by (service_name) (rate({service_name=~".+"}[1h] offset 23h30m)) > 4 and sum by (service_name) (rate({service_name=~".+"}[5m])) > 1`, ""},
		{"grouping after", `sum(count_over_time({pod="a"}[5m])) by (pod) > bool 2`, ""},
		{"arithmetic", `2 * (count_over_time({pod="a"}[5m]) + 1) ^ 2 ^ 0.5 % 7 - 1e3 <= 3.5`, ""},
		{"scalar only", `1 + 1`, "empty stream selector"},
		{"scalar comparison", `1 > 1`, "need the bool modifier"},
		{"set with scalar", `count_over_time({pod="a"}[5m]) and 1`, "between vectors only"},
		{"bad offset", `count_over_time({pod="a"}[5m] offset x)`, "bad offset duration"},
		{"offset outside", `count_over_time({pod="a"}[5m]) offset 1h`, "after the query"},
		{"unclosed paren", `(count_over_time({pod="a"}[5m])`, `expected ")"`},
		{"missing operand", `count_over_time({pod="a"}[5m]) and`, "expected a number"},
		{"keyword prefix", `count_over_time({pod="a"}[5m]) andx 1`, "after the query"},
		{"bad exponent", `count_over_time({pod="a"}[5m]) > 1e`, "bad exponent"},
		{"log query operand", `{pod="a"} > 1`, "after the query"},
		{"unterminated string", `{pod="a}`, "unterminated string"},
		{"bad operator", `{pod~"a"}`, "matcher operator"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseLogQL(tt.q)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("want error containing %q, got none", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("want error containing %q, got %v", tt.wantErr, err)
			}
		})
	}
}

// TestLogQLPrecedence checks the tree through its canonical form, which
// parenthesizes every binary operand: Loki's order of operations, left
// associativity, ^ to the right, bool on comparisons.
func TestLogQLPrecedence(t *testing.T) {
	const v = `count_over_time({pod="a"} [5m])`
	for in, want := range map[string]string{
		`count_over_time({pod="a"}[5m]) / count_over_time({pod="a"}[5m] offset 1d) > 4 and count_over_time({pod="a"}[5m]) > 1`: `(((` + v + `) / (count_over_time({pod="a"} [5m] offset 1d))) > (4)) and ((` + v + `) > (1))`,
		`count_over_time({pod="a"}[5m]) ^ 2 ^ 3`:                                    `(` + v + `) ^ ((2) ^ (3))`,
		`1 - 2 - count_over_time({pod="a"}[5m])`:                                    `((1) - (2)) - (` + v + `)`,
		`1 + 2 * count_over_time({pod="a"}[5m]) % 3`:                                `(1) + (((2) * (` + v + `)) % (3))`,
		`count_over_time({pod="a"}[5m]) > bool 1 or count_over_time({pod="a"}[5m])`: `((` + v + `) > bool (1)) or (` + v + `)`,
		`(count_over_time({pod="a"}[5m]) or count_over_time({pod="a"}[5m])) and count_over_time({pod="a"}[5m]) unless count_over_time({pod="a"}[5m])`: `(((` + v + `) or (` + v + `)) and (` + v + `)) unless (` + v + `)`,
		`max(sum by (pod) (count_over_time({pod="a"}[5m]))) without (pod)`:                                                                            `max without (pod) (sum by (pod) (` + v + `))`,
	} {
		q, err := ParseLogQL(in)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if got := q.String(); got != want {
			t.Errorf("%s\n got %s\nwant %s", in, got, want)
		}
	}
}

func TestCheckLokiNames(t *testing.T) {
	for q, bad := range map[string]bool{
		`{service_name=~".+"} | risk="x"`:                        false,
		`{service_name=~".+"} | trace_id="abc"`:                  false, // metadata filter: fine
		`{trace_id="abc"}`:                                       true,  // never a stream label
		`{service_name=~".+"} | nosuch="x"`:                      true,
		`sum by (reconcile_id) (count_over_time({pod="a"}[5m]))`: true,
		// every operand of a binary expression is checked
		`count_over_time({pod="a"}[5m]) / count_over_time({trace_id="x"}[5m])`:                true,
		`count_over_time({pod="a"}[5m]) > 1 and sum by (span_id) (rate({pod="a"}[5m]))`:       true,
		`count_over_time({pod="a"}[5m]) / count_over_time({pod="a"} | trace_id="x" [5m]) > 1`: false,
	} {
		parsed, err := ParseLogQL(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if err := CheckLokiNames(parsed); (err != nil) != bad {
			t.Errorf("%s: error %v, want error: %v", q, err, bad)
		}
	}
}

// TestDashboardLogQueryParses checks the dashboard's LogQL both as stored
// (with $variables) and as Grafana sends it with every variable on "All".
func TestDashboardLogQueryParses(t *testing.T) {
	raw := dashboards.LogsQuery()
	for _, q := range []string{raw, substituteAll(raw)} {
		parsed, err := ParseLogQL(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if err := CheckLokiNames(parsed); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	parsed, _ := ParseLogQL(substituteAll(raw))
	stream := map[string]string{"service_name": "op", "namespace": "ops"}
	if !parsed.MatchEntry("any line", stream, nil) {
		t.Error(`with every variable on "All" the log panel must show lines without risk or controller metadata`)
	}
}

func substituteAll(q string) string {
	for _, v := range []string{"cluster", "namespace", "revision", "controller", "risk"} {
		q = strings.ReplaceAll(q, "$"+v, ".*")
	}
	return q
}

// riskOf is the sidecar's matching semantics (internal/riskpatterns): a
// pattern matches when the line contains any needle, ASCII
// case-insensitively; the risk metadata lists matching ids in catalogue order.
func riskOf(line string) string {
	l := asciiLower(line)
	var ids []string
	for _, p := range riskpatterns.Default {
		for _, n := range p.Needles {
			if strings.Contains(l, asciiLower(n)) {
				ids = append(ids, p.ID)
				break
			}
		}
	}
	return strings.Join(ids, ",")
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

type fixtureLine struct {
	id, line string
	match    bool
}

func readFixtures(t *testing.T) []fixtureLine {
	t.Helper()
	f, err := os.Open("testdata/risk-lines.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []fixtureLine
	id := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			id = line[1 : len(line)-1]
			if _, ok := riskpatterns.ByID(id); !ok {
				t.Fatalf("risk-lines.txt:%d: %q is not a pattern id", n, id)
			}
		case strings.HasPrefix(line, "+ "), strings.HasPrefix(line, "- "):
			if id == "" {
				t.Fatalf("risk-lines.txt:%d: line before any [id]", n)
			}
			out = append(out, fixtureLine{id, line[2:], line[0] == '+'})
		default:
			t.Fatalf("risk-lines.txt:%d: want \"[id]\", \"+ line\" or \"- line\"", n)
		}
	}
	return out
}

// TestRiskRulesMatchFixtureLines evaluates each pattern's Loki rule on lines
// that must and must not match it, with the risk metadata the sidecar would
// write, and checks every rule against every line: a rule fires exactly for
// lines its pattern's needles match (so no id can match inside another).
func TestRiskRulesMatchFixtureLines(t *testing.T) {
	rules := map[string]*LogQuery{}
	for _, p := range riskpatterns.Default {
		q, err := ParseLogQL(RiskExpr(p))
		if err != nil {
			t.Fatalf("%s: %v", p.ID, err)
		}
		// sum by (…) (count_over_time(<log query> [w])) > n: the log query.
		if q.Op != ">" || q.LHS.RangeOp != "count_over_time" || !q.RHS.IsScalar {
			t.Fatalf("%s: %s is not a count compared with a number", p.ID, q)
		}
		rules[p.ID] = q.LHS
	}
	lines := readFixtures(t)
	pos, neg := map[string]int{}, map[string]int{}
	stream := map[string]string{"service_name": "widget-operator", "namespace": "ops", "pod": "op-0", "cluster": "c1"}
	for _, fl := range lines {
		meta := map[string]string{}
		if r := riskOf(fl.line); r != "" {
			meta["risk"] = r
		}
		if got := rules[fl.id].MatchEntry(fl.line, stream, meta); got != fl.match {
			t.Errorf("pattern %s: rule matched=%v, want %v, for line %q (risk=%q)", fl.id, got, fl.match, fl.line, meta["risk"])
		}
		if fl.match {
			pos[fl.id]++
		} else {
			neg[fl.id]++
		}
		for _, p := range riskpatterns.Default {
			want := strings.Contains(","+meta["risk"]+",", ","+p.ID+",")
			if got := rules[p.ID].MatchEntry(fl.line, stream, meta); got != want {
				t.Errorf("rule %s on line %q (risk=%q): matched=%v, want %v", p.ID, fl.line, meta["risk"], got, want)
			}
		}
	}
	for _, p := range riskpatterns.Default {
		if pos[p.ID] == 0 || neg[p.ID] == 0 {
			t.Errorf("pattern %s: testdata/risk-lines.txt needs at least one matching and one non-matching line (has %d/%d)", p.ID, pos[p.ID], neg[p.ID])
		}
	}
	// Lines from streams the sidecar did not write (no service_name) never match.
	if rules["panic"].MatchEntry("panic: x", map[string]string{"namespace": "ops"}, map[string]string{"risk": "panic"}) {
		t.Error("a stream without service_name matched")
	}
}

func FuzzParseLogQL(f *testing.F) {
	for _, p := range riskpatterns.Default {
		f.Add(RiskExpr(p))
	}
	f.Add(dashboards.LogsQuery())
	f.Add(`{pod="a"} |= "x" |~ "(" `)
	f.Add(LokiLogVolumeExpr())
	f.Add(LokiLogVolumeSpikeExpr())
	f.Add(`2 * (count_over_time({pod="a"}[5m] offset 1d) + 1) ^ 2 ^ 0.5 > bool 3 or sum(rate({pod="b"} |= "x" | level="error" [1m])) by (pod) unless max without (pod) (bytes_rate({pod="c"}[1h]))`)
	f.Add(`sum(count_over_time({pod="a"}[5m])) by (pod) % 1e3 <= 2.5e-1`)
	f.Fuzz(func(t *testing.T, q string) {
		parsed, err := ParseLogQL(q)
		if err != nil {
			return
		}
		// A query that parses reads logs somewhere, and every part of it
		// can be evaluated without panicking.
		selectors := 0
		parsed.Walk(func(n *LogQuery) {
			if len(n.Selector) > 0 {
				selectors++
			}
			n.MatchEntry(q, map[string]string{"pod": "a"}, map[string]string{"risk": "panic"})
		})
		if selectors == 0 {
			t.Fatalf("parsed %q without a selector", q)
		}
		_ = CheckLokiNames(parsed)
		// Its canonical form parses back to the same query.
		s := parsed.String()
		again, err := ParseLogQL(s)
		if err != nil {
			t.Fatalf("%q parsed, its String %q does not: %v", q, s, err)
		}
		if s2 := again.String(); s2 != s {
			t.Fatalf("%q: String %q, reparsed %q", q, s, s2)
		}
	})
}

// FuzzEvalLogQL evaluates whatever parses on a few entries (the test
// evaluator the Loki alert tests use): no panic, and a metric query's
// value is a vector or a number, never both.
func FuzzEvalLogQL(f *testing.F) {
	f.Add(LokiLogVolumeSpikeExpr())
	f.Add(`sum by (pod) (count_over_time({pod=~".+"} |= "x" [5m] offset 1h)) / 2 > bool 0.5`)
	f.Add(`count_over_time({pod="a"}[1m]) or rate({pod="b"}[1m]) unless count_over_time({pod="a"}[1m]) ^ 2`)
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var entries []testEntry
	for i := 0; i < 50; i++ {
		pod := []string{"a", "b"}[i%2]
		entries = append(entries, testEntry{ts: t0.Add(-time.Duration(i) * 97 * time.Second), line: "x" + pod,
			stream: map[string]string{"pod": pod, "service_name": "svc-" + pod}, meta: map[string]string{"level": "error"}})
	}
	f.Fuzz(func(t *testing.T, q string) {
		parsed, err := ParseLogQL(q)
		if err != nil || !parsed.IsMetric() {
			return
		}
		v, err := evalLogQL(parsed, t0, entries)
		if err != nil {
			t.Fatalf("%q: %v", q, err)
		}
		if v.scalar && v.vec != nil {
			t.Fatalf("%q: both a number and a vector", q)
		}
	})
}
