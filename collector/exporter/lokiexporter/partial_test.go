package lokiexporter

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/selftelemetry"
)

// strictLoki validates each push the way Loki's distributor does, with
// limits stricter than the exporter's, ingests the valid entries and
// answers 400 with Loki's messages (testdata/loki_messages.txt) for the
// rest. ingester, when set, answers instead for a request (n from 0).
type strictLoki struct {
	t    *testing.T
	srv  *httptest.Server
	msgs map[string]string

	maxAge        time.Duration
	maxLine       int
	maxLabelValue int
	ingester      func(n int, req push.PushRequest) (status int, body string, accept func(stream string, en push.Entry) bool)

	mu       sync.Mutex
	requests int
	got      map[string][]push.Entry // stream -> accepted entries in order
}

func newStrictLoki(t *testing.T) *strictLoki {
	l := &strictLoki{t: t, msgs: lokiMessages(t), got: map[string][]push.Entry{}}
	l.srv = httptest.NewServer(http.HandlerFunc(l.handle)) // 127.0.0.1
	t.Cleanup(l.srv.Close)
	return l
}

func (l *strictLoki) url() string { return l.srv.URL + "/loki/api/v1/push" }

func (l *strictLoki) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	raw, err := snappy.Decode(nil, body)
	var req push.PushRequest
	if err == nil {
		err = req.Unmarshal(raw)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	l.mu.Lock()
	n := l.requests
	l.requests++
	l.mu.Unlock()
	if l.ingester != nil {
		if status, msg, accept := l.ingester(n, req); status != 0 {
			l.mu.Lock()
			for _, s := range req.Streams {
				for _, en := range s.Entries {
					if accept(s.Labels, en) {
						l.got[s.Labels] = append(l.got[s.Labels], en)
					}
				}
			}
			l.mu.Unlock()
			http.Error(w, msg, status)
			return
		}
	}
	now := time.Now()
	var errs []string
	l.mu.Lock()
	for _, s := range req.Streams {
		pairs, _ := parseLabels(s.Labels)
		bad := ""
		for _, p := range pairs {
			if l.maxLabelValue > 0 && len(p.Value) > l.maxLabelValue {
				bad = fmt.Sprintf(l.msgs[reasonLabelValueTooLong], s.Labels, p.Value)
			}
		}
		if bad != "" {
			errs = append(errs, bad)
			continue
		}
		for _, en := range s.Entries {
			switch {
			case l.maxAge > 0 && en.Timestamp.Before(now.Add(-l.maxAge)):
				errs = append(errs, fmt.Sprintf(l.msgs[reasonTooOld], s.Labels, en.Timestamp.Format(time.RFC3339), now.Add(-l.maxAge).Format(time.RFC3339)))
			case l.maxLine > 0 && len(en.Line) > l.maxLine:
				errs = append(errs, fmt.Sprintf(l.msgs[reasonLineTooLong], l.maxLine, s.Labels, len(en.Line)))
			default:
				l.got[s.Labels] = append(l.got[s.Labels], en)
			}
		}
	}
	l.mu.Unlock()
	if len(errs) > 0 {
		http.Error(w, groupedErrors(errs), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (l *strictLoki) lines(stream string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, en := range l.got[stream] {
		out = append(out, en.Line)
	}
	return out
}

func counter(t *testing.T, c *prometheus.CounterVec, labels ...string) float64 {
	t.Helper()
	var d dto.Metric
	if err := c.WithLabelValues(labels...).Write(&d); err != nil {
		t.Fatal(err)
	}
	return d.GetCounter().GetValue()
}

// syncExporter: no queue, so ConsumeLogs returns pushLogs' result.
func syncExporter(t *testing.T, url string, m *selftelemetry.Metrics, dir string, logger *zap.Logger) (func(plog.Logs) error, string) {
	t.Helper()
	cfg := testConfig(url)
	cfg.QueueConfig = configoptional.None[QueueBatchConfig]()
	cfg.RetryConfig.Enabled = false
	cfg.DeadLetter.Directory = dir
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	exp, id := startExporter(t, cfg, m, testHost{}, logger)
	t.Cleanup(func() { _ = exp.Shutdown(context.Background()) })
	return func(ld plog.Logs) error { return exp.ConsumeLogs(context.Background(), ld) }, id
}

// agedLogs: n records for pod-a; odd ones are age old, even ones recent.
func agedLogs(n int, age time.Duration) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	fullResource(rl.Resource(), "pod-a")
	lrs := rl.ScopeLogs().AppendEmpty().LogRecords()
	now := time.Now()
	for i := 0; i < n; i++ {
		r := lrs.AppendEmpty()
		r.Body().SetStr(fmt.Sprintf("line-%03d", i))
		ts := now.Add(-time.Duration(n-i) * time.Millisecond)
		if i%2 == 1 {
			ts = now.Add(-age - time.Duration(n-i)*time.Second)
		}
		r.SetTimestamp(pcommon.NewTimestampFromTime(ts))
		r.SetObservedTimestamp(pcommon.NewTimestampFromTime(now))
	}
	return ld
}

func readDeadLetters(t *testing.T, dir string) []deadRecord {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*"+deadLetterExt))
	var out []deadRecord
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 4<<20)
		for sc.Scan() {
			var r deadRecord
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("%s: not NDJSON: %v", f, err)
			}
			out = append(out, r)
		}
		fh.Close()
	}
	return out
}

// TestPartialRefusalTooOld: Loki (max age 20m, stricter than ours) ingests
// the recent half and refuses the old half with grouped "too old"
// messages. The refused entries are counted exactly, restamped and re-sent
// once; nothing is lost or duplicated; pushLogs returns nil.
func TestPartialRefusalTooOld(t *testing.T) {
	l := newStrictLoki(t)
	l.maxAge = 20 * time.Minute
	m := selftelemetry.New()
	dir := t.TempDir()
	push, id := syncExporter(t, l.url(), m, dir, nil)
	const n = 40
	if err := push(agedLogs(n, 30*time.Minute)); err != nil {
		t.Fatalf("pushLogs: %v; want nil (refused entries re-sent)", err)
	}
	got := l.lines(labelsA)
	seen := map[string]int{}
	for _, line := range got {
		seen[line]++
	}
	for i := 0; i < n; i++ {
		if c := seen[fmt.Sprintf("line-%03d", i)]; c != 1 {
			t.Errorf("line-%03d arrived %d times, want once", i, c)
		}
	}
	if r := counter(t, m.ExportRefused, id, reasonTooOld); r != n/2 {
		t.Errorf("refused{%s} = %v, want %d", reasonTooOld, r, n/2)
	}
	if a := counter(t, m.ExportAdjusted, id, adjRestamped); a != n/2 {
		t.Errorf("adjusted{restamped} = %v, want %d", a, n/2)
	}
	if d := readDeadLetters(t, dir); len(d) != 0 {
		t.Errorf("%d dead letters, want 0", len(d))
	}
	if l.requests != 2 {
		t.Errorf("%d pushes, want 2 (one re-send)", l.requests)
	}
}

// TestServerLineLimitSmaller: Loki's max_line_size (1000) is below ours:
// the refused line is split to Loki's bound and re-sent, every byte kept.
func TestServerLineLimitSmaller(t *testing.T) {
	l := newStrictLoki(t)
	l.maxLine = 1000
	m := selftelemetry.New()
	push, id := syncExporter(t, l.url(), m, t.TempDir(), nil)
	long := strings.Repeat("€", 1000) // 3000 bytes
	ld := logsOf(rec{body: "short", ts: time.Now()}, rec{body: long, ts: time.Now()})
	if err := push(ld); err != nil {
		t.Fatal(err)
	}
	got := l.lines(labelsA)
	if len(got) < 4 || got[0] != "short" || strings.Join(got[1:], "") != long {
		t.Errorf("got %d lines; want short then the long line in pieces", len(got))
	}
	for _, p := range got {
		if len(p) > 1000 {
			t.Errorf("piece of %d bytes", len(p))
		}
	}
	if counter(t, m.ExportRefused, id, reasonLineTooLong) != 1 || counter(t, m.ExportAdjusted, id, adjSplit) != 1 {
		t.Errorf("refused %v split %v, want 1 and 1", counter(t, m.ExportRefused, id, reasonLineTooLong), counter(t, m.ExportAdjusted, id, adjSplit))
	}
}

// TestUnfixableDeadLetter: a label value over Loki's (stricter) limit
// cannot be fixed here: the stream's entries go to the dead-letter file
// with Loki's message; the other stream is delivered; pushLogs returns nil.
func TestUnfixableDeadLetter(t *testing.T) {
	l := newStrictLoki(t)
	l.maxLabelValue = 12
	m := selftelemetry.New()
	dir := t.TempDir()
	push, id := syncExporter(t, l.url(), m, dir, nil)
	var seq [2]int
	ld := testBatch(&seq, 3)
	// pod-b's stream gets a 20-byte pod name (> 12); pod-a's stays.
	ld.ResourceLogs().At(1).Resource().Attributes().PutStr(conventions.AttrPod, "pod-b-0123456789abcd")
	if err := push(ld); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(l.lines(labelsA), ","); got != "pod-a-00000,pod-a-00001,pod-a-00002" {
		t.Errorf("pod-a delivered %s; want its 3 lines", got)
	}
	dead := readDeadLetters(t, dir)
	const want = 3
	if len(dead) != want {
		t.Fatalf("%d dead letters, want %d (pod-b's stream)", len(dead), want)
	}
	r := dead[len(dead)-1]
	if r.Reason != reasonLabelValueTooLong || r.Stream["pod"] != "pod-b-0123456789abcd" || r.Line != "pod-b-00002" ||
		!strings.Contains(r.Message, "has label value too long") || r.Status != 400 || r.LokiAccepted != "" {
		t.Errorf("dead letter %+v", r)
	}
	ts, err := strconv.ParseInt(r.TS, 10, 64)
	if err != nil || ts == 0 {
		t.Errorf("ts %q", r.TS)
	}
	if c := counter(t, m.ExportDeadLetter, id, reasonLabelValueTooLong); c != float64(want) {
		t.Errorf("dead_letter{%s} = %v, want %d", reasonLabelValueTooLong, c, want)
	}
}

// TestIngesterPartial: the ingester's per-stream form. Listed exactly
// (N <= listed): only those are re-sent, restamped. Not all listed: the
// stream's entries are dead-lettered with loki_accepted "M-N of M".
func TestIngesterPartial(t *testing.T) {
	msgs := lokiMessages(t)
	ingesterBody := func(req push.PushRequest, refuse map[int]bool, listMax int) string {
		s := req.Streams[0]
		var b strings.Builder
		listed := 0
		for i, en := range s.Entries {
			if refuse[i] && listed < listMax {
				why := fmt.Sprintf(msgs[reasonTooFarBehind], en.Timestamp.Format(time.RFC3339), time.Now().Add(-time.Hour).Format(time.RFC3339))
				b.WriteString(fmt.Sprintf(msgs["ingester_entry"], en.Timestamp.String(), why) + "\n")
				listed++
			}
		}
		b.WriteString(fmt.Sprintf(msgs["ingester_total"], "fake", len(refuse), len(s.Entries), s.Labels))
		return b.String()
	}
	for _, tc := range []struct {
		name    string
		refuse  map[int]bool
		listMax int
		resent  bool
	}{
		{"all listed", map[int]bool{1: true, 3: true}, 10, true},
		{"more refused than listed", map[int]bool{1: true, 3: true}, 1, false},
		{"whole stream refused, one listed", map[int]bool{0: true, 1: true, 2: true, 3: true, 4: true}, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newStrictLoki(t)
			refuse := tc.refuse
			var refusedLines []string
			l.ingester = func(n int, req push.PushRequest) (int, string, func(string, push.Entry) bool) {
				if n > 0 {
					return 0, "", nil
				}
				for i := range refuse {
					refusedLines = append(refusedLines, req.Streams[0].Entries[i].Line)
				}
				idx := map[string]int{}
				for i, en := range req.Streams[0].Entries {
					idx[en.Line] = i
				}
				return http.StatusBadRequest, ingesterBody(req, refuse, tc.listMax), func(_ string, en push.Entry) bool { return !refuse[idx[en.Line]] }
			}
			m := selftelemetry.New()
			dir := t.TempDir()
			push, id := syncExporter(t, l.url(), m, dir, nil)
			now := time.Now()
			var recs []rec
			for i := 0; i < 5; i++ {
				recs = append(recs, rec{body: fmt.Sprintf("e%d", i), ts: now.Add(time.Duration(i) * time.Millisecond)})
			}
			if err := push(logsOf(recs...)); err != nil {
				t.Fatal(err)
			}
			if r := counter(t, m.ExportRefused, id, reasonTooFarBehind); r != float64(len(refuse)) {
				t.Errorf("refused = %v, want %d", r, len(refuse))
			}
			got := l.lines(labelsA)
			dead := readDeadLetters(t, dir)
			if tc.resent {
				seen := map[string]int{}
				for _, g := range got {
					seen[g]++
				}
				if len(got) != 5 || len(seen) != 5 || len(dead) != 0 {
					t.Errorf("delivered %v, %d dead; want all 5 once, none dead", got, len(dead))
				}
				return
			}
			if len(got) != 3 || len(dead) != 5 {
				t.Fatalf("delivered %v, %d dead; want 3 delivered and the stream's 5 dead-lettered", got, len(dead))
			}
			for _, d := range dead {
				if d.LokiAccepted != "3 of 5" || d.Reason != reasonTooFarBehind {
					t.Errorf("dead letter %+v: want loki_accepted \"3 of 5\"", d)
				}
			}
		})
	}
}

// TestRateLimitPartial: a 429 in the ingester's per-stream form: the listed
// entries are re-sent (after Retry-After), the others not duplicated.
func TestRateLimitPartial(t *testing.T) {
	msgs := lokiMessages(t)
	l := newStrictLoki(t)
	l.ingester = func(n int, req push.PushRequest) (int, string, func(string, push.Entry) bool) {
		if n > 0 {
			return 0, "", nil
		}
		s := req.Streams[0]
		en := s.Entries[2]
		why := fmt.Sprintf(msgs[reasonStreamRateLimit], "3MB", s.Labels, "1KB")
		body := fmt.Sprintf(msgs["ingester_entry"], en.Timestamp.String(), why) + "\n" + fmt.Sprintf(msgs["ingester_total"], "fake", 1, len(s.Entries), s.Labels)
		return http.StatusTooManyRequests, body, func(_ string, e push.Entry) bool { return e.Line != en.Line }
	}
	m := selftelemetry.New()
	push, id := syncExporter(t, l.url(), m, t.TempDir(), nil)
	now := time.Now()
	if err := push(logsOf(rec{body: "r0", ts: now}, rec{body: "r1", ts: now}, rec{body: "r2", ts: now.Add(time.Millisecond)})); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(l.lines(labelsA), ","); got != "r0,r1,r2" {
		t.Errorf("delivered %s, want r0,r1,r2 once each", got)
	}
	if r := counter(t, m.ExportRefused, id, reasonStreamRateLimit); r != 1 {
		t.Errorf("refused = %v, want 1", r)
	}
}

// TestUnknown4xx: a 4xx body that is not Loki's: every entry is
// dead-lettered, flagged, never silently dropped.
func TestUnknown4xx(t *testing.T) {
	srv := newFakeLoki(t)
	srv.respond = func(int, *http.Request) (int, map[string]string, string, time.Duration) {
		return http.StatusForbidden, nil, "<html>403 Forbidden by the gateway</html>", 0
	}
	m := selftelemetry.New()
	dir := t.TempDir()
	push, id := syncExporter(t, srv.url(), m, dir, nil)
	var seq [2]int
	if err := push(testBatch(&seq, 2)); err != nil {
		t.Fatal(err)
	}
	dead := readDeadLetters(t, dir)
	if len(dead) != 4 {
		t.Fatalf("%d dead letters, want 4", len(dead))
	}
	for _, d := range dead {
		if d.Reason != reasonUnknown || d.Status != 403 || d.LokiAccepted != "unknown" || !strings.Contains(d.Message, "403 Forbidden by the gateway") {
			t.Errorf("dead letter %+v", d)
		}
	}
	if c := counter(t, m.ExportDeadLetter, id, reasonUnknown); c != 4 {
		t.Errorf("dead_letter{unknown} = %v", c)
	}
	if c := failed(m, id, reasonHTTP4xx); c != 1 {
		t.Errorf("failed{http_4xx} = %v, want 1", c)
	}
}

// TestDeadLetterFull: with the dead-letter files at max_bytes, unfixable
// entries are dropped: a permanent error that exporterhelper counts in
// opsight_export_dropped_total, and a loud error log saying what to do.
func TestDeadLetterFull(t *testing.T) {
	l := newStrictLoki(t)
	l.maxLabelValue = 5 // every stream refused
	dir := t.TempDir()
	cfg := testConfig(l.url())
	cfg.QueueConfig = configoptional.None[QueueBatchConfig]()
	cfg.RetryConfig.Enabled = false
	cfg.DeadLetter.Directory = dir
	cfg.DeadLetter.MaxBytes = 1 << 20
	// An earlier run filled the budget.
	if err := os.WriteFile(filepath.Join(dir, "loki-loki_test-20260101T000000.000000000Z.ndjson"), make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	m := selftelemetry.New()
	core, logs := observer.New(zap.ErrorLevel)
	f := m.WrapExporter(newFactory(withMetrics(m)))
	set := exportertest.NewNopSettings(componentType)
	set.ID = component.MustNewIDWithName(typeStr, "test")
	set.Logger = zap.New(core)
	exp, err := f.CreateLogs(context.Background(), set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Start(context.Background(), testHost{}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = exp.Shutdown(context.Background()) }()
	var seq [2]int
	err = exp.ConsumeLogs(context.Background(), testBatch(&seq, 2))
	if err == nil || !consumererror.IsPermanent(err) || !strings.Contains(err.Error(), "max_bytes") {
		t.Fatalf("err = %v; want a permanent error naming dead_letter.max_bytes", err)
	}
	found := false
	for _, e := range logs.All() {
		if strings.Contains(e.Message, "LOG ENTRIES LOST") && e.ContextMap()["lost_entries"] == int64(4) {
			found = true
		}
	}
	if !found {
		t.Errorf("no loud error log with lost_entries=4: %v", logs.All())
	}
	if d := gatherCounter(t, m, conventions.MetricExportDropped, "send_failed"); d != 4 {
		t.Errorf("%s{send_failed} = %v, want 4", conventions.MetricExportDropped, d)
	}
}

func gatherCounter(t *testing.T, m *selftelemetry.Metrics, name, reason string) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if lp.GetName() == "reason" && lp.GetValue() == reason {
					return mt.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("%s{reason=%q} not found", name, reason)
	return 0
}

// TestNewestSurvivesRestart: the newest timestamp sent per stream is saved
// at shutdown beside the dead-letter files and read by the next process,
// so an entry far behind what Loki already holds is restamped before
// sending, not refused.
func TestNewestSurvivesRestart(t *testing.T) {
	loki := newStrictLoki(t)
	dir := t.TempDir()
	m := selftelemetry.New()
	cfg := testConfig(loki.url())
	cfg.QueueConfig = configoptional.None[QueueBatchConfig]()
	cfg.DeadLetter.Directory = dir
	now := time.Now()

	exp, id := startExporter(t, cfg, m, testHost{}, nil)
	if err := exp.ConsumeLogs(context.Background(), logsOf(rec{body: "now", ts: now})); err != nil {
		t.Fatal(err)
	}
	if err := exp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "loki-loki_test-newest.json")); err != nil {
		t.Fatalf("newest timestamps not saved: %v", err)
	}

	exp2, _ := startExporter(t, cfg, m, testHost{}, nil)
	defer func() { _ = exp2.Shutdown(context.Background()) }()
	if err := exp2.ConsumeLogs(context.Background(), logsOf(rec{body: "2h old", ts: now.Add(-2 * time.Hour), obs: now})); err != nil {
		t.Fatal(err)
	}
	if a := counter(t, m.ExportAdjusted, id, adjRestamped); a != 1 {
		t.Errorf("adjusted{restamped} = %v, want 1 (the second process knew the stream's newest)", a)
	}
	loki.mu.Lock()
	defer loki.mu.Unlock()
	if got := loki.got[labelsA]; len(got) != 2 || !got[1].Timestamp.Equal(now) {
		t.Errorf("stored %+v; want the 2h-old entry at its observed time", got)
	}
}
