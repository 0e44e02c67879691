package main

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/opsight/opsight/instrument"
)

func TestParseFlags(t *testing.T) {
	defaults := config{
		serviceName: DefaultServiceName, otlpProtocol: instrument.ProtocolGRPC,
		metricsAddr: "0", probeAddr: "0", maxConcurrentReconciles: 1,
	}
	with := func(f func(*config)) config {
		c := defaults
		f(&c)
		return c
	}
	for _, tc := range []struct {
		name     string
		args     []string
		env      map[string]string
		buildVar map[string]string // main.extraDelay / main.revision as set by -ldflags -X
		want     config
		wantErr  string
	}{{
		name: "defaults: a plain process, metrics, probes and leader election off",
		want: defaults,
	}, {
		name: "OTEL_SERVICE_NAME and OTEL_EXPORTER_OTLP_PROTOCOL",
		env:  map[string]string{"OTEL_SERVICE_NAME": "shop-operator", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
		want: with(func(c *config) { c.serviceName, c.otlpProtocol = "shop-operator", instrument.ProtocolHTTP }),
	}, {
		name: "flags win over the environment",
		args: []string{"-service-name=x", "-otlp-protocol=grpc", "-otlp-endpoint=127.0.0.1:14317"},
		env:  map[string]string{"OTEL_SERVICE_NAME": "shop-operator", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
		want: with(func(c *config) { c.serviceName, c.otlpEndpoint = "x", "127.0.0.1:14317" }),
	}, {
		name:     "build variables set the defaults",
		buildVar: map[string]string{"extraDelay": "30ms", "revision": "v2"},
		want:     with(func(c *config) { c.extraDelay, c.revision = 30*time.Millisecond, "v2" }),
	}, {
		name:     "flags win over build variables",
		args:     []string{"-extra-delay=5ms", "-revision=v3"},
		buildVar: map[string]string{"extraDelay": "30ms", "revision": "v2"},
		want:     with(func(c *config) { c.extraDelay, c.revision = 5*time.Millisecond, "v3" }),
	}, {
		name: "all flags",
		args: []string{"-metrics-bind-address=:8080", "-health-probe-bind-address=:8081", "-leader-elect",
			"-leader-election-namespace=ops", "-watch-namespace=shop", "-max-concurrent-reconciles=4"},
		want: with(func(c *config) {
			c.metricsAddr, c.probeAddr, c.leaderElect, c.leaderElectionNamespace = ":8080", ":8081", true, "ops"
			c.watchNamespace, c.maxConcurrentReconciles = "shop", 4
		}),
	},
		{name: "bad build variable", buildVar: map[string]string{"extraDelay": "30"}, wantErr: "main.extraDelay"},
		{name: "negative delay", args: []string{"-extra-delay=-1s"}, wantErr: "negative"},
		{name: "unknown protocol", args: []string{"-otlp-protocol=udp"}, wantErr: "-otlp-protocol"},
		{name: "no workers", args: []string{"-max-concurrent-reconciles=0"}, wantErr: "at least 1"},
		{name: "stray argument", args: []string{"run"}, wantErr: "unexpected arguments"},
		{name: "unknown flag", args: []string{"-nope"}, wantErr: "not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			saved := [2]string{extraDelay, revision}
			t.Cleanup(func() { extraDelay, revision = saved[0], saved[1] })
			if v, ok := tc.buildVar["extraDelay"]; ok {
				extraDelay = v
			}
			if v, ok := tc.buildVar["revision"]; ok {
				revision = v
			}
			fs := flag.NewFlagSet("widget-operator", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			got, err := parseFlags(fs, tc.args, func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("config = %+v\nwant     %+v", got, tc.want)
			}
		})
	}
}
