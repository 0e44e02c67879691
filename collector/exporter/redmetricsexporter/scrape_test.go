package redmetricsexporter

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/opsight/opsight/collector/extension/opsightmetricsextension"
	"github.com/opsight/opsight/internal/conventions"
)

const (
	acceptOpenMetrics = "application/openmetrics-text; version=1.0.0; charset=utf-8"
	acceptProtobuf    = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// scrape fetches /metrics with the given Accept header and decodes it with
// the Prometheus parser matching the Content-Type the server chose.
func scrape(t *testing.T, addr, accept string) (expfmt.Format, map[string]*dto.MetricFamily) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+opsightmetricsextension.MetricsPath, nil)
	req.Header.Set("Accept", accept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape status %d", resp.StatusCode)
	}
	format := expfmt.ResponseFormat(resp.Header)
	// The whole scrape goes through the strict parser: the registry must be
	// valid OpenMetrics as served.
	dec := expfmt.NewDecoder(resp.Body, format)
	out := map[string]*dto.MetricFamily{}
	for {
		mf := &dto.MetricFamily{}
		if err := dec.Decode(mf); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("parse %s: %v", format, err)
		}
		out[mf.GetName()] = mf
	}
	return format, out
}

// TestScrapeThroughExtension wires the two public factories the way the
// sidecar does (both on selftelemetry.Default()) and scrapes over HTTP.
func TestScrapeThroughExtension(t *testing.T) {
	ctx := context.Background()
	addr := freeAddr(t)

	ef := opsightmetricsextension.NewFactory()
	ecfg := ef.CreateDefaultConfig().(*opsightmetricsextension.Config)
	ecfg.NetAddr.Endpoint = addr
	ext, err := ef.Create(ctx, extensiontest.NewNopSettings(ef.Type()), ecfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ext.Start(ctx, componenttest.NewNopHost()); err != nil {
		t.Fatalf("start extension: %v", err)
	}
	t.Cleanup(func() { _ = ext.Shutdown(ctx) })

	xf := NewFactory()
	exp, err := xf.CreateTraces(ctx, exportertest.NewNopSettings(xf.Type()), xf.CreateDefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Start(ctx, componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exp.Shutdown(ctx) })

	sent := map[string][2]string{} // span name → trace_id, span_id
	var spans []testSpan
	for i, name := range []string{"Reconcile", "GET", "PATCH"} {
		tid, sid := ids(i + 1)
		kind := ptrace.SpanKindClient
		if i == 0 {
			kind = ptrace.SpanKindServer
		}
		spans = append(spans, testSpan{name, kind, ptrace.StatusCodeUnset, time.Duration(i+1) * 15 * time.Millisecond, tid, sid})
		sent[name] = [2]string{hex.EncodeToString(tid[:]), hex.EncodeToString(sid[:])}
	}
	// Both tests of this package that scrape share selftelemetry.Default():
	// each uses its own service name and looks only at its series.
	if err := exp.ConsumeTraces(ctx, makeTraces(withService(scrapeService), spans...)); err != nil {
		t.Fatal(err)
	}

	t.Run("openmetrics", func(t *testing.T) {
		format, mfs := scrape(t, addr, acceptOpenMetrics)
		if format.FormatType() != expfmt.TypeOpenMetrics {
			t.Fatalf("server answered %s, want OpenMetrics", format)
		}
		calls := mfs[conventions.MetricSpanCalls]
		dur := mfs[conventions.MetricSpanDuration]
		if calls == nil || dur == nil {
			t.Fatalf("families missing; got %v", keys(mfs))
		}
		checkSeries(t, "calls", ofService(calls, scrapeService), len(sent))
		checkSeries(t, "duration", ofService(dur, scrapeService), len(sent))
		for _, m := range ofService(calls, scrapeService) {
			name := labelsOf(m)["span_name"]
			if l := exemplarLabels(m.GetCounter().GetExemplar()); l["trace_id"] != sent[name][0] || l["span_id"] != sent[name][1] {
				t.Errorf("calls{span_name=%q} exemplar %v, want %v", name, l, sent[name])
			}
		}
		for _, m := range ofService(dur, scrapeService) {
			name := labelsOf(m)["span_name"]
			var ok bool
			for _, b := range m.GetHistogram().GetBucket() {
				l := exemplarLabels(b.GetExemplar())
				ok = ok || (l["trace_id"] == sent[name][0] && l["span_id"] == sent[name][1])
			}
			if !ok {
				t.Errorf("duration{span_name=%q}: no bucket exemplar with %v", name, sent[name])
			}
		}
	})

	t.Run("protobuf", func(t *testing.T) {
		format, mfs := scrape(t, addr, acceptProtobuf)
		if format.FormatType() != expfmt.TypeProtoDelim {
			t.Fatalf("server answered %s, want delimited protobuf", format)
		}
		dur := mfs[conventions.MetricSpanDuration]
		if dur == nil {
			t.Fatalf("duration family missing; got %v", keys(mfs))
		}
		checkSeries(t, "duration", ofService(dur, scrapeService), len(sent))
		for _, m := range ofService(dur, scrapeService) {
			h := m.GetHistogram()
			// Native histogram: a schema, a zero threshold and sparse
			// positive buckets, next to the classic buckets.
			if h.Schema == nil || h.ZeroThreshold == nil || len(h.GetPositiveSpan()) == 0 || len(h.GetPositiveDelta()) == 0 {
				t.Errorf("%v: native histogram fields missing (schema %v, zero threshold %v, spans %d, deltas %d)",
					labelsOf(m), h.Schema, h.ZeroThreshold, len(h.GetPositiveSpan()), len(h.GetPositiveDelta()))
			}
			if len(h.GetBucket()) == 0 {
				t.Errorf("%v: classic buckets missing", labelsOf(m))
			}
			if len(h.GetExemplars()) == 0 {
				t.Errorf("%v: no native-histogram exemplars", labelsOf(m))
			}
		}
	})
}

const scrapeService = "scrape-test"

// withService is testResource with another service.name.
func withService(name string) map[string]string {
	out := map[string]string{}
	for k, v := range testResource {
		out[k] = v
	}
	out[conventions.AttrServiceName] = name
	return out
}

// ofService returns the family's series of one service.
func ofService(mf *dto.MetricFamily, service string) []*dto.Metric {
	var out []*dto.Metric
	for _, m := range mf.GetMetric() {
		if labelsOf(m)["service_name"] == service {
			out = append(out, m)
		}
	}
	return out
}

func keys(m map[string]*dto.MetricFamily) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// checkSeries asserts the count and that every series carries every label of
// conventions.SpanMetricLabels, with the revision.
func checkSeries(t *testing.T, what string, ms []*dto.Metric, want int) {
	t.Helper()
	if len(ms) != want {
		t.Errorf("%s: %d series, want %d", what, len(ms), want)
	}
	for _, m := range ms {
		l := labelsOf(m)
		for _, name := range conventions.SpanMetricLabels {
			if _, ok := l[name]; !ok {
				t.Errorf("%s: series %v lacks label %s", what, l, name)
			}
		}
		if l["revision"] != testResource[conventions.AttrServiceVersion] {
			t.Errorf("%s: series %v has revision %q, want %q", what, l, l["revision"], testResource[conventions.AttrServiceVersion])
		}
	}
}
