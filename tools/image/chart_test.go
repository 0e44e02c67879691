package main

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// helmBin is the helm that `make tools` builds into .bin/ (from tools/helm),
// built here when it is missing.
func helmBin(t *testing.T, repo string) string {
	t.Helper()
	p := filepath.Join(repo, ".bin", "helm")
	if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
		return p
	}
	p = filepath.Join(t.TempDir(), "helm")
	cmd := exec.Command("go", "build", "-o", p, "helm.sh/helm/v3/cmd/helm")
	cmd.Dir = filepath.Join(repo, "tools", "helm")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building helm in tools/helm (or run `make tools`): %v\n%s", err, out)
	}
	return p
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestBump(t *testing.T) {
	repo := testRepo(t)
	for _, tc := range []struct {
		name, version, chartVersion string
		wantChart, wantApp, wantVER string
		wantErr                     string
	}{
		{name: "release: lockstep", version: "0.2.0", wantChart: "version: 0.2.0", wantApp: `appVersion: "0.2.0"`, wantVER: "0.2.0"},
		{name: "release with its own chart version", version: "0.2.0", chartVersion: "1.0.0", wantChart: "version: 1.0.0", wantApp: `appVersion: "0.2.0"`, wantVER: "0.2.0"},
		{name: "chart only", chartVersion: "0.1.1", wantChart: "version: 0.1.1", wantApp: "appVersion: \"" + strings.TrimSpace(readFile(t, filepath.Join(repo, "VERSION"))) + `"`},
		{name: "leading v", version: "v0.2.0", wantErr: "without a leading v"},
		{name: "not semver", chartVersion: "0.2", wantErr: "MAJOR.MINOR.PATCH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			chart := filepath.Join(tmp, "deploy", "helm", "opsight")
			copyTree(t, filepath.Join(repo, "deploy", "helm", "opsight"), chart)
			before := readFile(t, filepath.Join(repo, "VERSION"))
			if err := os.WriteFile(filepath.Join(tmp, "VERSION"), []byte(before), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := bump(tmp, chart, tc.version, tc.chartVersion)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := readFile(t, filepath.Join(chart, "Chart.yaml"))
			orig := readFile(t, filepath.Join(repo, "deploy", "helm", "opsight", "Chart.yaml"))
			for _, want := range []string{"\n" + tc.wantChart + "\n", "\n" + tc.wantApp + "\n"} {
				if !strings.Contains(got, want) {
					t.Errorf("Chart.yaml lacks %q:\n%s", strings.TrimSpace(want), got)
				}
			}
			if strings.Count(got, "\n") != strings.Count(orig, "\n") || !strings.Contains(got, "\n# ") {
				t.Errorf("Chart.yaml lost lines or comments:\n%s", got)
			}
			wantVER := strings.TrimSpace(before)
			if tc.wantVER != "" {
				wantVER = tc.wantVER
			}
			if v := strings.TrimSpace(readFile(t, filepath.Join(tmp, "VERSION"))); v != wantVER {
				t.Errorf("VERSION %q, want %q", v, wantVER)
			}
		})
	}
}

// The packaged chart is what `helm install oci://…` gets: bumped on a copy,
// packaged, and read back with helm show (chart, values, readme), its
// schema and README inside, its default image the bumped appVersion.
func TestChartPackage(t *testing.T) {
	repo := testRepo(t)
	helm := helmBin(t, repo)
	tmp := t.TempDir()
	chart := filepath.Join(tmp, "deploy", "helm", "opsight")
	copyTree(t, filepath.Join(repo, "deploy", "helm", "opsight"), chart)
	if _, err := bump(tmp, chart, "0.9.0", "0.9.1"); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(helm, args...)
		cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(tmp, "cache"), "HELM_CONFIG_HOME="+filepath.Join(tmp, "config"), "HELM_DATA_HOME="+filepath.Join(tmp, "data"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	dist := filepath.Join(tmp, "dist")
	run("package", chart, "--destination", dist)
	pkg := filepath.Join(dist, "opsight-0.9.1.tgz")
	if _, err := os.Stat(pkg); err != nil {
		t.Fatalf("helm package did not write opsight-0.9.1.tgz: %v", err)
	}
	show := run("show", "chart", pkg)
	for _, want := range []string{"name: opsight", "version: 0.9.1", "appVersion: 0.9.0"} {
		if !strings.Contains(show, want) {
			t.Errorf("helm show chart lacks %q:\n%s", want, show)
		}
	}
	if got, want := run("show", "values", pkg), readFile(t, filepath.Join(chart, "values.yaml")); strings.TrimSpace(got) != strings.TrimSpace(want) {
		t.Errorf("helm show values differs from values.yaml (%d vs %d bytes)", len(got), len(want))
	}
	if got := run("show", "readme", pkg); !strings.Contains(got, "opsight") || len(got) < 1000 {
		t.Errorf("helm show readme: %d bytes, want the chart README", len(got))
	}
	names := tgzNames(t, pkg)
	for _, want := range []string{"opsight/Chart.yaml", "opsight/values.yaml", "opsight/values.schema.json", "opsight/README.md"} {
		if !names[want] {
			t.Errorf("%s lacks %s", pkg, want)
		}
	}
	for n := range names {
		if strings.HasPrefix(n, "opsight/ci/") {
			t.Errorf("%s holds %s: .helmignore should keep the CI values out", pkg, n)
		}
	}
	// The schema is enforced from the package: a wrong type fails.
	if out, err := exec.Command(helm, "template", "x", pkg, "--set", "sidecar.logSource=nope").CombinedOutput(); err == nil || !strings.Contains(string(out), "schema") {
		t.Errorf("helm template with sidecar.logSource=nope: %v, want the packaged schema to reject it\n%.500s", err, out)
	}
	manifests := run("template", "x", pkg, "--namespace", "opsight-system")
	if !strings.Contains(manifests, "ghcr.io/opsight/operator-sidecar:0.9.0") {
		t.Errorf("the packaged chart does not deploy the image of its appVersion (ghcr.io/opsight/operator-sidecar:0.9.0)")
	}
}

func tgzNames(t *testing.T, p string) map[string]bool {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names[h.Name] = true
	}
}
