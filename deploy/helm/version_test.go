package helm

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// semver is the form of VERSION: MAJOR.MINOR.PATCH with an optional
// pre-release, no leading "v" (the git tag adds it: v0.1.0).
var semver = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$`)

// The VERSION file is the single source of the release version: the image
// builder stamps it into the binaries and tags the image with it, and the
// chart deploys image tag = appVersion. This test fails when they drift;
// `cd tools/image && go run . bump --version X` moves them together.
func TestVersionAgreement(t *testing.T) {
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "VERSION"))
	if err != nil {
		t.Fatalf("the VERSION file at the repository root is the release version: %v", err)
	}
	version := strings.TrimSpace(string(b))
	if !semver.MatchString(version) {
		t.Fatalf("VERSION %q: expected MAJOR.MINOR.PATCH without a leading v (e.g. 0.1.0)", version)
	}

	var chart struct {
		Version    string `json:"version"`
		AppVersion string `json:"appVersion"`
	}
	b, err = os.ReadFile(filepath.Join(chartDir(t), "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &chart); err != nil {
		t.Fatalf("Chart.yaml: %v", err)
	}
	if chart.AppVersion != version {
		t.Errorf("Chart.yaml appVersion %q, VERSION %q: the chart would deploy another image than the release builds; run `cd tools/image && go run . bump --version %s`", chart.AppVersion, version, version)
	}
	if !semver.MatchString(chart.Version) {
		t.Errorf("Chart.yaml version %q: helm needs SemVer 2 (e.g. 0.1.0)", chart.Version)
	}

	// An empty image.tag is what makes the chart's image follow appVersion.
	var values struct {
		Image struct {
			Tag string `json:"tag"`
		} `json:"image"`
	}
	b, err = os.ReadFile(filepath.Join(chartDir(t), "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	if values.Image.Tag != "" {
		t.Errorf("values.yaml image.tag %q: leave it empty so the chart deploys its appVersion %q", values.Image.Tag, chart.AppVersion)
	}
}
