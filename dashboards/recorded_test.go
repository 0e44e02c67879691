package dashboards

import (
	"regexp"
	"sort"
	"testing"

	"github.com/opsight/opsight/alerts"
)

// recordedRe matches a recorded series name (level:metric:operations).
var recordedRe = regexp.MustCompile(`\b[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_:]*[a-zA-Z0-9_]`)

// TestRecordedSeriesHaveRules: a panel that reads a recorded series reads one
// a Prometheus rule of alerts/ records. TestRealScrape skips recorded names
// (they exist only where the rules run), so a typo would otherwise show an
// empty panel.
func TestRecordedSeriesHaveRules(t *testing.T) {
	recorded := map[string]bool{}
	for _, f := range alerts.Files() {
		if f.Backend != alerts.Prometheus {
			continue
		}
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				if r.Record != "" {
					recorded[r.Record] = true
				}
			}
		}
	}
	used := 0
	panels := promQueries(t)
	keys := make([]string, 0, len(panels))
	for k := range panels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, name := range recordedRe.FindAllString(panels[k], -1) {
			used++
			if !recorded[name] {
				t.Errorf("%s reads %s, which no rule in alerts/rules records", k, name)
			}
		}
	}
	if used == 0 {
		t.Error("no panel reads a recorded series: the log volume baselines are gone (or the pattern is wrong)")
	}
}
