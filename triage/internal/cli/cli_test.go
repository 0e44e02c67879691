package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opsight/opsight/triage/internal/synth"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.* from the current output")

// dataset writes a synthetic data set: zone-b of the candidate has slow GET
// calls and fails more (etcd timeouts); aa makes the candidate like the
// baseline.
func dataset(t testing.TB, aa bool) (traces, logs string) {
	t.Helper()
	dir := t.TempDir()
	bad := synth.Pod{Name: "etcd-operator-cand-b", Revision: "v1.5.0", Zone: "zone-b", Traces: 400,
		SlowGET: 15 * time.Millisecond, ErrorShare: 0.15, ErrorMessage: "etcdserver: request timed out"}
	if aa {
		bad = synth.Pod{Name: "etcd-operator-cand-b", Revision: "v1.5.0", Zone: "zone-b", Traces: 400}
	}
	cfg := synth.Config{Service: "etcd-operator", Namespace: "etcd-system", Cluster: "prod-eu-1",
		Start: time.Date(2026, 12, 1, 14, 0, 0, 0, time.UTC), Seed: 42, Pods: []synth.Pod{
			{Name: "etcd-operator-base-a", Revision: "v1.4.0", Zone: "zone-a", Traces: 400},
			{Name: "etcd-operator-base-b", Revision: "v1.4.0", Zone: "zone-b", Traces: 400},
			{Name: "etcd-operator-cand-a", Revision: "v1.5.0", Zone: "zone-a", Traces: 400},
			bad,
		}}
	traces, logs = filepath.Join(dir, "traces-1.jsonl"), filepath.Join(dir, "logs-1.ndjson")
	tf, err := os.Create(traces)
	if err != nil {
		t.Fatal(err)
	}
	lf, err := os.Create(logs)
	if err != nil {
		t.Fatal(err)
	}
	if err := synth.Write(cfg, tf, lf); err != nil {
		t.Fatal(err)
	}
	tf.Close()
	lf.Close()
	return traces, logs
}

func run(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = Main(args, &o, &e)
	return code, o.String(), e.String()
}

// TestGolden pins the three outputs on a fixed synthetic data set: the
// finding (Reconcile slower with GET as the cause, failing more with
// etcd_timeout, zone-b only), its numbers and its links.
func TestGolden(t *testing.T) {
	traces, logs := dataset(t, false)
	for _, format := range []string{"text", "markdown", "json"} {
		t.Run(format, func(t *testing.T) {
			code, out, errOut := run("--traces", traces, "--logs", logs, "--service", "etcd-operator", "--namespace", "etcd-system",
				"--baseline-revision", "v1.4.0", "--format", format)
			if code != 1 {
				t.Fatalf("exit %d, want 1 (findings); stderr: %s", code, errOut)
			}
			golden := filepath.Join("testdata", "golden."+map[string]string{"text": "txt", "markdown": "md", "json": "json"}[format])
			if *update {
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if out != string(want) {
				t.Errorf("output differs from %s (go test ./triage/internal/cli/ -run TestGolden -update to accept):\n%s", golden, out)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	traces, logs := dataset(t, false)
	aaTraces, aaLogs := dataset(t, true)
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // substring
		stderr string // substring
	}{
		{"findings", []string{"--traces", traces, "--logs", logs, "--baseline-revision", "v1.4.0"}, 1, "#1 Reconcile (server)", ""},
		{"nothing moved", []string{"--traces", aaTraces, "--logs", aaLogs, "--baseline-revision", "v1.4.0"}, 0, "nothing moved", ""},
		{"window mode, no rollout inside", []string{"--traces", aaTraces, "--window", "2s"}, 0, "against the previous window", ""},
		{"no inputs", nil, 3, "", "no spans to read"},
		{"missing file", []string{"--traces", "/nonexistent/traces-*.jsonl"}, 3, "", "no such file"},
		{"unknown service", []string{"--traces", traces, "--service", "nope", "--baseline-revision", "v1.4.0"}, 3, "", `no spans of service "nope"`},
		{"unknown baseline", []string{"--traces", traces, "--baseline-revision", "v0"}, 3, "", "no baseline spans"},
		{"bad format", []string{"--traces", traces, "--format", "xml"}, 3, "", "--format"},
		{"bad quantiles", []string{"--traces", traces, "--quantiles", "0.5,99"}, 3, "", "--quantiles"},
		{"bad min ratio", []string{"--traces", traces, "--min-ratio", "0.9"}, 3, "", "--min-ratio"},
		{"bad time", []string{"--traces", traces, "--from", "yesterday"}, 3, "", "RFC 3339"},
		{"candidate without baseline", []string{"--traces", traces, "--candidate-revision", "v1.5.0"}, 3, "", "needs --baseline-revision"},
		{"stray argument", []string{"--traces", traces, "extra"}, 3, "", "unexpected argument"},
		{"not OTLP", []string{"--traces", logs}, 3, "", "not an OTLP JSON trace export request"},
		{"bad flag", []string{"--nope"}, 3, "", "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.code, errOut)
			}
			if !strings.Contains(out, tt.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.stdout, out)
			}
			if !strings.Contains(errOut, tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, errOut)
			}
		})
	}
}
