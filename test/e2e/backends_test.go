package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/opsight/opsight/internal/simoperator"
	"github.com/opsight/opsight/internal/testservers"
)

// Helpers shared by the scenario, fault and bad-input tests: a fault-injecting
// proxy in front of a backend, seq-line writers, and readers of what the
// backends stored.

// proxyMode is what the fault proxy does with the next request.
type proxyMode int32

const (
	modePass   proxyMode = iota // forward to the backend
	modeRefuse                  // nothing listens: connection refused
	mode503                     // answer 503 Service Unavailable
	mode429                     // answer 429 with Retry-After
	modeSlow                    // hold the request for delay, then forward unless the client gave up
)

func (m proxyMode) String() string {
	return [...]string{"pass", "refuse", "503", "429", "slow"}[m]
}

// faultProxy sits between the sidecar and a backend and injects faults. It
// counts what it did so a test can check the fault really happened.
type faultProxy struct {
	t          testing.TB
	addr       string
	rp         *httputil.ReverseProxy
	mode       atomic.Int32
	retryAfter string        // Retry-After value for 429
	delay      time.Duration // for modeSlow

	mu  sync.Mutex
	srv *http.Server

	requests  atomic.Int64 // requests that reached the handler
	forwarded atomic.Int64 // requests passed to the backend with a 2xx answer
	injected  atomic.Int64 // requests answered with an injected error or abandoned
	refusedAt []time.Time  // (guarded by mu) times of injected answers, for pacing checks
}

func newFaultProxy(t testing.TB, backend string) *faultProxy {
	t.Helper()
	u, err := url.Parse(backend)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{t: t, addr: testservers.FreeAddr(t), rp: httputil.NewSingleHostReverseProxy(u), retryAfter: "2", delay: 5 * time.Second}
	p.listen()
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.srv != nil {
			_ = p.srv.Close()
		}
	})
	return p
}

// URL is the proxy's base URL; append the backend's path.
func (p *faultProxy) URL() string { return "http://" + p.addr }

func (p *faultProxy) listen() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.srv != nil {
		return
	}
	var ln net.Listener
	var err error
	// The port was just released by Close; retry briefly in case it lingers.
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		p.t.Errorf("fault proxy: re-listening on %s: %v", p.addr, err)
		return
	}
	p.srv = &http.Server{Handler: p}
	go func(s *http.Server) { _ = s.Serve(ln) }(p.srv)
}

// set switches the fault mode. modeRefuse closes the listener (and open
// connections) so connects are refused; any other mode listens again.
func (p *faultProxy) set(m proxyMode) {
	p.mode.Store(int32(m))
	if m == modeRefuse {
		p.mu.Lock()
		if p.srv != nil {
			_ = p.srv.Close()
			p.srv = nil
		}
		p.mu.Unlock()
		return
	}
	p.listen()
}

func (p *faultProxy) injectedAt() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.refusedAt...)
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	mark := func() {
		p.injected.Add(1)
		p.mu.Lock()
		p.refusedAt = append(p.refusedAt, time.Now())
		p.mu.Unlock()
	}
	switch proxyMode(p.mode.Load()) {
	case mode503, modeRefuse: // refuse can race with a request already accepted
		mark()
		http.Error(w, "injected outage", http.StatusServiceUnavailable)
		return
	case mode429:
		mark()
		w.Header().Set("Retry-After", p.retryAfter)
		http.Error(w, "Ingestion rate limit exceeded (injected)", http.StatusTooManyRequests)
		return
	case modeSlow:
		// net/http notices a client that hung up only once the request body
		// has been read: read it first, then hold the request.
		b, err := io.ReadAll(r.Body)
		if err != nil {
			mark()
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		select {
		case <-time.After(p.delay):
		case <-r.Context().Done():
			// The client timed out: like a backend that never got to the
			// request, nothing is stored, so a retry is not a duplicate.
			mark()
			return
		}
	}
	rec := &statusRecorder{ResponseWriter: w}
	p.rp.ServeHTTP(rec, r)
	if rec.status < 300 {
		p.forwarded.Add(1)
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// seqLine is a realistic controller-runtime line carrying a sequence number.
func seqLine(i int) string {
	return fmt.Sprintf(`{"level":"info","ts":"%s","logger":"controller.etcdcluster","msg":"Reconciling","controller":"etcdcluster","controllerGroup":"etcd.database.coreos.com","controllerKind":"EtcdCluster","EtcdCluster":{"name":"etcd-%d","namespace":"ops"},"reconcileID":"r-%d","seq":%d}`,
		time.Now().UTC().Format("2006-01-02T15:04:05.000000Z07:00"), i%37, i/4, i)
}

// writeSeq writes lines from..to-1 at about perSecond lines a second.
func writeSeq(w *simoperator.CRIWriter, from, to, perSecond int) error {
	const chunk = 100
	start := time.Now()
	for i := from; i < to; i++ {
		if err := w.WriteLine(time.Now(), "stderr", seqLine(i)); err != nil {
			return err
		}
		if (i-from)%chunk == chunk-1 {
			due := start.Add(time.Duration(float64(i-from+1) / float64(perSecond) * float64(time.Second)))
			time.Sleep(time.Until(due))
		}
	}
	return nil
}

// seqsInVL counts how often each seq arrived in VictoriaLogs for pod.
func seqsInVL(vl *testservers.VictoriaLogsServer, pod string) (map[int]int, error) {
	rows, err := vl.Query(fmt.Sprintf(`pod:=%q | fields _msg`, pod))
	if err != nil {
		return nil, err
	}
	seen := map[int]int{}
	for _, r := range rows {
		var m struct {
			Seq *int `json:"seq"`
		}
		if json.Unmarshal([]byte(r["_msg"]), &m) == nil && m.Seq != nil {
			seen[*m.Seq]++
		}
	}
	return seen, nil
}

// lossReport compares seq counts with 0..n-1.
type lossReport struct{ missing, dups, extra int }

func checkSeqs(seen map[int]int, n int) lossReport {
	var r lossReport
	for i := 0; i < n; i++ {
		switch c := seen[i]; {
		case c == 0:
			r.missing++
		case c > 1:
			r.dups += c - 1
		}
	}
	for k := range seen {
		if k < 0 || k >= n {
			r.extra++
		}
	}
	return r
}

// waitSeqs polls VictoriaLogs until every seq of 0..n-1 is there or timeout.
func waitSeqs(t testing.TB, store logStore, pod string, n int, timeout time.Duration) (map[int]int, bool) {
	t.Helper()
	var seen map[int]int
	ok := waitFor(timeout, func() bool {
		var err error
		seen, err = store.seqs(pod)
		if err != nil {
			t.Logf("querying the log store: %v", err)
			return false
		}
		return len(seen) >= n
	})
	// A last look after the store's settling time catches late duplicates.
	time.Sleep(store.settle())
	if s, err := store.seqs(pod); err == nil {
		seen = s
	}
	return seen, ok
}

// podEnv is the env-mode setting of one sidecar for one pod.
func podEnv(dir, ns, pod, revision string) map[string]string {
	return map[string]string{
		"OPSIGHT_LOG_INCLUDE": filepath.Join(dir, "pods", ns+"_"+pod+"_*", "*", "*.log*"),
		"OPSIGHT_STATE_DIR":   filepath.Join(dir, "state-"+pod),
		"OPSIGHT_REVISION":    revision,
		"OPSIGHT_CLUSTER":     "e2e",
		"POD_NAMESPACE":       ns,
		"POD_NAME":            pod,
		// The webhook and the chart set CONTAINER_NAME to the operator's
		// container; set it so the test machine's own variable never leaks in.
		"CONTAINER_NAME": "manager",
	}
}

// withConfig makes sc run with a --config file: the configuration the
// environment gives (operator-sidecar env-config), changed by edit. The
// harness starts the binary without arguments, so a small exec wrapper adds
// the flag; signals reach the sidecar itself because the shell execs it.
func withConfig(t testing.TB, sc *sidecar, edit func(cfg map[string]any)) {
	t.Helper()
	cmd := exec.Command(sc.bin, "env-config")
	cmd.Env = sc.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("operator-sidecar env-config: %v\n%s", err, out)
	}
	cfg := map[string]any{}
	if err := yaml.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("env-config output is not YAML: %v\n%s", err, out)
	}
	edit(cfg)
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(dir, "operator-sidecar")
	script := fmt.Sprintf("#!/bin/sh\nexec %s --config %s\n", strconv.Quote(sc.bin), strconv.Quote(cfgPath))
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	sc.bin = wrapper
}

// mapAt walks nested maps of a YAML document, creating missing levels.
func mapAt(m map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	return m
}

// podLines reads every operator line the simulated kubelet wrote for a
// container, rotated and gzipped files included: the CRI framing is removed.
func podLines(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.log*"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var lines []string
	for _, f := range files {
		if strings.HasSuffix(f, ".tmp") {
			continue
		}
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		var r io.Reader = fh
		if strings.HasSuffix(f, ".gz") {
			zr, err := gzip.NewReader(fh)
			if err != nil {
				fh.Close()
				return nil, fmt.Errorf("%s: %v", f, err)
			}
			r = zr
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 8<<20)
		for sc.Scan() {
			// <time> <stream> <P|F> <content>
			parts := strings.SplitN(sc.Text(), " ", 4)
			if len(parts) < 3 {
				fh.Close()
				return nil, fmt.Errorf("%s: not a CRI line: %.100q", f, sc.Text())
			}
			content := ""
			if len(parts) == 4 {
				content = parts[3]
			}
			lines = append(lines, content)
		}
		fh.Close()
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%s: %v", f, err)
		}
	}
	return lines, nil
}

// waitOTLP waits until the sidecar's OTLP/HTTP receiver accepts requests: it
// starts after the metrics endpoint the harness waits for.
func waitOTLP(t testing.TB, sc *sidecar, addr string) {
	t.Helper()
	ok := waitFor(30*time.Second, func() bool {
		resp, err := http.Post("http://"+addr+"/v1/traces", "application/json", strings.NewReader("{}"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if !ok {
		t.Fatalf("the sidecar's OTLP/HTTP receiver at %s is not accepting\n%s", addr, sc.logs())
	}
}
