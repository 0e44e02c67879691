package operatorenrichprocessor

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/selftelemetry"
)

// TestServiceIdentity: with the pod's service name configured (the webhook
// sets $OPSIGHT_SERVICE_NAME), spans and logs alike carry it, whatever the
// SDK said; a span that said otherwise keeps its name under
// opsight.original_service_name and is counted by that name. Without a
// configured name the SDK's name stands and nothing is counted.
func TestServiceIdentity(t *testing.T) {
	for _, tc := range []struct {
		name         string
		env          map[string]string
		cfgName      string
		spanService  string // "" = the SDK set none
		wantService  string
		wantOriginal string // "<absent>" = not set
		wantCounted  float64
	}{
		{"env wins over another SDK name", map[string]string{conventions.EnvServiceName: "etcd-operator"}, "",
			"manager", "etcd-operator", "manager", 2},
		{"env equal to the SDK name", map[string]string{conventions.EnvServiceName: "etcd-operator"}, "",
			"etcd-operator", "etcd-operator", "<absent>", 0},
		{"SDK without a name (unknown_service) is filled, not counted", map[string]string{conventions.EnvServiceName: "etcd-operator"}, "",
			"unknown_service:manager", "etcd-operator", "<absent>", 0},
		{"no SDK name at all", map[string]string{conventions.EnvServiceName: "etcd-operator"}, "",
			"", "etcd-operator", "<absent>", 0},
		{"config service_name wins over env", map[string]string{conventions.EnvServiceName: "from-env"}, "from-config",
			"sdk", "from-config", "sdk", 2},
		{"nothing configured: the SDK's name stands", map[string]string{conventions.EnvContainer: "manager"}, "",
			"etcd-operator", "etcd-operator", "<absent>", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := createDefaultConfig()
			cfg.ServiceName = tc.cfgName
			h := newHarness(t, cfg, tc.env)
			td, _ := keyedSpans("a", "b")
			if tc.spanService != "" {
				td.ResourceSpans().At(0).Resource().Attributes().PutStr(conventions.AttrServiceName, tc.spanService)
			}
			if err := h.traces.ConsumeTraces(context.Background(), td); err != nil {
				t.Fatal(err)
			}
			res := h.spanOut.AllTraces()[0].ResourceSpans().At(0).Resource().Attributes()
			if got := attr(res, conventions.AttrServiceName); got != tc.wantService {
				t.Errorf("span service.name = %q, want %q", got, tc.wantService)
			}
			if got := attr(res, attrOriginalServiceName); got != tc.wantOriginal {
				t.Errorf("span %s = %q, want %q", attrOriginalServiceName, got, tc.wantOriginal)
			}
			if got := testutil.ToFloat64(h.m.SpanServiceMismatch.WithLabelValues(tc.spanService)); got != tc.wantCounted {
				t.Errorf("%s{span_service=%q} = %v, want %v", conventions.MetricSpanServiceMismatch, tc.spanService, got, tc.wantCounted)
			}

			// Logs of the same pod carry the same name (Loki's service_name),
			// unless nothing is configured: then the container name.
			if err := h.logs.ConsumeLogs(context.Background(), fileLogs(`{"msg":"x"}`)); err != nil {
				t.Fatal(err)
			}
			lres := h.logSink.AllLogs()[0].ResourceLogs().At(0).Resource().Attributes()
			wantLogs := tc.wantService
			if tc.cfgName == "" && tc.env[conventions.EnvServiceName] == "" {
				wantLogs = "manager"
			}
			if got := attr(lres, conventions.AttrServiceName); got != wantLogs {
				t.Errorf("log service.name = %q, want %q", got, wantLogs)
			}
		})
	}
}

// TestServiceMismatchWarningsAndBounds: one warning per name per minute, a
// bounded set of label values, and every span counted.
func TestServiceMismatchWarningsAndBounds(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	m := selftelemetry.New()
	now := time.Unix(1_700_000_000, 0)
	c := newServiceCheck("etcd-operator", m.SpanServiceMismatch, zap.New(core), func() time.Time { return now })

	c.record("manager", 3)
	c.record("manager", 2) // same minute: counted, not warned again
	if n := testutil.CollectAndCount(m.SpanServiceMismatch); n != 2 {
		t.Errorf("%d series, want 2: the one at 0 from the start and manager's", n)
	}
	if got := testutil.ToFloat64(m.SpanServiceMismatch.WithLabelValues("manager")); got != 5 {
		t.Errorf("counted %v, want 5", got)
	}
	if n := logs.Len(); n != 1 {
		t.Fatalf("%d warnings in the first minute, want 1", n)
	}
	w := logs.All()[0].ContextMap()
	if w["span_service"] != "manager" || w["service"] != "etcd-operator" || w["metric"] != conventions.MetricSpanServiceMismatch {
		t.Errorf("warning fields %v", w)
	}
	now = now.Add(mismatchWarnEvery)
	c.record("manager", 1)
	if n := logs.Len(); n != 2 {
		t.Errorf("%d warnings after a minute, want 2", n)
	}

	// Many distinct names: the label set stays bounded, nothing goes uncounted.
	for i := range 2 * maxMismatchNames {
		c.record(fmt.Sprintf("name-%d", i), 1)
	}
	if n := len(c.counters); n != maxMismatchNames+1 {
		t.Errorf("%d label values, want %d (+%q)", n, maxMismatchNames, mismatchOther)
	}
	total := 0.0
	for _, ctr := range c.counters {
		total += testutil.ToFloat64(ctr)
	}
	if want := 6.0 + 2*maxMismatchNames; total != want {
		t.Errorf("counted %v spans in all, want %v", total, want)
	}
	if logs.Len() > 2+maxMismatchNames+1 {
		t.Errorf("%d warnings: more than one per label value", logs.Len())
	}
}
