package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opsight/opsight/internal/simoperator"
)

// outage is how long the log backend stays down in the outage tests (the
// product's requirement: 60 s). OPSIGHT_E2E_OUTAGE=20s shortens it for a
// quick local run.
const outage = 60 * time.Second

func outageDuration(t testing.TB) time.Duration {
	if v := os.Getenv("OPSIGHT_E2E_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("OPSIGHT_E2E_OUTAGE=%q: want a positive duration such as 60s", v)
		}
		return d
	}
	return outage
}

// faultRig is one operator pod's log file, one sidecar in env mode pushing
// through a fault proxy into a log store: a real VictoriaLogs, or the strict
// Loki stand-in that enforces Loki's ingestion rules.
type faultRig struct {
	store logStore
	proxy *faultProxy
	sc    *sidecar
	w     *simoperator.CRIWriter
	pod   string
	dir   string // the container's log directory
}

// newFaultRig prepares the rig; edit, when not nil, runs the sidecar with a
// --config file changed by edit instead of env mode.
func newFaultRig(t *testing.T, store, pod string, rotateBytes int64, edit func(map[string]any)) *faultRig {
	t.Helper()
	dir := t.TempDir()
	r := &faultRig{pod: pod, store: startLogStore(t, store)}
	r.proxy = newFaultProxy(t, r.store.baseURL())
	env := podEnv(dir, "ops", pod, "v1.0.0")
	env["OPSIGHT_LOKI_URL"] = r.proxy.URL() + r.store.pushPath()
	r.sc = newSidecar(t, env)
	if edit != nil {
		withConfig(t, r.sc, edit)
	}
	r.dir = simoperator.PodLogDir(filepath.Join(dir, "pods"), "ops", pod, "uid-"+pod, "manager")
	w, err := simoperator.NewCRIWriter(r.dir, rotateBytes, 0)
	if err != nil {
		t.Fatal(err)
	}
	r.w = w
	return r
}

// writeAsync writes seq lines from..to-1 at rate lines/s in the background.
func (r *faultRig) writeAsync(from, to, rate int) <-chan error {
	done := make(chan error, 1)
	go func() { done <- writeSeq(r.w, from, to, rate) }()
	return done
}

func (r *faultRig) metric(t *testing.T, name, match string) float64 {
	t.Helper()
	v, err := r.sc.metricValue(name, match)
	if err != nil {
		t.Errorf("reading %s from the sidecar: %v", name, err)
	}
	return v
}

// verifyExactlyOnce waits for lines 0..n-1 in VictoriaLogs and fails the test
// on any loss or duplicate, or on a dropped count.
func (r *faultRig) verifyExactlyOnce(t *testing.T, n int, what string) {
	t.Helper()
	seen, complete := waitSeqs(t, r.store, r.pod, n, 120*time.Second)
	rep := checkSeqs(seen, n)
	dropped := r.metric(t, "opsight_export_dropped_total", "")
	t.Logf("%s: lines %d, missing %d, duplicates %d, unexpected %d, proxy requests %d (forwarded %d, injected faults %d), dropped %v",
		what, n, rep.missing, rep.dups, rep.extra, r.proxy.requests.Load(), r.proxy.forwarded.Load(), r.proxy.injected.Load(), dropped)
	if rep.missing > 0 || !complete {
		t.Errorf("%s: %d of %d lines never reached VictoriaLogs\nsidecar log tail:\n%s", what, rep.missing, n, r.sc.logs())
	}
	if rep.dups > 0 || rep.extra > 0 {
		t.Errorf("%s: %d duplicate and %d unexpected lines in VictoriaLogs; every line must arrive exactly once", what, rep.dups, rep.extra)
	}
	if dropped != 0 {
		t.Errorf("%s: opsight_export_dropped_total = %v, want 0", what, dropped)
	}
	if d := r.store.discarded(); len(d) > 0 {
		t.Errorf("%s: Loki discarded %v: the sidecar sent what Loki refuses", what, d)
	}
}

// TestFaultBackendDown: the log backend refuses connections for half the
// outage and answers 503 for the other half while the operator keeps
// writing. Every line arrives exactly once afterwards, the sidecar counted
// both kinds of failure, and nothing was dropped.
func TestFaultBackendDown(t *testing.T) { eachLogStore(t, testFaultBackendDown) }

func testFaultBackendDown(t *testing.T, store string) {
	d := outageDuration(t)
	r := newFaultRig(t, store, "op-down", 0, nil)
	r.sc.start()
	const rate = 1000
	n := int((d + 8*time.Second).Seconds()) * rate
	done := r.writeAsync(0, n, rate)

	time.Sleep(3 * time.Second)
	r.proxy.set(modeRefuse)
	time.Sleep(d / 2)
	r.proxy.set(mode503)
	time.Sleep(d / 2)
	r.proxy.set(modePass)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r.verifyExactlyOnce(t, n, "backend down "+d.String())
	conn := r.metric(t, "opsight_export_failed_total", `reason="connection"`)
	http5xx := r.metric(t, "opsight_export_failed_total", `reason="http_5xx"`)
	t.Logf("failed sends: connection %v, http_5xx %v", conn, http5xx)
	if conn == 0 || http5xx == 0 {
		t.Errorf("opsight_export_failed_total{reason=connection}=%v, {reason=http_5xx}=%v: the outage must show in both", conn, http5xx)
	}
}

// TestFault429Storm: the backend answers 429 with Retry-After for a while.
// Lines arrive exactly once, the 429s are counted, and the exporter waited
// at least Retry-After between attempts (it has one queue consumer, so at
// most storm/Retry-After + 1 requests can fall in the storm).
func TestFault429Storm(t *testing.T) { eachLogStore(t, testFault429Storm) }

func testFault429Storm(t *testing.T, store string) {
	const (
		storm      = 15 * time.Second
		retryAfter = 3 * time.Second
		rate       = 1000
	)
	r := newFaultRig(t, store, "op-429", 0, nil)
	r.proxy.retryAfter = "3"
	r.sc.start()
	n := int((storm + 8*time.Second).Seconds()) * rate
	done := r.writeAsync(0, n, rate)
	time.Sleep(3 * time.Second)
	r.proxy.set(mode429)
	time.Sleep(storm)
	r.proxy.set(modePass)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r.verifyExactlyOnce(t, n, "429 storm")
	got429 := r.metric(t, "opsight_export_failed_total", `reason="http_429"`)
	at := r.proxy.injectedAt()
	t.Logf("429 answers %d over %v with Retry-After %v; opsight_export_failed_total{reason=http_429} = %v", len(at), storm, retryAfter, got429)
	if len(at) < 2 {
		t.Errorf("only %d requests met the 429 storm: the exporter did not retry", len(at))
	}
	if max := int(storm/retryAfter) + 1; len(at) > max {
		t.Errorf("%d requests during a %v storm with Retry-After %v, want ≤ %d: Retry-After was not honoured", len(at), storm, retryAfter, max)
	}
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < retryAfter-200*time.Millisecond {
			t.Errorf("retry %d came %v after a 429 with Retry-After %v", i, gap.Round(time.Millisecond), retryAfter)
		}
	}
	if got429 < float64(len(at)) {
		t.Errorf("opsight_export_failed_total{reason=http_429} = %v, want ≥ %d (the 429s the proxy sent)", got429, len(at))
	}
}

// TestFaultSlowBackend: for a while the backend takes longer to answer than
// the exporter's timeout (2 s here, set through a --config file). Requests
// time out and are retried; the proxy drops a request whose client gave up,
// as a backend that never got to it would, so every line arrives exactly once.
func TestFaultSlowBackend(t *testing.T) { eachLogStore(t, testFaultSlowBackend) }

func testFaultSlowBackend(t *testing.T, store string) {
	const (
		slow    = 12 * time.Second
		timeout = 2 * time.Second
		rate    = 1000
	)
	r := newFaultRig(t, store, "op-slow", 0, func(cfg map[string]any) {
		mapAt(cfg, "exporters", "loki")["timeout"] = timeout.String()
	})
	r.proxy.delay = 5 * time.Second
	r.sc.start()
	n := int((slow + 8*time.Second).Seconds()) * rate
	done := r.writeAsync(0, n, rate)
	time.Sleep(3 * time.Second)
	r.proxy.set(modeSlow)
	time.Sleep(slow)
	r.proxy.set(modePass)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r.verifyExactlyOnce(t, n, "slow backend")
	timeouts := r.metric(t, "opsight_export_failed_total", `reason="timeout"`)
	t.Logf("timed-out sends: %v (proxy abandoned %d)", timeouts, r.proxy.injected.Load())
	if timeouts == 0 || r.proxy.injected.Load() == 0 {
		t.Errorf("opsight_export_failed_total{reason=timeout} = %v, abandoned requests %d: the slow phase must time out", timeouts, r.proxy.injected.Load())
	}
}

// TestFaultRotationDuringOutage: kubelet rotates the log at 1 MiB and gzips
// older rotations while the backend is down. The persistent queue holds
// everything until the backend is back; what the sidecar had not read before a
// rotation was gzipped is read from the .gz.
func TestFaultRotationDuringOutage(t *testing.T) { eachLogStore(t, testFaultRotationDuringOutage) }

func testFaultRotationDuringOutage(t *testing.T, store string) {
	d := outageDuration(t)
	r := newFaultRig(t, store, "op-rotate", 1<<20, nil)
	r.sc.start()
	r.proxy.set(modeRefuse)
	down := time.Now()
	// ~330 B a line: 20k lines is ~6.5 MiB, six rotations, during the outage.
	const n, rate = 20_000, 2000
	if err := writeSeq(r.w, 0, n, rate); err != nil {
		t.Fatal(err)
	}
	gz, _ := filepath.Glob(filepath.Join(r.dir, "*.gz"))
	// Stay down for the rest of the outage.
	time.Sleep(time.Until(down.Add(d)))
	if c, err := r.store.count("op-rotate"); err != nil || c != 0 {
		t.Errorf("VictoriaLogs has %d lines (err %v) while the backend was down: the fault proxy leaked", c, err)
	}
	r.proxy.set(modePass)
	if err := r.w.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("rotations %d, gzipped files %d", r.w.Rotations(), len(gz))
	if r.w.Rotations() < 4 || len(gz) < 2 {
		t.Errorf("the test needs ≥ 4 rotations and ≥ 2 gzipped files during the outage, got %d and %d", r.w.Rotations(), len(gz))
	}
	r.verifyExactlyOnce(t, n, "rotation during outage")
	if rot := r.metric(t, "opsight_tail_rotations_total", ""); rot < 1 {
		t.Errorf("opsight_tail_rotations_total = %v, want ≥ 1", rot)
	}
}

// TestFaultSIGTERMDrain: the backend is down, the sidecar has read every line
// into its persistent queue and gets SIGTERM. It exits promptly; nothing is
// lost: after a restart with the backend back, every line arrives once.
func TestFaultSIGTERMDrain(t *testing.T) { eachLogStore(t, testFaultSIGTERMDrain) }

func testFaultSIGTERMDrain(t *testing.T, store string) {
	r := newFaultRig(t, store, "op-term", 0, nil)
	// The persistent Loki queue (opt-in in file mode, OPSIGHT_QUEUE_BYTES):
	// the lines read while Loki is down wait on disk across the stop.
	r.sc.env = append(r.sc.env, "OPSIGHT_QUEUE_BYTES=67108864")
	r.sc.start()
	r.proxy.set(modeRefuse)
	const n = 15_000
	if err := writeSeq(r.w, 0, n, 3000); err != nil {
		t.Fatal(err)
	}
	// Every line has passed the pipeline into the exporter's queue.
	read := waitFor(60*time.Second, func() bool {
		v, err := r.sc.metricValue("opsight_log_records_total", "")
		return err == nil && v >= n
	})
	queued := r.metric(t, "opsight_export_queue_size", `exporter="loki"`)
	if !read {
		v, _ := r.sc.metricValue("opsight_log_records_total", "")
		t.Fatalf("the sidecar processed %v of %d lines in 60 s\n%s", v, n, r.sc.logs())
	}
	start := time.Now()
	r.sc.stop(syscall.SIGTERM)
	took := time.Since(start)
	t.Logf("SIGTERM with %v requests queued: exited in %v", queued, took.Round(time.Millisecond))
	if took > 25*time.Second {
		t.Errorf("the sidecar took %v to exit on SIGTERM while the backend was down; want < 25 s (the pod's grace period is 30 s)", took)
	}
	if strings.Contains(r.sc.logs(), "panic:") {
		t.Errorf("the sidecar panicked on shutdown:\n%s", r.sc.logs())
	}
	if c, err := r.store.count("op-term"); err != nil || c != 0 {
		t.Errorf("VictoriaLogs has %d lines (err %v) while the backend was down", c, err)
	}
	r.proxy.set(modePass)
	r.sc.start()
	r.verifyExactlyOnce(t, n, "SIGTERM drain and restart")
	r.sc.stop(syscall.SIGTERM)
}
