package operatorlogsreceiver

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/selftelemetry"
)

// podLogsFaults serves pods/log the way the API server and kubelet do
// (timestamps in RFC3339NanoFixed, sinceTime at seconds precision, previous,
// follow) over lines held in memory, and injects what a real server cannot
// be made to do on demand: torn connections and refusals. The real kubelet
// reader is exercised by test/e2e against tools/podlogs.
type podLogsFaults struct {
	mu        sync.Mutex
	instances [][]apiTestLine // restarts of the container; the last is current
	token     string
	status    int                 // non-zero: refuse every request with it
	tear      func(req int) int   // bytes to write before cutting the connection; 0: none
	requests  []map[string]string // query of each request
	torn      int                 // connections cut mid-stream
	wake      chan struct{}       // closed when lines are added
}

type apiTestLine struct {
	ts   time.Time
	text string
	open bool // written without its newline (the instance's last line)
}

func newPodLogsFaults() *podLogsFaults {
	return &podLogsFaults{instances: [][]apiTestLine{nil}, token: "t0", wake: make(chan struct{})}
}

func (f *podLogsFaults) add(lines ...apiTestLine) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur := len(f.instances) - 1
	f.instances[cur] = append(f.instances[cur], lines...)
	close(f.wake)
	f.wake = make(chan struct{})
}

// rotate moves the current instance's lines out of reach, as the kubelet's
// rename of N.log does: the API serves only the live file.
func (f *podLogsFaults) rotate() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.instances[len(f.instances)-1] = nil
}

// restart ends the current instance and starts the next (kubelet: N+1.log).
func (f *podLogsFaults) restart() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.instances = append(f.instances, nil)
	close(f.wake)
	f.wake = make(chan struct{})
}

func (f *podLogsFaults) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f.mu.Lock()
	req := len(f.requests)
	f.requests = append(f.requests, map[string]string{"previous": q.Get("previous"), "sinceTime": q.Get("sinceTime"), "follow": q.Get("follow")})
	status, tear := f.status, 0
	if f.tear != nil {
		tear = f.tear(req)
	}
	token := f.token
	f.mu.Unlock()
	if status == 0 && r.Header.Get("Authorization") != "Bearer "+token {
		status = http.StatusUnauthorized
	}
	if r.URL.Path != "/api/v1/namespaces/ops/pods/op-0/log" || q.Get("container") != "manager" || q.Get("timestamps") != "true" {
		status = http.StatusNotFound
	}
	if status != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"injected %d","code":%d}`, status, status)
		return
	}
	var since time.Time
	if s := q.Get("sinceTime"); s != "" {
		var err error
		if since, err = time.Parse(time.RFC3339, s); err != nil || since.Nanosecond() != 0 {
			http.Error(w, "sinceTime must have seconds precision, as the API server passes it on", http.StatusBadRequest)
			return
		}
	}
	f.mu.Lock()
	inst := len(f.instances) - 1
	if q.Get("previous") == "true" {
		inst--
	}
	f.mu.Unlock()
	if inst < 0 {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"kind":"Status","message":"previous terminated container \"manager\" in pod \"op-0\" not found","code":400}`)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	written, sent := 0, 0
	for {
		f.mu.Lock()
		if sent > len(f.instances[inst]) {
			sent = 0 // rotated: the new live file is read from its start
		}
		lines := f.instances[inst][sent:]
		current := inst == len(f.instances)-1
		wake := f.wake
		f.mu.Unlock()
		var b []byte
		for _, l := range lines {
			if !l.ts.Before(since) {
				b = l.ts.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000000Z07:00")
				b = append(b, ' ')
				b = append(b, l.text...)
				if !l.open {
					b = append(b, '\n')
				}
			}
		}
		sent += len(lines)
		if tear > 0 && written+len(b) >= tear {
			w.Write(b[:tear-written])
			w.(http.Flusher).Flush()
			f.mu.Lock()
			f.torn++
			f.mu.Unlock()
			panic(http.ErrAbortHandler) // the connection is cut mid-stream
		}
		w.Write(b)
		w.(http.Flusher).Flush()
		written += len(b)
		if q.Get("follow") != "true" || !current {
			return
		}
		select {
		case <-wake:
		case <-r.Context().Done():
			return
		}
	}
}

type apiFixture struct {
	srv       *httptest.Server
	faults    *podLogsFaults
	tokenFile string
	cfg       *Config
}

func newAPIFixture(t *testing.T) *apiFixture {
	t.Helper()
	f := newPodLogsFaults()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("t0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := createDefaultConfig().(*Config)
	cfg.Source = SourceAPI
	cfg.API = APIConfig{Endpoint: srv.URL, Namespace: "ops", Pod: "op-0", Container: "manager", TokenFile: tokenFile}
	cfg.PollInterval = 10 * time.Millisecond
	return &apiFixture{srv: srv, faults: f, tokenFile: tokenFile, cfg: cfg}
}

// generateLines makes n lines: runs of equal timestamps (the API's only
// coordinate, so resuming must count them), several per second (sinceTime
// has seconds precision), and some longer than maxLine.
func generateLines(rng *rand.Rand, n, first int, at time.Time, maxLine int) []apiTestLine {
	out := make([]apiTestLine, 0, n)
	for i := 0; i < n; i++ {
		if rng.IntN(3) != 0 {
			at = at.Add(time.Duration(rng.IntN(40_000_000)) + 1)
		}
		text := fmt.Sprintf(`{"level":"info","msg":"reconciled","seq":%d}`, first+i)
		if rng.IntN(25) == 0 {
			text += strings.Repeat("x", maxLine+rng.IntN(3*maxLine))
		}
		out = append(out, apiTestLine{ts: at, text: text})
	}
	return out
}

// joinBodies is every record's body in delivery order, concatenated.
func joinBodies(recs []rec) string {
	var b strings.Builder
	for _, r := range recs {
		b.WriteString(r.body)
	}
	return b.String()
}

// wantExactlyOnce compares what arrived with what was written: the bodies,
// joined, must be the lines, joined (pieces of a long line are consecutive),
// and each record keeps its line's timestamp.
func wantExactlyOnce(t *testing.T, sink *consumertest.LogsSink, lines []apiTestLine) {
	t.Helper()
	got := records(sink.AllLogs())
	var want strings.Builder
	for _, l := range lines {
		want.WriteString(l.text)
	}
	joined := joinBodies(got)
	if joined != want.String() {
		at := 0
		for at < len(joined) && at < want.Len() && joined[at] == want.String()[at] {
			at++
		}
		t.Fatalf("delivered text differs from the log at byte %d of %d (got %d bytes in %d records)\n got: %.200q\nwant: %.200q",
			at, want.Len(), len(joined), len(got), joined[at:], want.String()[at:])
	}
	// Timestamps: walk the records against the lines.
	li, off := 0, 0
	for i, r := range got {
		if ts := time.Unix(0, int64(r.ts)); !ts.Equal(lines[li].ts) {
			t.Fatalf("record %d (%.60q) has timestamp %v, want %v", i, r.body, ts, lines[li].ts)
		}
		off += len(r.body)
		if off == len(lines[li].text) {
			li, off = li+1, 0
		}
	}
}

func eventuallyLines(t *testing.T, sink *consumertest.LogsSink, lines []apiTestLine) {
	t.Helper()
	total := 0
	for _, l := range lines {
		total += len(l.text)
	}
	eventually(t, fmt.Sprintf("%d bytes of lines", total), 30*time.Second, func() bool {
		return len(joinBodies(records(sink.AllLogs()))) >= total
	})
}

func TestAPIResumesExactlyAfterTornStreamsAndRestarts(t *testing.T) {
	for _, longLines := range []string{LongLinesSplit, LongLinesTrunc} {
		t.Run(longLines, func(t *testing.T) {
			fx := newAPIFixture(t)
			fx.cfg.MaxLineSize = 1024
			fx.cfg.LongLines = LongLines(longLines)
			fx.cfg.MaxBatchLines = 7 // batches end inside long lines
			storageID := component.MustNewID("file_storage")
			fx.cfg.Storage = &storageID
			rng := rand.New(rand.NewPCG(7, 9))
			// Every request but each fifth is cut after a random number of bytes.
			fx.faults.tear = func(req int) int {
				if req%5 == 4 {
					return 0
				}
				return 1 + rng.IntN(20_000)
			}
			lines := generateLines(rng, 3000, 0, time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC), fx.cfg.MaxLineSize)
			want := lines
			if longLines == LongLinesTrunc {
				want = truncated(lines, fx.cfg.MaxLineSize)
			}
			stateDir := t.TempDir()
			sink := new(consumertest.LogsSink)
			// Three runs of the receiver over one storage, lines arriving meanwhile.
			for run, chunk := 0, len(lines)/3; run < 3; run++ {
				fx.faults.add(lines[run*chunk : (run+1)*chunk]...)
				_, host := newFileStorage(t, stateDir)
				r := start(t, fx.cfg, sink, host, selftelemetry.New())
				eventuallyLines(t, sink, want[:(run+1)*chunk])
				if err := r.Shutdown(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			wantExactlyOnce(t, sink, want)
			fx.faults.mu.Lock()
			tears := fx.faults.torn
			fx.faults.mu.Unlock()
			t.Logf("%d requests, %d cut mid-stream", len(fx.faults.requests), tears)
			if tears < 6 {
				t.Errorf("only %d torn streams; the test no longer exercises resuming", tears)
			}
		})
	}
}

func truncated(lines []apiTestLine, max int) []apiTestLine {
	out := make([]apiTestLine, len(lines))
	for i, l := range lines {
		if len(l.text) > max {
			l.text = l.text[:max]
		}
		out[i] = l
	}
	return out
}

func TestAPIDrainsPreviousInstanceAfterRestart(t *testing.T) {
	fx := newAPIFixture(t)
	storageID := component.MustNewID("file_storage")
	fx.cfg.Storage = &storageID
	rng := rand.New(rand.NewPCG(1, 2))
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	first := generateLines(rng, 200, 0, at, fx.cfg.MaxLineSize)
	fx.faults.add(first...)
	stateDir := t.TempDir()
	sink := new(consumertest.LogsSink)
	_, host := newFileStorage(t, stateDir)
	r := start(t, fx.cfg, sink, host, selftelemetry.New())
	eventuallyLines(t, sink, first)
	if err := r.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// While the sidecar is down the operator writes more, crashes, and
	// restarts: the rest of instance 0 is reachable only with previous=true.
	more := generateLines(rng, 150, 200, first[len(first)-1].ts, fx.cfg.MaxLineSize)
	fx.faults.add(more...)
	fx.faults.restart()
	next := generateLines(rng, 150, 350, more[len(more)-1].ts.Add(time.Second), fx.cfg.MaxLineSize)
	fx.faults.add(next...)
	_, host = newFileStorage(t, stateDir)
	start(t, fx.cfg, sink, host, selftelemetry.New())
	all := append(append(append([]apiTestLine{}, first...), more...), next...)
	eventuallyLines(t, sink, all)
	wantExactlyOnce(t, sink, all)
	// And a restart while streaming: the follow stream ends, the next round
	// follows instance 2.
	last := generateLines(rng, 50, 500, next[len(next)-1].ts.Add(time.Second), fx.cfg.MaxLineSize)
	fx.faults.restart()
	fx.faults.add(last...)
	all = append(all, last...)
	eventuallyLines(t, sink, all)
	wantExactlyOnce(t, sink, all)
}

func TestAPIRefusalsAreExplainedAndRetried(t *testing.T) {
	tests := []struct {
		name  string
		fault func(fx *apiFixture)
		fix   func(fx *apiFixture)
		inLog string
	}{
		{"forbidden", func(fx *apiFixture) { fx.faults.status = http.StatusForbidden },
			func(fx *apiFixture) { fx.faults.status = 0 }, "sidecar.apiLogAccess"},
		{"not found", func(fx *apiFixture) { fx.faults.status = http.StatusNotFound },
			func(fx *apiFixture) { fx.faults.status = 0 }, "check api.namespace and api.pod"},
		// A rotated projected token: the file is read again on every request.
		{"token rotated", func(fx *apiFixture) { fx.faults.token = "t1" },
			func(fx *apiFixture) {
				if err := os.WriteFile(fx.tokenFile, []byte("t1"), 0o600); err != nil {
					panic(err)
				}
			}, "api.token_file was rejected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newAPIFixture(t)
			fx.faults.mu.Lock()
			tt.fault(fx)
			fx.faults.mu.Unlock()
			lines := generateLines(rand.New(rand.NewPCG(3, 4)), 50, 0, time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC), fx.cfg.MaxLineSize)
			fx.faults.add(lines...)
			core, logs := observer.New(zap.InfoLevel)
			set := testSettings(t)
			set.Logger = zap.New(core)
			sink := new(consumertest.LogsSink)
			r, err := newFactory(factoryOptions{metrics: selftelemetry.New()}).CreateLogs(context.Background(), set, fx.cfg, sink)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Start(context.Background(), componenttest.NewNopHost()); err != nil {
				t.Fatal(err)
			}
			defer r.Shutdown(context.Background())
			eventually(t, "the refusal logged", 10*time.Second, func() bool {
				return logs.FilterMessageSnippet("failed; retrying").FilterFieldKey("error").Len() > 0
			})
			msg := logs.FilterMessageSnippet("failed; retrying").All()[0].ContextMap()["error"].(string)
			if !strings.Contains(msg, tt.inLog) || !strings.Contains(msg, "ops/op-0/manager") {
				t.Errorf("error %q does not say what to do (%q) or which container", msg, tt.inLog)
			}
			if sink.LogRecordCount() != 0 {
				t.Fatalf("records delivered while refused")
			}
			fx.faults.mu.Lock()
			tt.fix(fx)
			fx.faults.mu.Unlock()
			eventuallyLines(t, sink, lines)
			wantExactlyOnce(t, sink, lines)
			if logs.FilterMessageSnippet("streaming the container log again").Len() == 0 {
				t.Errorf("recovery not logged")
			}
		})
	}
}

// A checkpoint whose line the API no longer serves (rotated away while the
// sidecar was down) is reported with the time range that may be lost; a
// plain restart is not.
func TestAPIReportsRotatedAwayGap(t *testing.T) {
	fx := newAPIFixture(t)
	storageID := component.MustNewID("file_storage")
	fx.cfg.Storage = &storageID
	stateDir := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 6))
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	run := func(want []apiTestLine) *observer.ObservedLogs {
		core, logs := observer.New(zap.InfoLevel)
		set := testSettings(t)
		set.Logger = zap.New(core)
		_, host := newFileStorage(t, stateDir)
		sink := new(consumertest.LogsSink)
		r, err := newFactory(factoryOptions{metrics: selftelemetry.New()}).CreateLogs(context.Background(), set, fx.cfg, sink)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(context.Background(), host); err != nil {
			t.Fatal(err)
		}
		eventuallyLines(t, sink, want)
		if err := r.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		wantExactlyOnce(t, sink, want)
		return logs
	}
	first := generateLines(rng, 100, 0, at, fx.cfg.MaxLineSize)
	fx.faults.add(first...)
	run(first)
	more := generateLines(rng, 100, 100, first[len(first)-1].ts, fx.cfg.MaxLineSize)
	fx.faults.add(more...)
	if logs := run(more); logs.FilterMessageSnippet("no longer served").Len() != 0 {
		t.Errorf("gap reported after a plain restart: %v", logs.FilterMessageSnippet("no longer served").All())
	}
	lost := generateLines(rng, 100, 200, more[len(more)-1].ts, fx.cfg.MaxLineSize)
	fx.faults.add(lost...)
	fx.faults.rotate()
	after := generateLines(rng, 100, 300, lost[len(lost)-1].ts.Add(time.Second), fx.cfg.MaxLineSize)
	fx.faults.add(after...)
	logs := run(after)
	gap := logs.FilterMessageSnippet("no longer served").All()
	if len(gap) != 1 {
		t.Fatalf("want one gap report, got %d", len(gap))
	}
	f := gap[0].ContextMap()
	if !f["last_shipped"].(time.Time).Equal(more[len(more)-1].ts) || !f["next_served"].(time.Time).Equal(after[0].ts) {
		t.Errorf("gap reported as %v .. %v, want %v .. %v", f["last_shipped"], f["next_served"], more[len(more)-1].ts, after[0].ts)
	}
}

func TestAPIRecordsCarryThePod(t *testing.T) {
	fx := newAPIFixture(t)
	fx.faults.add(apiTestLine{ts: time.Date(2026, 11, 25, 10, 0, 0, 5, time.UTC), text: "plain line"},
		apiTestLine{ts: time.Date(2026, 11, 25, 10, 0, 0, 6, time.UTC), text: "last line without newline", open: true})
	fx.faults.restart() // the instance ended: its stream closes cleanly
	sink := new(consumertest.LogsSink)
	start(t, fx.cfg, sink, nil, nil)
	eventually(t, "2 records", 10*time.Second, func() bool { return sink.LogRecordCount() >= 2 })
	ld := sink.AllLogs()[0]
	res := ld.ResourceLogs().At(0).Resource().Attributes()
	for k, want := range map[string]string{conventions.AttrNamespace: "ops", conventions.AttrPod: "op-0", conventions.AttrContainer: "manager"} {
		if v, ok := res.Get(k); !ok || v.Str() != want {
			t.Errorf("resource %s = %v, want %s", k, v.AsRaw(), want)
		}
	}
	rec := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0)
	if rec.Body().Str() != "plain line" || rec.Timestamp().AsTime().Nanosecond() != 5 {
		t.Errorf("record = %q at %v", rec.Body().Str(), rec.Timestamp().AsTime())
	}
	if last := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(1); last.Body().Str() != "last line without newline" {
		t.Errorf("unterminated last line = %q", last.Body().Str())
	}
}

// FuzzAPIStream feeds arbitrary bytes, cut into arbitrary chunks, through the
// pods/log stream parser and checks that nothing is lost or invented: the
// bodies, joined, are the lines without newlines and without a leading
// timestamp where one parses (long lines are split, so joining restores them).
func FuzzAPIStream(f *testing.F) {
	f.Add([]byte("2026-11-25T10:00:00.000000001Z {\"msg\":\"a\"}\n2026-11-25T10:00:00.000000001Z b\nno timestamp\n"), uint8(7))
	f.Add([]byte("2026-11-25T10:00:00.5Z trimmed fraction\n\n\x00\xff binary\n2026-11-25T10:00:01Z last without newline"), uint8(3))
	f.Add([]byte("2026-11-25T10:00:00.000000000Z "+strings.Repeat("y", 5000)+"\n"), uint8(200))
	f.Fuzz(func(t *testing.T, stream []byte, cut uint8) {
		cfg := createDefaultConfig().(*Config)
		cfg.Source = SourceAPI
		cfg.MaxLineSize = minLineSize
		cfg.MaxBatchLines = 3
		cfg.API = APIConfig{Endpoint: "http://127.0.0.1:1", Namespace: "ns", Pod: "p", Container: "c", TokenFile: "/nonexistent"}
		sink := new(consumertest.LogsSink)
		rc, err := newReceiver(testSettings(t), cfg, sink, selftelemetry.New())
		if err != nil {
			t.Fatal(err)
		}
		rc.ctx = context.Background()
		a, err := rc.newAPISource()
		if err != nil {
			t.Fatal(err)
		}
		rc.api = a
		step := int(cut) + 1
		for i := 0; i < len(stream); i += step {
			if err := a.feed(stream[i:min(i+step, len(stream))]); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.finish(); err != nil { // a clean end: the last line is final
			t.Fatal(err)
		}
		if err := rc.flush(); err != nil {
			t.Fatal(err)
		}
		var want strings.Builder
		lines := strings.Split(string(stream), "\n")
		if lines[len(lines)-1] == "" {
			lines = lines[:len(lines)-1]
		}
		for _, l := range lines {
			if i := strings.IndexByte(l, ' '); i > 0 && i <= apiTimestampLen+6 {
				if _, ok := parseTimestamp(l[:i]); ok {
					l = l[i+1:]
				}
			}
			want.WriteString(l)
		}
		got := records(sink.AllLogs())
		if joined := joinBodies(got); joined != want.String() {
			t.Fatalf("records %+v\nwant joined bodies %q", got, want.String())
		}
		if len(got) < len(lines) {
			t.Fatalf("%d records for %d lines", len(got), len(lines))
		}
	})
}
