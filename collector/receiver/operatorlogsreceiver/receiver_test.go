package operatorlogsreceiver

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/selftelemetry"
)

func testSettings(t *testing.T) receiver.Settings {
	set := receivertest.NewNopSettings(componentType)
	// A stable id, as in a real collector: the storage client is keyed by it.
	set.ID = component.NewID(componentType)
	set.Logger = zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	return set
}

type testHost struct {
	component.Host
	ext map[component.ID]component.Component
}

func (h testHost) GetExtensions() map[component.ID]component.Component { return h.ext }

func podLogDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "var", "log", "pods", "opsys_manager-abc_uid-1", "manager")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func fastConfig(glob string) *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.Include = []string{glob}
	cfg.PollInterval = 10 * time.Millisecond
	return cfg
}

func start(t *testing.T, cfg *Config, next consumer.Logs, host component.Host, m *selftelemetry.Metrics) *operatorLogsReceiver {
	t.Helper()
	if m == nil {
		m = selftelemetry.New()
	}
	r, err := newFactory(factoryOptions{metrics: m}).CreateLogs(context.Background(), testSettings(t), cfg, next)
	if err != nil {
		t.Fatal(err)
	}
	if host == nil {
		host = componenttest.NewNopHost()
	}
	if err := r.Start(context.Background(), host); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	return r.(*operatorLogsReceiver)
}

func eventually(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func criLine(i int) string {
	return fmt.Sprintf("2024-03-01T10:11:12.%09dZ stdout F {\"level\":\"info\",\"msg\":\"reconciled\",\"seq\":%d}\n", i%1e9, i)
}

// seqOf extracts the sequence number from a body written by criLine.
func seqOf(body string) int {
	i := strings.Index(body, `"seq":`)
	if i < 0 {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSuffix(body[i+6:], "}"))
	if err != nil {
		return -1
	}
	return n
}

// counts returns how often each sequence number was received.
func counts(sink *consumertest.LogsSink) map[int]int {
	c := map[int]int{}
	for _, r := range records(sink.AllLogs()) {
		c[seqOf(r.body)]++
	}
	return c
}

func TestTailKubeletFile(t *testing.T) {
	dir := podLogDir(t)
	path := filepath.Join(dir, "0.log")
	appendFile(t, path, "2024-03-01T10:11:12.000000001Z stdout F {\"msg\":\"one\"}\n"+
		"2024-03-01T10:11:12.000000002+00:00 stderr P {\"msg\":\n"+
		"garbage line\n")
	sink := new(consumertest.LogsSink)
	start(t, fastConfig(filepath.Join(filepath.Dir(filepath.Dir(dir)), "*", "*", "*.log")), sink, nil, nil)
	eventually(t, "first two records", 5*time.Second, func() bool { return sink.LogRecordCount() >= 2 })
	appendFile(t, path, "2024-03-01T10:11:12.000000003Z stderr F \"two\"}\n")
	eventually(t, "the joined line", 5*time.Second, func() bool { return sink.LogRecordCount() >= 3 })

	got := records(sink.AllLogs())
	want := []rec{
		{body: `{"msg":"one"}`, ts: 1709287872000000001, stream: "stdout"},
		{body: "garbage line", parseErr: reasonBadFrame},
		{body: `{"msg":"two"}`, ts: 1709287872000000002, stream: "stderr"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("record %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	res := sink.AllLogs()[0].ResourceLogs().At(0).Resource().Attributes()
	for k, v := range map[string]string{
		conventions.AttrLogFilePath: path, conventions.AttrNamespace: "opsys", conventions.AttrPod: "manager-abc",
		attrPodUID: "uid-1", conventions.AttrContainer: "manager",
	} {
		if got, ok := res.Get(k); !ok || got.Str() != v {
			t.Errorf("resource %s = %v, want %s", k, got.AsRaw(), v)
		}
	}
	lr := sink.AllLogs()[0].ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0)
	if obs := lr.ObservedTimestamp().AsTime(); time.Since(obs) > time.Minute || obs.After(time.Now()) {
		t.Errorf("ObservedTimestamp %v is not the read time", obs)
	}
}

func TestStartAtEndAndNewFiles(t *testing.T) {
	dir := podLogDir(t)
	appendFile(t, filepath.Join(dir, "0.log"), criLine(0)+criLine(1))
	cfg := fastConfig(filepath.Join(dir, "*.log"))
	cfg.StartAt = StartAtEnd
	sink := new(consumertest.LogsSink)
	start(t, cfg, sink, nil, nil)
	time.Sleep(100 * time.Millisecond)
	appendFile(t, filepath.Join(dir, "0.log"), criLine(2))
	appendFile(t, filepath.Join(dir, "1.log"), criLine(3)) // appeared after start: read from its beginning
	eventually(t, "lines 2 and 3", 5*time.Second, func() bool { return sink.LogRecordCount() >= 2 })
	time.Sleep(100 * time.Millisecond)
	c := counts(sink)
	if len(c) != 2 || c[2] != 1 || c[3] != 1 {
		t.Fatalf("got %v, want exactly lines 2 and 3 once", c)
	}
}

func TestExcludeAndGzipRead(t *testing.T) {
	dir := podLogDir(t)
	appendFile(t, filepath.Join(dir, "0.log"), criLine(0))
	appendFile(t, filepath.Join(dir, "skip.log"), criLine(1))
	gz, _ := os.Create(filepath.Join(dir, "2.log.gz"))
	zw := gzip.NewWriter(gz)
	io.WriteString(zw, criLine(2))
	zw.Close()
	gz.Close()
	cfg := fastConfig(filepath.Join(dir, "*"))
	cfg.Exclude = []string{filepath.Join(dir, "skip.log")}
	sink := new(consumertest.LogsSink)
	start(t, cfg, sink, nil, nil)
	eventually(t, "lines 0 and 2", 5*time.Second, func() bool { return sink.LogRecordCount() >= 2 })
	time.Sleep(150 * time.Millisecond)
	if c := counts(sink); len(c) != 2 || c[0] != 1 || c[2] != 1 {
		t.Fatalf("got %v, want lines 0 and 2 (from the .gz) once, not the excluded line 1", c)
	}
}

// writer appends criLine(i) for i in [0,n) to dir/0.log, rotating when the
// file passes rotateAt bytes the way rotate says.
type writer struct {
	dir       string
	n         int
	rotateAt  int64
	pause     time.Duration // after every 500 lines
	written   atomic.Int64
	rotations int
}

// kubeletRotate mimics kubelet: rename N.log to N.log.<timestamp>, the
// runtime reopens N.log, and the previous rotated file is gzipped and the
// uncompressed one deleted (kubelet keeps the newest rotated file plain).
func (w *writer) runKubelet(t *testing.T) {
	path := filepath.Join(w.dir, "0.log")
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Error(err)
		return
	}
	var size int64
	var prevRotated string
	for i := 0; i < w.n; i++ {
		line := criLine(i)
		if _, err := f.WriteString(line); err != nil {
			t.Error(err)
			return
		}
		w.written.Add(1)
		size += int64(len(line))
		if size >= w.rotateAt {
			rotated := fmt.Sprintf("%s.%s-%06d", path, time.Now().UTC().Format("20060102-150405"), i)
			if err := os.Rename(path, rotated); err != nil {
				t.Error(err)
				return
			}
			f.Close()
			if f, err = os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err != nil {
				t.Error(err)
				return
			}
			size = 0
			w.rotations++
			if prevRotated != "" {
				gzipAndDelete(t, prevRotated)
			}
			prevRotated = rotated
		}
		if i%500 == 499 {
			// Bounded rate: kubelet never rotates faster than we poll.
			time.Sleep(w.pause)
		}
	}
	f.Close()
}

func gzipAndDelete(t *testing.T, path string) {
	in, err := os.Open(path)
	if err != nil {
		t.Error(err)
		return
	}
	defer in.Close()
	out, err := os.Create(path + ".gz")
	if err != nil {
		t.Error(err)
		return
	}
	zw := gzip.NewWriter(out)
	io.Copy(zw, in)
	zw.Close()
	out.Close()
	os.Remove(path)
}

func TestRotationRenameGzipExactlyOnce(t *testing.T) {
	dir := podLogDir(t)
	const n = 40000 // ~3.4 MB: three rotations at 1 MiB
	w := &writer{dir: dir, n: n, rotateAt: 1 << 20, pause: 3 * time.Millisecond}
	sink := new(consumertest.LogsSink)
	m := selftelemetry.New()
	start(t, fastConfig(filepath.Join(dir, "*.log")), sink, nil, m)
	done := make(chan struct{})
	go func() { defer close(done); w.runKubelet(t) }()
	<-done
	eventually(t, "all lines", 30*time.Second, func() bool { return sink.LogRecordCount() >= n })
	time.Sleep(200 * time.Millisecond) // let duplicates, if any, arrive
	c := counts(sink)
	for i := 0; i < n; i++ {
		if c[i] != 1 {
			t.Fatalf("line %d received %d times (of %d records)", i, c[i], sink.LogRecordCount())
		}
	}
	if sink.LogRecordCount() != n {
		t.Fatalf("received %d records for %d lines", sink.LogRecordCount(), n)
	}
	if w.rotations < 3 {
		t.Fatalf("the writer rotated only %d times", w.rotations)
	}
	if rot := counterValue(m.TailRotations); rot != float64(w.rotations) {
		t.Errorf("%s = %v, want %d", conventions.MetricTailRotations, rot, w.rotations)
	}
	gz, _ := filepath.Glob(filepath.Join(dir, "*.gz"))
	if len(gz) != w.rotations-1 {
		t.Errorf("expected the writer to have gzipped rotated files, found %v", gz)
	}
}

// copytruncate: logrotate copies N.log to a new name and then truncates
// N.log while the writer keeps appending. Lines appended between the end of
// the copy and the truncation exist nowhere afterwards; no reader can
// deliver them. Everything else (lines in a copy or in N.log at the end)
// must arrive exactly once, including what was written after our last read
// and before the copy: that part is read from the copy.
func TestRotationCopyTruncate(t *testing.T) {
	dir := podLogDir(t)
	path := filepath.Join(dir, "0.log")
	const n = 30000
	sink := new(consumertest.LogsSink)
	m := selftelemetry.New()
	start(t, fastConfig(filepath.Join(dir, "*.log")), sink, nil, m)

	var mu sync.Mutex // the writer's appends vs. the rotator's copy+truncate
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var size int64
	copies := 0
	for i := 0; i < n; i++ {
		line := criLine(i)
		mu.Lock()
		f.WriteString(line)
		size += int64(len(line))
		mu.Unlock()
		if size >= 1<<20 {
			copies++
			dst := fmt.Sprintf("%s.%d", path, copies)
			copyFile(t, path, dst)
			// The window copytruncate cannot close: lines written here
			// are in neither file.
			for k := 0; k < 3 && i+1 < n; k++ {
				i++
				f.WriteString(criLine(i))
			}
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
			size = 0
		}
		if i%500 == 499 {
			time.Sleep(3 * time.Millisecond)
		}
	}
	// What is achievable: every line that is in a copy or in the live file.
	achievable := map[int]bool{}
	files, _ := filepath.Glob(path + "*")
	for _, p := range files {
		data, _ := os.ReadFile(p)
		for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if c, ok := parseCRI(l); ok {
				achievable[seqOf(c.msg)] = true
			}
		}
	}
	eventually(t, "all achievable lines", 30*time.Second, func() bool {
		c := counts(sink)
		for i := range achievable {
			if c[i] == 0 {
				return false
			}
		}
		return true
	})
	time.Sleep(200 * time.Millisecond)
	c := counts(sink)
	for i, k := range c {
		if k != 1 {
			t.Errorf("line %d received %d times", i, k)
		}
	}
	lost := n - len(c)
	t.Logf("copytruncate: %d lines written, %d achievable, %d received, %d lost in the copy-truncate windows (%d rotations)", n, len(achievable), len(c), lost, copies)
	if lost > 3*copies {
		t.Errorf("lost %d lines, more than the %d written inside copy-truncate windows", lost, 3*copies)
	}
	if rot := counterValue(m.TailRotations); rot < float64(copies) {
		t.Errorf("%s = %v, want at least %d", conventions.MetricTailRotations, rot, copies)
	}
}

func copyFile(t *testing.T, src, dst string) {
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	io.Copy(out, in)
}

func newFileStorage(t testing.TB, dir string) (extension.Extension, component.Host) {
	t.Helper()
	f := filestorage.NewFactory()
	cfg := f.CreateDefaultConfig().(*filestorage.Config)
	cfg.Directory, cfg.Compaction.Directory = dir, dir
	ext, err := f.Create(context.Background(), extensiontest.NewNopSettings(f.Type()), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ext.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	return ext, testHost{ext: map[component.ID]component.Component{component.NewID(f.Type()): ext}}
}

// slowSink delivers like consumertest.LogsSink but takes a while per batch,
// so a shutdown finds batches in flight.
type slowSink struct {
	consumertest.LogsSink
	delay time.Duration
}

func (s *slowSink) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	time.Sleep(s.delay)
	return s.LogsSink.ConsumeLogs(ctx, ld)
}

func TestRestartWithFileStorage(t *testing.T) {
	logDir := podLogDir(t)
	stateDir := t.TempDir()
	const n = 20000
	// Slow enough that the restarts below happen while it writes.
	w := &writer{dir: logDir, n: n, rotateAt: 1 << 20, pause: 40 * time.Millisecond}
	cfg := fastConfig(filepath.Join(logDir, "*.log"))
	cfg.MaxBatchLines = 200
	storageID := component.MustNewID("file_storage")
	cfg.Storage = &storageID

	// One sink across both runs: what the pipeline durably got.
	sink := &slowSink{delay: 2 * time.Millisecond}
	done := make(chan struct{})
	go func() { defer close(done); w.runKubelet(t) }()

	for run := 0; run < 3; run++ {
		ext, host := newFileStorage(t, stateDir)
		r, err := newFactory(factoryOptions{metrics: selftelemetry.New()}).CreateLogs(context.Background(), testSettings(t), cfg, sink)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(context.Background(), host); err != nil {
			t.Fatal(err)
		}
		before := sink.LogRecordCount()
		eventually(t, "progress in this run", 10*time.Second, func() bool {
			select {
			case <-done: // the writer finished: nothing more to wait for
				return true
			default:
				return sink.LogRecordCount() > before+500
			}
		})
		if err := r.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := ext.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	ext, host := newFileStorage(t, stateDir)
	defer ext.Shutdown(context.Background())
	start(t, cfg, sink, host, nil)
	eventually(t, "all lines after restarts", 30*time.Second, func() bool { return len(counts(&sink.LogsSink)) >= n })
	time.Sleep(200 * time.Millisecond)
	c := counts(&sink.LogsSink)
	dups := 0
	for i := 0; i < n; i++ {
		if c[i] == 0 {
			t.Fatalf("line %d lost across restarts", i)
		}
		dups += c[i] - 1
	}
	t.Logf("restart: %d lines, %d records, %d duplicates over 3 restarts", n, sink.LogRecordCount(), dups)
	// Shutdown abandons at most the batch in flight: one batch per restart.
	if dups > 3*cfg.MaxBatchLines {
		t.Errorf("%d duplicates, want at most %d", dups, 3*cfg.MaxBatchLines)
	}
}

func TestRestartResumesPartialLine(t *testing.T) {
	logDir := podLogDir(t)
	stateDir := t.TempDir()
	path := filepath.Join(logDir, "0.log")
	cfg := fastConfig(filepath.Join(logDir, "*.log"))
	storageID := component.MustNewID("file_storage")
	cfg.Storage = &storageID
	appendFile(t, path, criLine(0)+"2024-03-01T10:11:12Z stdout P {\"msg\":\"jo\n")

	sink := new(consumertest.LogsSink)
	ext, host := newFileStorage(t, stateDir)
	r, err := newFactory(factoryOptions{metrics: selftelemetry.New()}).CreateLogs(context.Background(), testSettings(t), cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background(), host); err != nil {
		t.Fatal(err)
	}
	eventually(t, "line 0", 5*time.Second, func() bool { return sink.LogRecordCount() == 1 })
	time.Sleep(50 * time.Millisecond)
	r.Shutdown(context.Background())
	ext.Shutdown(context.Background())

	appendFile(t, path, "2024-03-01T10:11:13Z stdout F ined\"}\n")
	ext, host = newFileStorage(t, stateDir)

	defer ext.Shutdown(context.Background())
	start(t, cfg, sink, host, nil)
	eventually(t, "the joined line", 5*time.Second, func() bool { return sink.LogRecordCount() >= 2 })
	time.Sleep(100 * time.Millisecond)
	got := records(sink.AllLogs())
	if len(got) != 2 || got[1].body != `{"msg":"joined"}` || got[1].ts != 1709287872000000000 {
		t.Fatalf("got %+v", got)
	}
}

// failingSink refuses the first fails calls with a retryable error.
type failingSink struct {
	consumertest.LogsSink
	fails     int
	calls     atomic.Int64
	permanent bool
}

func (s *failingSink) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	if int(s.calls.Add(1)) <= s.fails {
		err := errors.New("downstream queue is full")
		if s.permanent {
			return consumererror.NewPermanent(err)
		}
		return err
	}
	return s.LogsSink.ConsumeLogs(ctx, ld)
}

func TestConsumerFailsThenSucceeds(t *testing.T) {
	dir := podLogDir(t)
	const n = 3000
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(criLine(i))
	}
	appendFile(t, filepath.Join(dir, "0.log"), b.String())
	sink := &failingSink{fails: 3}
	start(t, fastConfig(filepath.Join(dir, "*.log")), sink, nil, nil)
	eventually(t, "all lines", 10*time.Second, func() bool { return sink.LogRecordCount() >= n })
	time.Sleep(100 * time.Millisecond)
	c := counts(&sink.LogsSink)
	for i := 0; i < n; i++ {
		if c[i] != 1 {
			t.Fatalf("line %d received %d times", i, c[i])
		}
	}
	if sink.calls.Load() < 3+3 {
		t.Errorf("ConsumeLogs called %d times, want 3 failures + 3 batches", sink.calls.Load())
	}
}

func TestPermanentErrorSkipsBatch(t *testing.T) {
	dir := podLogDir(t)
	var b strings.Builder
	for i := 0; i < 1500; i++ {
		b.WriteString(criLine(i))
	}
	appendFile(t, filepath.Join(dir, "0.log"), b.String())
	sink := &failingSink{fails: 1, permanent: true}
	rc := start(t, fastConfig(filepath.Join(dir, "*.log")), sink, nil, nil)
	eventually(t, "the rest", 10*time.Second, func() bool { return sink.LogRecordCount() >= 500 })
	time.Sleep(100 * time.Millisecond)
	if got := rc.droppedRecords.Load(); got != 1000 {
		t.Errorf("dropped %d records, want the first batch of 1000", got)
	}
	c := counts(&sink.LogsSink)
	if len(c) != 500 || c[999] != 0 || c[1000] != 1 || c[1499] != 1 {
		t.Errorf("got %d distinct lines, want exactly 1000..1499", len(c))
	}
}

func counterValue(c prometheus.Counter) float64 {
	var d dto.Metric
	_ = c.Write(&d)
	return d.GetCounter().GetValue()
}

// gaugeValue reads opsight_tail_lag_bytes{file} from the registry, as a
// scrape would; ok is false when the series does not exist.
func gaugeValue(m *selftelemetry.Metrics, file string) (float64, bool) {
	mfs, err := m.Registry.Gather()
	if err != nil {
		return 0, false
	}
	for _, mf := range mfs {
		if mf.GetName() != conventions.MetricTailLagBytes {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "file" && l.GetValue() == file {
					return mt.GetGauge().GetValue(), true
				}
			}
		}
	}
	return 0, false
}

func TestLagMetric(t *testing.T) {
	dir := podLogDir(t)
	path := filepath.Join(dir, "0.log")
	appendFile(t, path, criLine(0))

	// A pipeline that never accepts: the first batch is retried, and what is
	// written meanwhile is not read: that is the lag.
	m := selftelemetry.New()
	sink := &failingSink{fails: 1 << 30}
	rc := start(t, fastConfig(filepath.Join(dir, "*.log")), sink, nil, m)
	eventually(t, "a refused batch", 5*time.Second, func() bool { return sink.calls.Load() >= 1 })
	more := criLine(1) + criLine(2)
	appendFile(t, path, more)
	eventually(t, "lag = unread bytes", 5*time.Second, func() bool {
		v, ok := gaugeValue(m, path)
		_ = ok
		return v == float64(len(more))
	})
	rc.Shutdown(context.Background())

	// An accepting one: read to the end, lag 0.
	m2 := selftelemetry.New()
	sink2 := new(consumertest.LogsSink)
	start(t, fastConfig(filepath.Join(dir, "*.log")), sink2, nil, m2)
	eventually(t, "records", 5*time.Second, func() bool { return sink2.LogRecordCount() == 3 })
	eventually(t, "lag = 0", 5*time.Second, func() bool {
		v, ok := gaugeValue(m2, path)
		return ok && v == 0
	})
}

// Shutdown while the pipeline refuses the batch: the batch is abandoned and
// its checkpoint not advanced, so the next run delivers it.
func TestShutdownAbandonsInFlightBatch(t *testing.T) {
	logDir := podLogDir(t)
	stateDir := t.TempDir()
	appendFile(t, filepath.Join(logDir, "0.log"), lines(0, 50))
	cfg := fastConfig(filepath.Join(logDir, "*.log"))
	storageID := component.MustNewID("file_storage")
	cfg.Storage = &storageID

	ext, host := newFileStorage(t, stateDir)
	refusing := &failingSink{fails: 1 << 30}
	r, err := newFactory(factoryOptions{metrics: selftelemetry.New()}).CreateLogs(context.Background(), testSettings(t), cfg, refusing)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background(), host); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a refused batch", 5*time.Second, func() bool { return refusing.calls.Load() >= 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	ext.Shutdown(context.Background())

	ext, host = newFileStorage(t, stateDir)
	defer ext.Shutdown(context.Background())
	sink := new(consumertest.LogsSink)
	start(t, cfg, sink, host, nil)
	eventually(t, "all lines", 5*time.Second, func() bool { return sink.LogRecordCount() >= 50 })
	time.Sleep(50 * time.Millisecond)
	wantExactly(t, sink, 50)
}

// TestShutdownDrains: lines written just before Shutdown (a pod ending:
// the operator exits, then its native sidecar is stopped) are read and
// shipped before the receiver stops, though no poll was due.
func TestShutdownDrains(t *testing.T) {
	dir := podLogDir(t)
	path := filepath.Join(dir, "0.log")
	appendFile(t, path, criLine(0))
	sink := new(consumertest.LogsSink)
	cfg := fastConfig(filepath.Join(dir, "*.log"))
	cfg.PollInterval = time.Hour // only the first poll and the drain read
	rc := start(t, cfg, sink, nil, nil)
	eventually(t, "the first line", 5*time.Second, func() bool { return sink.LogRecordCount() == 1 })
	var last strings.Builder
	for i := 1; i <= 500; i++ {
		last.WriteString(criLine(i))
	}
	appendFile(t, path, last.String())
	if err := rc.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := counts(sink)
	for i := 0; i <= 500; i++ {
		if c[i] != 1 {
			t.Fatalf("line %d shipped %d times after shutdown (want every line once): %d records", i, c[i], sink.LogRecordCount())
		}
	}
}
