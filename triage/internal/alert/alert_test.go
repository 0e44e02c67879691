package alert

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 12, 1, 14, 45, 0, 0, time.UTC)

func TestParseRecorded(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "webhook_firing.json"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(b, now, 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := Target{Alert: "OperatorReconcileLatencyBudgetBurn", Service: "etcd-operator", Namespace: "etcd-system", Cluster: "prod-eu-1",
		Revision: "v1.5.0", From: time.Date(2026, 12, 1, 14, 15, 0, 123e6, time.UTC), To: now, Firing: 1}
	if got != want {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestParse(t *testing.T) {
	alert := func(status, labels, starts, ends string) string {
		return `{"status":"` + status + `","labels":{` + labels + `},"startsAt":"` + starts + `","endsAt":"` + ends + `"}`
	}
	body := func(common string, alerts ...string) string {
		return `{"version":"4","status":"firing","commonLabels":{` + common + `},"alerts":[` + strings.Join(alerts, ",") + `]}`
	}
	const zero = "0001-01-01T00:00:00Z"
	svc := `"service_name":"etcd-operator","namespace":"etcd-system"`
	tests := []struct {
		name     string
		body     string
		lookback time.Duration
		want     Target
		err      string
	}{
		{"firing: startsAt minus lookback to now", body("", alert("firing", svc, "2026-12-01T14:40:00Z", zero)), 10 * time.Minute,
			Target{Service: "etcd-operator", Namespace: "etcd-system", From: time.Date(2026, 12, 1, 14, 30, 0, 0, time.UTC), To: now, Firing: 1}, ""},
		{"resolved: to endsAt", body("", alert("resolved", svc, "2026-12-01T14:20:00Z", "2026-12-01T14:35:00Z")), 5 * time.Minute,
			Target{Service: "etcd-operator", Namespace: "etcd-system", From: time.Date(2026, 12, 1, 14, 15, 0, 0, time.UTC), To: time.Date(2026, 12, 1, 14, 35, 0, 0, time.UTC), Firing: 1, Resolved: true}, ""},
		{"firing with endsAt in the future (resolve timeout): still to now", body("", alert("firing", svc, "2026-12-01T14:40:00Z", "2026-12-01T14:49:00Z")), 0,
			Target{Service: "etcd-operator", Namespace: "etcd-system", From: time.Date(2026, 12, 1, 14, 40, 0, 0, time.UTC), To: now, Firing: 1}, ""},
		{"labels from commonLabels; service label as fallback", body(`"cluster":"c1","service":"etcd-operator"`, alert("firing", `"alertname":"X"`, "2026-12-01T14:40:00Z", zero)), 0,
			Target{Alert: "X", Service: "etcd-operator", Cluster: "c1", From: time.Date(2026, 12, 1, 14, 40, 0, 0, time.UTC), To: now, Firing: 1}, ""},
		{"two alerts of one service: earliest start", body("",
			alert("firing", svc, "2026-12-01T14:40:00Z", zero), alert("firing", svc, "2026-12-01T14:33:00Z", zero)), 0,
			Target{Service: "etcd-operator", Namespace: "etcd-system", From: time.Date(2026, 12, 1, 14, 33, 0, 0, time.UTC), To: now, Firing: 2}, ""},
		{"a firing alert is preferred; others' services left out", body("",
			alert("resolved", `"service_name":"other"`, "2026-12-01T14:00:00Z", "2026-12-01T14:10:00Z"), alert("firing", svc+`,"revision":"v2"`, "2026-12-01T14:40:00Z", zero)), 0,
			Target{Service: "etcd-operator", Namespace: "etcd-system", Revision: "v2", From: time.Date(2026, 12, 1, 14, 40, 0, 0, time.UTC), To: now, Firing: 1}, ""},
		{"no service label", body("", alert("firing", `"alertname":"Watchdog"`, "2026-12-01T14:40:00Z", zero)), 0, Target{}, "names a service"},
		{"no alerts", `{"version":"4","alerts":[]}`, 0, Target{}, "no alerts"},
		{"another version", `{"version":"5","alerts":[{}]}`, 0, Target{}, "version"},
		{"not JSON", `alertname=X`, 0, Target{}, "not an Alertmanager"},
		{"bad time", body("", alert("firing", svc, "yesterday", zero)), 0, Target{}, "not an Alertmanager"},
		{"no startsAt", body("", `{"status":"firing","labels":{`+svc+`}}`), 0, Target{}, "no startsAt"},
		{"starts in the future", body("", alert("firing", svc, "2026-12-01T15:00:00Z", zero)), 0, Target{}, "empty"},
		{"negative lookback", body("", alert("firing", svc, "2026-12-01T14:40:00Z", zero)), -time.Minute, Target{}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.body), now, tt.lookback)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	b, _ := os.ReadFile(filepath.Join("testdata", "webhook_firing.json"))
	f.Add(b, int64(15*time.Minute))
	f.Add([]byte(`{"alerts":[{"status":"resolved","labels":{"service":"x"},"startsAt":"2026-12-01T14:00:00Z","endsAt":"2026-12-01T13:00:00Z"}]}`), int64(0))
	f.Add([]byte(`{"version":"4","commonLabels":{"service_name":"s"},"alerts":[{"startsAt":"0001-01-01T00:00:00Z"}]}`), int64(-1))
	f.Fuzz(func(t *testing.T, b []byte, lookback int64) {
		tg, err := Parse(b, now, time.Duration(lookback))
		if err != nil {
			return
		}
		if tg.Service == "" || tg.Firing == 0 {
			t.Fatalf("accepted without a service or alert: %+v", tg)
		}
		if !tg.To.After(tg.From) {
			t.Fatalf("empty window accepted: %+v", tg)
		}
		if !tg.Resolved && !tg.To.Equal(now) {
			t.Fatalf("firing alert's window ends at %v, not now", tg.To)
		}
	})
}
