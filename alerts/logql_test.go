package alerts

import (
	"bufio"
	"os"
	"strings"
	"testing"

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

func TestCheckLokiNames(t *testing.T) {
	for q, bad := range map[string]bool{
		`{service_name=~".+"} | risk="x"`:                        false,
		`{service_name=~".+"} | trace_id="abc"`:                  false, // metadata filter: fine
		`{trace_id="abc"}`:                                       true,  // never a stream label
		`{service_name=~".+"} | nosuch="x"`:                      true,
		`sum by (reconcile_id) (count_over_time({pod="a"}[5m]))`: true,
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
		rules[p.ID] = q
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
	f.Fuzz(func(t *testing.T, q string) {
		parsed, err := ParseLogQL(q)
		if err != nil {
			return
		}
		// A query that parses can be evaluated without panicking.
		parsed.MatchEntry(q, map[string]string{"pod": "a"}, map[string]string{"risk": "panic"})
		if len(parsed.Selector) == 0 {
			t.Fatalf("parsed %q without a selector", q)
		}
	})
}
