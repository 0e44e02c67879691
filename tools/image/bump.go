package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// semver is what VERSION, appVersion and the chart version hold:
// MAJOR.MINOR.PATCH with an optional pre-release, no leading "v" (the git
// tag adds it: v0.2.0).
var semver = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$`)

var (
	chartVersionLine = regexp.MustCompile(`(?m)^version:[ \t]*.*$`)
	appVersionLine   = regexp.MustCompile(`(?m)^appVersion:[ \t]*.*$`)
)

// bump sets the release version in VERSION and the chart's appVersion (so
// the chart deploys the image the release builds), and the chart version.
// Chart.yaml is edited line by line so its comments stay.
func bump(repo, chartDir, version, chartVersion string) (changes []string, err error) {
	for _, v := range []struct{ flag, value string }{{"--version", version}, {"--chart-version", chartVersion}} {
		if v.value != "" && !semver.MatchString(v.value) {
			return nil, fmt.Errorf("%s %q: expected MAJOR.MINOR.PATCH without a leading v (e.g. 0.2.0)", v.flag, v.value)
		}
	}
	chartFile := filepath.Join(chartDir, "Chart.yaml")
	b, err := os.ReadFile(chartFile)
	if err != nil {
		return nil, err
	}
	chart := string(b)
	set := func(re *regexp.Regexp, key, value string) error {
		if n := len(re.FindAllString(chart, -1)); n != 1 {
			return fmt.Errorf("%s: expected one top-level %q line, found %d", chartFile, key+":", n)
		}
		old := strings.TrimSpace(strings.TrimPrefix(re.FindString(chart), key+":"))
		line := key + ": " + value
		if key == "appVersion" {
			// Quoted as helm create writes it: 1.10 must not become a float.
			line = fmt.Sprintf("%s: %q", key, value)
		}
		chart = re.ReplaceAllLiteralString(chart, line)
		changes = append(changes, fmt.Sprintf("%s %s: %s -> %s", chartFile, key, old, value))
		return nil
	}
	if version != "" {
		if err := set(appVersionLine, "appVersion", version); err != nil {
			return nil, err
		}
		if chartVersion == "" {
			// Lockstep by default: chart 0.2.0 deploys operator-sidecar 0.2.0.
			chartVersion = version
		}
	}
	if chartVersion != "" {
		if err := set(chartVersionLine, "version", chartVersion); err != nil {
			return nil, err
		}
	}
	if version != "" {
		vf := filepath.Join(repo, "VERSION")
		old, _ := os.ReadFile(vf)
		if err := os.WriteFile(vf, []byte(version+"\n"), 0o644); err != nil {
			return nil, err
		}
		changes = append(changes, fmt.Sprintf("%s: %s -> %s", vf, strings.TrimSpace(string(old)), version))
	}
	return changes, os.WriteFile(chartFile, []byte(chart), 0o644)
}

func runBump(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("image bump", flag.ContinueOnError)
	fs.SetOutput(stderr)
	repo := fs.String("repo", "", "opsight checkout (default: the one above the working directory)")
	chart := fs.String("chart", "", "chart directory (default: REPO/deploy/helm/opsight)")
	version := fs.String("version", "", "new release version: VERSION, the chart's appVersion and, unless --chart-version, the chart version")
	chartVersion := fs.String("chart-version", "", "new chart version alone (a chart-only change)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || (*version == "" && *chartVersion == "") {
		fmt.Fprintln(stderr, "image bump: give --version X (release) and/or --chart-version Y (chart only)")
		return 2
	}
	var err error
	if *repo == "" {
		if *repo, err = findRepo("."); err != nil {
			fmt.Fprintf(stderr, "image bump: %v\n", err)
			return 2
		}
	}
	if *chart == "" {
		*chart = filepath.Join(*repo, "deploy", "helm", "opsight")
	}
	changes, err := bump(*repo, *chart, *version, *chartVersion)
	if err != nil {
		fmt.Fprintf(stderr, "image bump: %v\n", err)
		return 1
	}
	for _, c := range changes {
		fmt.Fprintln(stdout, c)
	}
	return 0
}
