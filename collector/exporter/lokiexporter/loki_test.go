package lokiexporter

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configcompression"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.uber.org/zap"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/selftelemetry"
)

// fakeLoki is a local push endpoint decoding the real snappy/protobuf body.
// respond decides each request's fate; it is called before the body is
// recorded, so a refused request is never counted as received.
type fakeLoki struct {
	t    *testing.T
	addr string

	mu       sync.Mutex
	srv      *http.Server
	streams  map[string][]string // label string -> lines in arrival order
	requests []time.Time         // arrival time of every request
	headers  []http.Header
	respond  func(n int, r *http.Request) (status int, hdr map[string]string, body string, delay time.Duration)
}

func newFakeLoki(t *testing.T) *fakeLoki {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeLoki{t: t, addr: l.Addr().String(), streams: map[string][]string{}}
	f.serve(l)
	t.Cleanup(f.down)
	return f
}

func (f *fakeLoki) url() string { return "http://" + f.addr + "/loki/api/v1/push" }

func (f *fakeLoki) serve(l net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(f.handle), ReadHeaderTimeout: 5 * time.Second}
	f.mu.Lock()
	f.srv = srv
	f.mu.Unlock()
	go func() { _ = srv.Serve(l) }()
}

// down closes the listener: connections are refused until up.
func (f *fakeLoki) down() {
	f.mu.Lock()
	srv := f.srv
	f.srv = nil
	f.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

func (f *fakeLoki) up() {
	var l net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port may take a moment to be reusable
		if l, err = net.Listen("tcp", f.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		f.t.Errorf("re-listening on %s: %v", f.addr, err)
		return
	}
	f.serve(l)
}

func (f *fakeLoki) handle(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	f.mu.Lock()
	n := len(f.requests)
	f.requests = append(f.requests, time.Now())
	f.headers = append(f.headers, r.Header.Clone())
	respond := f.respond
	f.mu.Unlock()

	status, hdr, msg, delay := http.StatusNoContent, map[string]string(nil), "", time.Duration(0)
	if respond != nil {
		status, hdr, msg, delay = respond(n, r)
	}
	if r.URL.Path != "/loki/api/v1/push" {
		status, msg = http.StatusNotFound, "unexpected path"
	}
	if status/100 == 2 {
		got, err := decodeBody(r.Header, body)
		if err != nil {
			status, msg = http.StatusBadRequest, err.Error()
		}
		f.mu.Lock()
		for _, s := range got {
			f.streams[s.Labels] = append(f.streams[s.Labels], s.lines...)
		}
		f.mu.Unlock()
	}
	if delay > 0 {
		time.Sleep(delay) // the client may have given up: the push was still ingested (ambiguous)
	}
	for k, v := range hdr {
		w.Header().Set(k, v)
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg)
}

type decodedStream struct {
	Labels string
	lines  []string
}

// decodeBody decodes a push body as Loki does: protobuf (snappy) or JSON
// (optionally gzip); JSON label maps are rendered as the same label string.
func decodeBody(h http.Header, body []byte) ([]decodedStream, error) {
	switch h.Get("Content-Type") {
	case contentProtobuf:
		raw, err := snappy.Decode(nil, body)
		if err != nil {
			return nil, err
		}
		var req push.PushRequest
		if err := req.Unmarshal(raw); err != nil {
			return nil, err
		}
		var out []decodedStream
		for _, s := range req.Streams {
			d := decodedStream{Labels: s.Labels}
			for _, e := range s.Entries {
				d.lines = append(d.lines, e.Line)
			}
			out = append(out, d)
		}
		return out, nil
	case contentJSON:
		if h.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				return nil, err
			}
			if body, err = io.ReadAll(zr); err != nil {
				return nil, err
			}
		}
		var jp jsonPush
		if err := json.Unmarshal(body, &jp); err != nil {
			return nil, err
		}
		var out []decodedStream
		for _, s := range jp.Streams {
			names := make([]string, 0, len(s.Stream))
			for k := range s.Stream {
				names = append(names, k)
			}
			slices.Sort(names)
			parts := make([]string, len(names))
			for i, k := range names {
				parts[i] = k + "=" + strconv.Quote(s.Stream[k])
			}
			d := decodedStream{Labels: "{" + strings.Join(parts, ", ") + "}"}
			for _, v := range s.Values {
				var line string
				if err := json.Unmarshal(v[1], &line); err != nil {
					return nil, err
				}
				d.lines = append(d.lines, line)
			}
			out = append(out, d)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported Content-Type %q", h.Get("Content-Type"))
}

func (f *fakeLoki) snapshot() (map[string][]string, []time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := make(map[string][]string, len(f.streams))
	for k, v := range f.streams {
		s[k] = append([]string(nil), v...)
	}
	return s, append([]time.Time(nil), f.requests...)
}

// waitLines waits until every expected line arrived at least once.
func (f *fakeLoki) waitLines(t *testing.T, want map[string][]string, timeout time.Duration) map[string][]string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got, _ := f.snapshot()
		missing := 0
		for k, lines := range want {
			have := map[string]bool{}
			for _, l := range got[k] {
				have[l] = true
			}
			for _, l := range lines {
				if !have[l] {
					missing++
				}
			}
		}
		if missing == 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d lines never arrived", missing)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testHost exposes extensions (the file_storage of the persistent queue).
type testHost struct {
	ext map[component.ID]component.Component
}

func (h testHost) GetExtensions() map[component.ID]component.Component { return h.ext }

// testConfig: short backoffs so the suite stays fast.
func testConfig(endpoint string) *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.ClientConfig.Endpoint = endpoint
	cfg.ClientConfig.Timeout = 2 * time.Second
	cfg.RetryConfig.InitialInterval = 20 * time.Millisecond
	cfg.RetryConfig.MaxInterval = 200 * time.Millisecond
	cfg.RetryConfig.RandomizationFactor = 0
	return cfg
}

func startExporter(t *testing.T, cfg *Config, m *selftelemetry.Metrics, host component.Host, logger *zap.Logger) (exporter.Logs, string) {
	t.Helper()
	f := newFactory(withMetrics(m))
	set := exportertest.NewNopSettings(componentType)
	// A stable id: the persistent queue's storage is keyed by it.
	set.ID = component.MustNewIDWithName(typeStr, "test")
	if logger != nil {
		set.Logger = logger
	}
	exp, err := f.CreateLogs(context.Background(), set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Start(context.Background(), host); err != nil {
		t.Fatal(err)
	}
	return exp, set.ID.String()
}

// testBatch makes one batch with records for two pods; lines are "<pod>-<seq>".
func testBatch(seq *[2]int, perPod int) plog.Logs {
	ld := plog.NewLogs()
	for p, pod := range []string{"pod-a", "pod-b"} {
		rl := ld.ResourceLogs().AppendEmpty()
		fullResource(rl.Resource(), pod)
		lrs := rl.ScopeLogs().AppendEmpty().LogRecords()
		for i := 0; i < perPod; i++ {
			r := lrs.AppendEmpty()
			r.Body().SetStr(fmt.Sprintf("%s-%05d", pod, seq[p]))
			r.SetTimestamp(pcommon.NewTimestampFromTime(t0.Add(time.Duration(seq[p]) * time.Millisecond)))
			r.Attributes().PutStr(conventions.LogTraceID, "4bf92f3577b34da6a3ce929d0e0e4736")
			seq[p]++
		}
	}
	return ld
}

func expected(seq [2]int) map[string][]string {
	want := map[string][]string{}
	for p, pod := range []string{"pod-a", "pod-b"} {
		labels := strings.Replace(labelsA, "pod-a", pod, 1)
		for i := 0; i < seq[p]; i++ {
			want[labels] = append(want[labels], fmt.Sprintf("%s-%05d", pod, i))
		}
	}
	return want
}

// checkDelivery: every line arrived; exactly once and in order when exact,
// otherwise at least once with first arrivals in order.
func checkDelivery(t *testing.T, got, want map[string][]string, exact bool) {
	t.Helper()
	for labels, lines := range want {
		g := got[labels]
		if exact {
			if strings.Join(g, ",") != strings.Join(lines, ",") {
				t.Errorf("stream %s: got %d lines, want %d exactly once in order\n got %v", labels, len(g), len(lines), g)
			}
			continue
		}
		seen := map[string]bool{}
		var firsts []string
		for _, l := range g {
			if !seen[l] {
				seen[l] = true
				firsts = append(firsts, l)
			}
		}
		if strings.Join(firsts, ",") != strings.Join(lines, ",") {
			t.Errorf("stream %s: first arrivals out of order or missing\n got %v\nwant %v", labels, firsts, lines)
		}
	}
	for labels := range got {
		if _, ok := want[labels]; !ok {
			t.Errorf("unexpected stream %s", labels)
		}
	}
}

func failed(m *selftelemetry.Metrics, id, reason string) float64 {
	var d dto.Metric
	if err := m.ExportFailed.WithLabelValues(id, reason).Write(&d); err != nil {
		panic(err)
	}
	return d.GetCounter().GetValue()
}

// TestFailureModes drives a real exporterhelper queue and retry against the
// local server through each failure mode; nothing may be lost.
func TestFailureModes(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		respond func(n int, r *http.Request) (int, map[string]string, string, time.Duration)
		outage  time.Duration // server refuses connections this long at start
		exact   bool          // no ambiguous attempt: exactly once
		reason  string
		minFail float64
		check   func(t *testing.T, reqs []time.Time)
	}{
		{
			name: "outage", outage: 2 * time.Second, exact: true, reason: reasonConnection, minFail: 2,
		},
		{
			name: "429 storm with Retry-After", exact: true, reason: reasonHTTP429, minFail: 3,
			respond: func(n int, _ *http.Request) (int, map[string]string, string, time.Duration) {
				switch n {
				case 0, 1:
					return http.StatusTooManyRequests, map[string]string{"Retry-After": "1"}, "Ingestion rate limit exceeded", 0
				case 2:
					// HTTP-date form, 2 s ahead at one-second resolution: at least 1 s of wait.
					return http.StatusTooManyRequests, map[string]string{"Retry-After": time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat)}, "rate limited", 0
				}
				return http.StatusNoContent, nil, "", 0
			},
			check: func(t *testing.T, reqs []time.Time) {
				// The retry after each 429 waited for Retry-After, not the 20 ms backoff.
				for i := 1; i <= 3; i++ {
					if gap := reqs[i].Sub(reqs[i-1]); gap < 900*time.Millisecond {
						t.Errorf("retry %d came %v after a 429 with Retry-After; want >= ~1s", i, gap)
					}
				}
			},
		},
		{
			name: "503 with Retry-After", exact: true, reason: reasonHTTP5xx, minFail: 1,
			respond: func(n int, _ *http.Request) (int, map[string]string, string, time.Duration) {
				if n == 0 {
					return http.StatusServiceUnavailable, map[string]string{"Retry-After": "1"}, "ingester unavailable", 0
				}
				return http.StatusNoContent, nil, "", 0
			},
			check: func(t *testing.T, reqs []time.Time) {
				if gap := reqs[1].Sub(reqs[0]); gap < 900*time.Millisecond {
					t.Errorf("retry came %v after a 503 with Retry-After: 1", gap)
				}
			},
		},
		{
			name: "500s", exact: true, reason: reasonHTTP5xx, minFail: 5,
			respond: func(n int, _ *http.Request) (int, map[string]string, string, time.Duration) {
				if n < 5 {
					return http.StatusInternalServerError, nil, "rpc error: code = Unavailable", 0
				}
				return http.StatusNoContent, nil, "", 0
			},
		},
		{
			name: "slow responses beyond timeout", timeout: 200 * time.Millisecond, reason: reasonTimeout, minFail: 2,
			respond: func(n int, _ *http.Request) (int, map[string]string, string, time.Duration) {
				if n < 2 {
					return http.StatusNoContent, nil, "", 600 * time.Millisecond
				}
				return http.StatusNoContent, nil, "", 0
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeLoki(t)
			srv.respond = tt.respond
			cfg := testConfig(srv.url())
			if tt.timeout > 0 {
				cfg.ClientConfig.Timeout = tt.timeout
			}
			m := selftelemetry.New()
			if tt.outage > 0 {
				srv.down()
				time.AfterFunc(tt.outage, srv.up)
			}
			exp, id := startExporter(t, cfg, m, testHost{}, nil)
			var seq [2]int
			for i := 0; i < 10; i++ {
				if err := exp.ConsumeLogs(context.Background(), testBatch(&seq, 20)); err != nil {
					t.Fatalf("ConsumeLogs: %v", err)
				}
			}
			got := srv.waitLines(t, expected(seq), 20*time.Second)
			if err := exp.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			checkDelivery(t, got, expected(seq), tt.exact)
			if n := failed(m, id, tt.reason); n < tt.minFail {
				t.Errorf("opsight_export_failed_total{reason=%q} = %v, want >= %v", tt.reason, n, tt.minFail)
			}
			for _, r := range []string{reasonConnection, reasonTimeout, reasonHTTP429, reasonHTTP5xx, reasonHTTP4xx} {
				if r != tt.reason && failed(m, id, r) != 0 {
					t.Errorf("unexpected failures with reason %s: %v", r, failed(m, id, r))
				}
			}
			if tt.check != nil {
				_, reqs := srv.snapshot()
				tt.check(t, reqs)
			}
		})
	}
}

// QueueBatchConfig shortens the test's spelling.
type QueueBatchConfig = exporterhelper.QueueBatchConfig

func newFileStorage(t *testing.T, dir string) (component.ID, extension.Extension) {
	t.Helper()
	f := filestorage.NewFactory()
	cfg := f.CreateDefaultConfig().(*filestorage.Config)
	cfg.Directory = dir
	cfg.Compaction.Directory = dir
	id := component.MustNewID("file_storage")
	ext, err := f.Create(context.Background(), extensiontest.NewNopSettings(f.Type()), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ext.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	return id, ext
}

// TestPersistentQueueSurvivesRestart: with Loki down, batches go to the
// file_storage queue; the exporter stops with them queued; a new exporter
// on the same storage delivers them all once Loki is up.
func TestPersistentQueueSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	srv := newFakeLoki(t)
	srv.down()

	storageID, ext := newFileStorage(t, dir)
	cfg := testConfig(srv.url())
	cfg.QueueConfig.Get().StorageID = &storageID
	m := selftelemetry.New()
	exp, id := startExporter(t, cfg, m, testHost{ext: map[component.ID]component.Component{storageID: ext}}, nil)

	var seq [2]int
	for i := 0; i < 8; i++ {
		if err := exp.ConsumeLogs(context.Background(), testBatch(&seq, 25)); err != nil {
			t.Fatalf("ConsumeLogs with Loki down: %v (the persistent queue should accept)", err)
		}
	}
	// Let it fail a few times so a request is in flight when we stop.
	deadline := time.Now().Add(5 * time.Second)
	for failed(m, id, reasonConnection) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := exp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := ext.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, _ := srv.snapshot(); len(got) != 0 {
		t.Fatalf("delivered while Loki was down: %v", got)
	}

	srv.up()
	storageID, ext = newFileStorage(t, dir)
	defer func() { _ = ext.Shutdown(context.Background()) }()
	exp2, _ := startExporter(t, cfg, selftelemetry.New(), testHost{ext: map[component.ID]component.Component{storageID: ext}}, nil)
	got := srv.waitLines(t, expected(seq), 20*time.Second)
	if err := exp2.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// exporterhelper re-queues the request that was in flight at shutdown
	// behind the others, so across a restart only "exactly once" holds,
	// not the order of that one batch (Loki accepts out-of-order writes).
	want := expected(seq)
	for labels, lines := range want {
		g := slices.Clone(got[labels])
		slices.Sort(g)
		if strings.Join(g, ",") != strings.Join(lines, ",") {
			t.Errorf("stream %s: want each of %d lines exactly once, got %d", labels, len(lines), len(g))
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d streams, want %d", len(got), len(want))
	}
}

// TestJSONPush: encoding json, gzip via confighttp compression, through the queue.
func TestJSONPush(t *testing.T) {
	for _, comp := range []configcompression.Type{"", configcompression.TypeGzip} {
		t.Run("compression="+string(comp), func(t *testing.T) {
			srv := newFakeLoki(t)
			cfg := testConfig(srv.url())
			cfg.Encoding = EncodingJSON
			cfg.ClientConfig.Compression = comp
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			exp, _ := startExporter(t, cfg, selftelemetry.New(), testHost{}, nil)
			var seq [2]int
			for i := 0; i < 3; i++ {
				if err := exp.ConsumeLogs(context.Background(), testBatch(&seq, 5)); err != nil {
					t.Fatal(err)
				}
			}
			got := srv.waitLines(t, expected(seq), 10*time.Second)
			if err := exp.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			checkDelivery(t, got, expected(seq), true)
			srv.mu.Lock()
			h := srv.headers[0]
			srv.mu.Unlock()
			if h.Get("Content-Encoding") != string(comp) {
				t.Errorf("Content-Encoding %q, want %q", h.Get("Content-Encoding"), comp)
			}
		})
	}
}

// TestHeaders: tenant and auth shortcuts reach the server.
func TestHeaders(t *testing.T) {
	tests := []struct {
		name  string
		set   func(*Config)
		check func(http.Header) error
	}{
		{"tenant", func(c *Config) { c.TenantID = "team-a" }, func(h http.Header) error {
			if h.Get(headerTenant) != "team-a" {
				return fmt.Errorf("X-Scope-OrgID %q", h.Get(headerTenant))
			}
			return nil
		}},
		{"basic", func(c *Config) { c.BasicAuth = configoptional.Some(BasicAuthConfig{Username: "u", Password: "p"}) }, func(h http.Header) error {
			if h.Get("Authorization") != "Basic dTpw" {
				return fmt.Errorf("Authorization %q", h.Get("Authorization"))
			}
			return nil
		}},
		{"bearer", func(c *Config) { c.BearerToken = "tok" }, func(h http.Header) error {
			if h.Get("Authorization") != "Bearer tok" || h.Get(headerTenant) != "" {
				return fmt.Errorf("Authorization %q", h.Get("Authorization"))
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeLoki(t)
			cfg := testConfig(srv.url())
			cfg.QueueConfig = configoptional.None[QueueBatchConfig]()
			tt.set(cfg)
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			exp, _ := startExporter(t, cfg, selftelemetry.New(), testHost{}, nil)
			defer func() { _ = exp.Shutdown(context.Background()) }()
			var seq [2]int
			if err := exp.ConsumeLogs(context.Background(), testBatch(&seq, 1)); err != nil {
				t.Fatal(err)
			}
			srv.mu.Lock()
			h := srv.headers[0]
			srv.mu.Unlock()
			if err := tt.check(h); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestThrottleParsing(t *testing.T) {
	base := errors.New("x")
	tests := []struct {
		header string
		min    time.Duration
		max    time.Duration
		wrap   bool
	}{
		{"3", 3 * time.Second, 3 * time.Second, true},
		{"0", 0, 0, true},
		{time.Now().Add(5 * time.Second).UTC().Format(http.TimeFormat), 3 * time.Second, 5 * time.Second, true},
		{"Mon, 01 Jan 2001 00:00:00 GMT", 0, 0, true}, // in the past: retry now
		{"", 0, 0, false},
		{"soon", 0, 0, false},
	}
	for _, tt := range tests {
		err := throttle(base, tt.header)
		s := err.Error()
		if !tt.wrap {
			if err != base {
				t.Errorf("%q: wrapped %v", tt.header, err)
			}
			continue
		}
		if !strings.HasPrefix(s, "Throttle (") {
			t.Errorf("%q: not a throttle retry: %v", tt.header, err)
			continue
		}
		d, perr := time.ParseDuration(s[len("Throttle ("):strings.Index(s, ")")])
		if perr != nil || d < tt.min || d > tt.max {
			t.Errorf("%q: delay %v, want in [%v, %v]", tt.header, d, tt.min, tt.max)
		}
		if !errors.Is(err, base) {
			t.Errorf("%q: lost the cause", tt.header)
		}
	}
}
