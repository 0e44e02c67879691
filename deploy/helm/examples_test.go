package helm

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var updateExamples = flag.Bool("update-examples", false, "rewrite deploy/helm/examples/ from helm template")

// Rendered examples: what `helm template` makes of each ci/ values file,
// committed under deploy/helm/examples/ so users (and reviewers of a chart
// change) can read the manifests without running helm.
const (
	examplesDir      = "deploy/helm/examples"
	exampleRelease   = "opsight"
	exampleNamespace = "opsight-system"
	maskedValue      = "MASKED-generated-per-render"
)

// generatedCert matches the values genCA/genSignedCert produce on every
// render (the webhook Secret's ca.crt, tls.crt, tls.key and the
// MutatingWebhookConfiguration's caBundle): base64 of a PEM block.
var generatedCert = regexp.MustCompile(`(?m)^(\s+(?:ca\.crt|tls\.crt|tls\.key|caBundle): )LS0tLS1CRUdJTi[A-Za-z0-9+/=]+$`)

// renderExample returns the committed form of one ci/ values file's render.
func renderExample(t *testing.T, values string) []byte {
	t.Helper()
	out, err := helmCmd(t, "template", exampleRelease, chartDir(t), "--namespace", exampleNamespace, "-f", ciValues(t, values))
	if err != nil {
		t.Fatal(err)
	}
	masked := generatedCert.ReplaceAllString(out, "${1}"+maskedValue)
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Generated: helm template %s deploy/helm/opsight --namespace %s -f deploy/helm/opsight/ci/%s\n", exampleRelease, exampleNamespace, values)
	b.WriteString("# DO NOT EDIT. Regenerate with: go test ./deploy/helm -run TestChartExamples -update-examples\n")
	if masked != out {
		fmt.Fprintf(&b, "# The chart's Helm-generated webhook certificate (genCA/genSignedCert: ca.crt, tls.crt, tls.key,\n# caBundle) differs on every render; those values are replaced by %s here.\n", maskedValue)
	}
	b.WriteString(masked)
	return b.Bytes()
}

// TestChartExamples fails when a committed example differs from what the
// chart renders now, or when a ci/ values file has no example (or an example
// no values file).
func TestChartExamples(t *testing.T) {
	root := repoRoot(t)
	values, err := filepath.Glob(filepath.Join(chartDir(t), "ci", "*.yaml"))
	if err != nil || len(values) == 0 {
		t.Fatalf("no ci values files: %v", err)
	}
	want := map[string]bool{}
	for _, v := range values {
		name := filepath.Base(v)
		want[name] = true
		t.Run(name, func(t *testing.T) {
			got := renderExample(t, name)
			path := filepath.Join(root, examplesDir, name)
			if *updateExamples {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			committed, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v: run go test ./deploy/helm -run TestChartExamples -update-examples", err)
			}
			if !bytes.Equal(committed, got) {
				t.Errorf("%s/%s is stale: %s; run go test ./deploy/helm -run TestChartExamples -update-examples", examplesDir, name, firstDiff(committed, got))
			}
			if generatedCert.Match(got) {
				t.Errorf("%s still carries a generated certificate", name)
			}
		})
	}
	entries, err := os.ReadDir(filepath.Join(root, examplesDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !want[e.Name()] {
			t.Errorf("%s/%s has no ci/ values file; delete it", examplesDir, e.Name())
		}
	}
}

// TestChartExamplesAreDeterministic: two renders are equal once masked, so the
// examples cannot drift by themselves (new random output would need masking).
func TestChartExamplesAreDeterministic(t *testing.T) {
	a, b := renderExample(t, "minimal.yaml"), renderExample(t, "minimal.yaml")
	if !bytes.Equal(a, b) {
		t.Fatalf("two renders differ after masking: %s", firstDiff(a, b))
	}
	if !bytes.Contains(a, []byte(maskedValue)) {
		t.Error("minimal.yaml renders a Helm-generated certificate, but nothing was masked: the mask no longer matches the chart")
	}
}

func firstDiff(a, b []byte) string {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d: committed %.120q, rendered %.120q", i+1, x, y)
		}
	}
	return "equal"
}
