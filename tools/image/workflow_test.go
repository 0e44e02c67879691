package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The workflows and the composite action, checked by actionlint (pinned in
// this module's go.mod as a tool): expressions, contexts, permissions,
// action inputs (the local releasegate action's too). Shellcheck is left
// out so the result is the same on a machine without it and on GitHub's
// runners, which have it.
func TestWorkflows(t *testing.T) {
	repo := testRepo(t)
	files, err := filepath.Glob(filepath.Join(repo, ".github", "workflows", "*.yml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("want ci.yml and release.yml under .github/workflows, found %v (%v)", files, err)
	}
	cmd := exec.Command("go", append([]string{"tool", "actionlint", "-no-color", "-shellcheck=", "-pyflakes="}, files...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("actionlint: %v\n%s", err, out)
	}

	// What each workflow must do, so an edit cannot silently drop a step.
	for _, tc := range []struct {
		file string
		want []string
	}{
		{"ci.yml", []string{"pull_request:", "bash .ci/run", "uses: ./.github/actions/releasegate"}},
		{"release.yml", []string{`tags: ["v*"]`, `"v$version"`, "TestVersionAgreement", "go run . build", "go run . push",
			"--password-stdin", "cosign sign", "cosign attest", "helm package", "helm push", "packages: write", "id-token: write"}},
	} {
		b, err := os.ReadFile(filepath.Join(repo, ".github", "workflows", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.want {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s no longer contains %q", tc.file, w)
			}
		}
		// A secret may only be an env value: spliced into a script it ends
		// up in the shell's command line and, quoted wrong, in the log.
		envSecret := regexp.MustCompile(`^\s*[A-Za-z_][A-Za-z0-9_]*: \$\{\{ secrets\.[A-Za-z_]+ \}\}$`)
		for i, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "secrets.") && !envSecret.MatchString(line) {
				t.Errorf("%s:%d uses a secret outside an env mapping: %s", tc.file, i+1, strings.TrimSpace(line))
			}
		}
	}
}

// Every input of the composite action reaches its steps.
func TestGateActionInputsUsed(t *testing.T) {
	repo := testRepo(t)
	b, err := os.ReadFile(filepath.Join(repo, ".github", "actions", "releasegate", "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	block := s[strings.Index(s, "\ninputs:\n"):strings.Index(s, "\noutputs:\n")]
	names := regexp.MustCompile(`(?m)^  ([a-z-]+):$`).FindAllStringSubmatch(block, -1)
	if len(names) < 10 {
		t.Fatalf("found %d inputs in action.yml", len(names))
	}
	for _, n := range names {
		if !strings.Contains(s, "inputs."+n[1]+" ") && !strings.Contains(s, "inputs."+n[1]+"}") {
			t.Errorf("input %q is declared but no step reads inputs.%s", n[1], n[1])
		}
	}
}

// gate.sh, the action's gate step, run as GitHub would (inputs as
// environment variables, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files) with
// releasegate built from this checkout, on its demo traces where v1.5.0 has
// a slow tail.
func TestGateAction(t *testing.T) {
	if testing.Short() {
		t.Skip("builds releasegate")
	}
	repo := testRepo(t)
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "releasegate"), "./releasegate")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building releasegate: %v\n%s", err, out)
	}
	demo := t.TempDir()
	if out, err := exec.Command(filepath.Join(bin, "releasegate"), "demo-data", "--out", demo).CombinedOutput(); err != nil {
		t.Fatalf("demo-data: %v\n%s", err, out)
	}
	glob := filepath.Join(demo, "traces-*.jsonl")
	for _, tc := range []struct {
		name     string
		env      map[string]string
		wantCode int
		verdict  string
	}{
		{"regression fails", map[string]string{"SOURCE": "otlp-file", "FILES": glob, "BASELINE": "v1.4.0", "CANDIDATE": "v1.5.0", "THRESHOLDS": "p99:+15%"}, 1, "fail"},
		// v1.4.0 against v1.5.0: faster, so it passes (two thresholds, extra args).
		{"improvement passes", map[string]string{"SOURCE": "otlp-file", "FILES": glob, "BASELINE": "v1.5.0", "CANDIDATE": "v1.4.0", "THRESHOLDS": "p99:+15% p50:+10%", "ARGS": "--quantiles 0.5,0.99"}, 0, "pass"},
		{"no files", map[string]string{"SOURCE": "otlp-file", "BASELINE": "v1.4.0", "CANDIDATE": "v1.5.0"}, 3, "error"},
		{"unknown source", map[string]string{"SOURCE": "jaeger", "BASELINE": "v1.4.0", "CANDIDATE": "v1.5.0"}, 3, "error"},
		{"releasegate refuses the flags", map[string]string{"SOURCE": "otlp-file", "FILES": glob, "BASELINE": "v1.4.0", "CANDIDATE": "v1.4.0"}, 3, "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			output, summary := filepath.Join(tmp, "output"), filepath.Join(tmp, "summary")
			cmd := exec.Command("bash", filepath.Join(repo, ".github", "actions", "releasegate", "gate.sh"))
			cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
				"RUNNER_TEMP="+tmp, "GITHUB_OUTPUT="+output, "GITHUB_STEP_SUMMARY="+summary)
			for k, v := range tc.env {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d\n%s", code, tc.wantCode, out)
			}
			o, _ := os.ReadFile(output)
			if !strings.Contains(string(o), "verdict="+tc.verdict+"\n") {
				t.Errorf("GITHUB_OUTPUT %q lacks verdict=%s", o, tc.verdict)
			}
			if tc.verdict == "pass" || tc.verdict == "fail" {
				s, _ := os.ReadFile(summary)
				if len(s) == 0 {
					t.Errorf("no report in the step summary")
				}
				if _, err := os.Stat(filepath.Join(tmp, "opsight-releasegate", "gate.json")); err != nil {
					t.Errorf("no gate.json: %v", err)
				}
			}
		})
	}
}
