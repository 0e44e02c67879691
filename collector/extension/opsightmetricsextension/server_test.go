package opsightmetricsextension

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensiontest"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/selftelemetry"
)

// startOn starts an extension serving m on endpoint and returns it with its
// bound address.
func startOn(t *testing.T, m *selftelemetry.Metrics, endpoint string) (extension.Extension, string, error) {
	t.Helper()
	f := newFactory(m)
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.NetAddr.Endpoint = endpoint
	ext, err := f.Create(context.Background(), extensiontest.NewNopSettings(f.Type()), cfg)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := ext.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		return ext, "", err
	}
	t.Cleanup(func() { _ = ext.Shutdown(context.Background()) })
	return ext, ext.(*server).addr, nil
}

func get(t *testing.T, url string) (int, string, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

func TestServesMetricsAndHealth(t *testing.T) {
	m := selftelemetry.New()
	m.LogParseErrors.WithLabelValues("not_json").Add(3)
	_, addr, err := startOn(t, m, "127.0.0.1:0")
	if err != nil {
		t.Fatalf("start: %v", err)
	}

	code, _, body := get(t, "http://"+addr+HealthPath)
	if code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz = %d %q, want 200 \"ok\\n\"", code, body)
	}
	code, _, body = get(t, "http://"+addr+MetricsPath)
	want := conventions.MetricLogParseErrors + `{reason="not_json"} 3`
	if code != http.StatusOK || !strings.Contains(body, want) {
		t.Fatalf("/metrics = %d, body lacks %q:\n%s", code, want, body)
	}
	code, _, _ = get(t, "http://"+addr+"/nope")
	if code != http.StatusNotFound {
		t.Fatalf("unknown path = %d, want 404", code)
	}
}

func TestPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, _, err = startOn(t, selftelemetry.New(), ln.Addr().String())
	if err == nil {
		t.Fatal("Start on a port in use succeeded")
	}
	for _, want := range []string{"cannot listen", ln.Addr().String(), "another process"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestShutdownStopsServingAndIsIdempotent(t *testing.T) {
	ext, addr, err := startOn(t, selftelemetry.New(), "127.0.0.1:0")
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if err := ext.Shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := ext.Shutdown(context.Background()); err != nil {
		t.Fatalf("second shutdown: %v", err)
	}
	if _, err := http.Get("http://" + addr + HealthPath); err == nil {
		t.Fatal("server still answers after Shutdown")
	}
	// The port is free again: a new extension can take it.
	if _, _, err := startOn(t, selftelemetry.New(), addr); err != nil {
		t.Fatalf("restart on the released port: %v", err)
	}
}

func TestShutdownWithoutStart(t *testing.T) {
	f := newFactory(selftelemetry.New())
	ext, err := f.Create(context.Background(), extensiontest.NewNopSettings(f.Type()), f.CreateDefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := ext.Shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown before start: %v", err)
	}
}
