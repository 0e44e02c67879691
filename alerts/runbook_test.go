package alerts

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/riskpatterns"
)

// githubAnchor is GitHub's heading slug: lower case, spaces to '-', other
// punctuation dropped.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

var htmlAnchorRe = regexp.MustCompile(`<a (?:id|name)="([^"]+)"`)

// anchors lists the anchors of a markdown file: headings and <a id>.
func anchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("runbook %s: %v", path, err)
	}
	out := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "#") {
			out[githubAnchor(strings.TrimLeft(line, "#"))] = true
		}
		for _, m := range htmlAnchorRe.FindAllStringSubmatch(line, -1) {
			out[m[1]] = true
		}
	}
	return out
}

func TestEveryRunbookURLHasItsAnchor(t *testing.T) {
	cache := map[string]map[string]bool{}
	alerts := Alerts()
	if len(alerts) < len(riskpatterns.Default)+10 {
		t.Fatalf("only %d alerts generated", len(alerts))
	}
	for _, r := range alerts {
		u := r.Annotations["runbook_url"]
		rel, ok := strings.CutPrefix(u, RunbookBaseURL)
		if !ok {
			t.Errorf("%s: runbook_url %q does not start with %s", r.Alert, u, RunbookBaseURL)
			continue
		}
		file, anchor, ok := strings.Cut(rel, "#")
		if !ok || anchor == "" {
			t.Errorf("%s: runbook_url %q has no anchor", r.Alert, u)
			continue
		}
		if cache[file] == nil {
			cache[file] = anchors(t, filepath.Join("..", "docs", "runbooks", file))
		}
		if !cache[file][anchor] {
			t.Errorf("%s: docs/runbooks/%s has no anchor #%s", r.Alert, file, anchor)
		}
	}
}

func TestAlertsCarryLabelsAndLinks(t *testing.T) {
	uids := []string{conventions.DashboardGoldenSignals, conventions.DashboardReleaseComparison, conventions.DashboardSidecarHealth}
	for _, r := range Alerts() {
		switch r.Labels["severity"] {
		case "critical", "warning", "info":
		default:
			t.Errorf("%s: severity %q", r.Alert, r.Labels["severity"])
		}
		for _, k := range []string{"summary", "description", "runbook_url", "dashboard_url"} {
			if strings.TrimSpace(r.Annotations[k]) == "" {
				t.Errorf("%s: annotation %s missing", r.Alert, k)
			}
		}
		ok := false
		for _, uid := range uids {
			if strings.HasPrefix(r.Annotations["dashboard_url"], GrafanaURL+"/d/"+uid) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("%s: dashboard_url %q names no opsight dashboard", r.Alert, r.Annotations["dashboard_url"])
		}
	}
}

func TestEveryRiskPatternHasRunbookTextAndAlert(t *testing.T) {
	alerts := map[string]Rule{}
	for _, r := range Alerts() {
		alerts[r.Alert] = r
	}
	for _, p := range riskpatterns.Default {
		if _, ok := riskAdvice[p.ID]; !ok {
			t.Errorf("pattern %s: no runbook text in riskAdvice", p.ID)
		}
		r, ok := alerts[RiskAlertName(p.ID)]
		if !ok {
			t.Errorf("pattern %s: no alert %s", p.ID, RiskAlertName(p.ID))
			continue
		}
		if r.Labels["severity"] != string(p.Severity) || r.Labels["pattern"] != p.ID {
			t.Errorf("pattern %s: alert labels %v", p.ID, r.Labels)
		}
		if !strings.HasSuffix(r.Annotations["runbook_url"], "#"+p.RunbookAnchor()) {
			t.Errorf("pattern %s: runbook_url %s does not end in #%s", p.ID, r.Annotations["runbook_url"], p.RunbookAnchor())
		}
	}
	for id := range riskAdvice {
		if _, ok := riskpatterns.ByID(id); !ok {
			t.Errorf("riskAdvice has %q, which is not in riskpatterns.Default: remove it", id)
		}
	}
}

func TestRunbookAnchorCheckerFindsMissingAnchors(t *testing.T) {
	// The checker itself must be able to fail.
	dir := t.TempDir()
	p := filepath.Join(dir, "x.md")
	if err := os.WriteFile(p, []byte("# Title\n\n## OperatorFoo\n<a id=\"risk-bar\"></a>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := anchors(t, p)
	for _, want := range []string{"title", "operatorfoo", "risk-bar"} {
		if !a[want] {
			t.Errorf("anchor %s not found", want)
		}
	}
	if a["operatorbar"] {
		t.Error("found an anchor that is not there")
	}
}
