package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opsight/opsight/triage/internal/analysis"
	"github.com/opsight/opsight/triage/internal/online"
)

var clock = time.Date(2026, 12, 1, 14, 45, 0, 0, time.UTC)

// stubOnline replaces the online triage with one that records what the
// flags (and the alert) made of the options and sources.
func stubOnline(t *testing.T) (*analysis.Options, *online.Sources) {
	t.Helper()
	var o analysis.Options
	var s online.Sources
	old := onlineRun
	onlineRun = func(_ context.Context, src online.Sources, opts analysis.Options) (*analysis.Report, error) {
		o, s = opts, src
		return &analysis.Report{Service: opts.Service, Mode: "revision", Findings: []analysis.Finding{}, Warnings: []string{}, Notes: []string{"stub"}}, nil
	}
	t.Cleanup(func() { onlineRun = old })
	return &o, &s
}

func runWith(stdin string, args ...string) (int, string, string) {
	var o, e bytes.Buffer
	code := MainWith(args, strings.NewReader(stdin), &o, &e, func() time.Time { return clock })
	return code, o.String(), e.String()
}

func TestOnlineFlags(t *testing.T) {
	payload, err := os.ReadFile(filepath.Join("..", "alert", "testdata", "webhook_firing.json"))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "alert.json")
	os.WriteFile(file, payload, 0o644)
	prom := []string{"--prometheus", "http://127.0.0.1:9", "--tempo", "http://127.0.0.1:8", "--loki", "http://127.0.0.1:7"}
	tests := []struct {
		name  string
		stdin string
		args  []string
		code  int
		err   string
		check func(t *testing.T, o analysis.Options, s online.Sources)
	}{
		{"window ending now", "", append(prom, "--service", "op", "--namespace", "ns", "--window", "30m", "--baseline-revision", "v1"), 0, "",
			func(t *testing.T, o analysis.Options, s online.Sources) {
				if !o.To.Equal(clock) || !o.From.Equal(clock.Add(-30*time.Minute)) || o.Service != "op" || o.Namespace != "ns" || o.BaselineRevision != "v1" {
					t.Errorf("options %+v", o)
				}
				if s.Prometheus != "http://127.0.0.1:9" || s.Tempo != "http://127.0.0.1:8" || s.Loki != "http://127.0.0.1:7" {
					t.Errorf("sources %+v", s)
				}
			}},
		{"alert file: labels and window", "", append(prom, "--alert", file, "--baseline-revision", "v1.4.0", "--alert-lookback", "15m"), 0, "",
			func(t *testing.T, o analysis.Options, _ online.Sources) {
				if o.Service != "etcd-operator" || o.Namespace != "etcd-system" || o.Cluster != "prod-eu-1" || o.CandidateRevision != "v1.5.0" {
					t.Errorf("options from the alert %+v", o)
				}
				if !o.From.Equal(time.Date(2026, 12, 1, 14, 15, 0, 123e6, time.UTC)) || !o.To.Equal(clock) {
					t.Errorf("window %v – %v", o.From, o.To)
				}
			}},
		{"alert on stdin, previous window, flags win", string(payload), append(prom, "--alert", "-", "--baseline", "previous-window", "--namespace", "other"), 0, "",
			func(t *testing.T, o analysis.Options, _ online.Sources) {
				if o.BaselineRevision != "" || o.CandidateRevision != "" || o.Namespace != "other" || o.Service != "etcd-operator" {
					t.Errorf("options %+v", o)
				}
			}},
		{"no window", "", append(prom, "--service", "op"), 3, "--window", nil},
		{"no service", "", append(prom, "--window", "1h"), 3, "--service", nil},
		{"online and files", "", append(prom, "--service", "op", "--window", "1h", "--dir", "/tmp/x"), 3, "exclude each other", nil},
		{"tempo without prometheus", "", []string{"--tempo", "http://127.0.0.1:8", "--dir", "/tmp/x"}, 3, "need --prometheus", nil},
		{"bad baseline mode", "", append(prom, "--service", "op", "--window", "1h", "--baseline", "yesterday"), 3, "previous-window", nil},
		{"both baselines", "", append(prom, "--service", "op", "--window", "1h", "--baseline", "previous-window", "--baseline-revision", "v1"), 3, "exclude each other", nil},
		{"bad alert", "{}", append(prom, "--alert", "-"), 3, "no alerts", nil},
		{"missing alert file", "", append(prom, "--alert", "/nonexistent.json"), 3, "no such file", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, s := stubOnline(t)
			code, out, errOut := runWith(tt.stdin, tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.err) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errOut, tt.code, tt.err)
			}
			if tt.check != nil {
				tt.check(t, *o, *s)
			}
			if strings.Contains(tt.name, "alert") && code == 0 && !strings.Contains(out, "alert OperatorReconcileLatencyBudgetBurn (firing") {
				t.Errorf("report does not name the alert:\n%s", out)
			}
		})
	}
}
