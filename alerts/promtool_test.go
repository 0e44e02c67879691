package alerts

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/opsight/opsight/internal/testservers"
)

// TestPromtoolCheckRules runs the real `promtool check rules` on every
// Prometheus rule file as generated (annotation templates included).
func TestPromtoolCheckRules(t *testing.T) {
	promtool := testservers.Promtool.MustPath(t)
	dir := t.TempDir()
	var paths []string
	for _, f := range Files() {
		if f.Backend != Prometheus {
			continue
		}
		b, err := f.YAML()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, f.Name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	out, err := exec.Command(promtool, append([]string{"check", "rules"}, paths...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

// TestPromtoolRuleUnitTests runs `promtool test rules` on tests/*.yaml.
// promtool compares annotations verbatim, so the tests run against copies of
// the rule files without annotations; annotations are checked by
// TestAlertsCarryLabelsAndLinks and `promtool check rules` (templates).
func TestPromtoolRuleUnitTests(t *testing.T) {
	promtool := testservers.Promtool.MustPath(t)
	dir := t.TempDir()
	for _, f := range Files() {
		if f.Backend != Prometheus {
			continue
		}
		stripped := f
		stripped.Groups = nil
		for _, g := range f.Groups {
			ng := g
			ng.Rules = nil
			for _, r := range g.Rules {
				r.Annotations = nil
				ng.Rules = append(ng.Rules, r)
			}
			stripped.Groups = append(stripped.Groups, ng)
		}
		b, err := stripped.YAML()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f.Name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests, err := filepath.Glob(filepath.Join("tests", "*.yaml"))
	if err != nil || len(tests) == 0 {
		t.Fatalf("no tests/*.yaml (%v)", err)
	}
	for _, src := range tests {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, "test-"+filepath.Base(src))
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Run(filepath.Base(src), func(t *testing.T) {
			t.Parallel()
			out, err := exec.Command(promtool, "test", "rules", dst).CombinedOutput()
			if err != nil {
				t.Fatalf("promtool test rules %s: %v\n%s", src, err, out)
			}
		})
	}
}

type unitTestFile struct {
	Tests []struct {
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []struct {
				ExpLabels map[string]string `yaml:"exp_labels"`
			} `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// TestEveryPrometheusAlertIsTested requires, per alert, a promtool case where
// it fires and one where it must stay silent, and for the burn-rate alerts a
// firing case for every window.
func TestEveryPrometheusAlertIsTested(t *testing.T) {
	fires, silent := map[string]bool{}, map[string]bool{}
	windows := map[string]bool{}
	paths, _ := filepath.Glob(filepath.Join("tests", "*.yaml"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var u unitTestFile
		if err := yaml.Unmarshal(b, &u); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for _, tc := range u.Tests {
			for _, a := range tc.AlertRuleTest {
				if len(a.ExpAlerts) == 0 {
					silent[a.Alertname] = true
				}
				for _, e := range a.ExpAlerts {
					fires[a.Alertname] = true
					if w := e.ExpLabels["long_window"]; w != "" {
						windows[a.Alertname+"/"+w+"/"+e.ExpLabels["short_window"]] = true
					}
				}
			}
		}
	}
	var missing []string
	for _, f := range Files() {
		if f.Backend != Prometheus {
			continue
		}
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				if !fires[r.Alert] {
					missing = append(missing, r.Alert+": no case where it fires")
				}
				if !silent[r.Alert] {
					missing = append(missing, r.Alert+": no case where it must not fire")
				}
				if w := r.Labels["long_window"]; w != "" && !windows[r.Alert+"/"+w+"/"+r.Labels["short_window"]] {
					missing = append(missing, r.Alert+": window "+w+"/"+r.Labels["short_window"]+" never fires")
				}
			}
		}
	}
	sort.Strings(missing)
	missing = dedup(missing)
	if len(missing) > 0 {
		t.Errorf("alerts/tests/*.yaml lacks:\n%s", strings.Join(missing, "\n"))
	}
}

func dedup(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
