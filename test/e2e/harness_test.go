// Package e2e runs the real operator-sidecar binary against real files and
// servers: restarts with kill -9, backend outages, rotation, bad input.
package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opsight/opsight/internal/simoperator"
	"github.com/opsight/opsight/internal/testservers"
)

// sidecar is one run of the operator-sidecar process.
type sidecar struct {
	t       testing.TB
	bin     string
	env     []string
	cmd     *exec.Cmd
	logPath string
	metrics string // http://addr/metrics
	runs    int
	// wrap runs the binary through a command that ends by exec-ing its last
	// argument (the binary), e.g. unshare for the pod's mounts; signals still
	// reach the sidecar itself.
	wrap []string
}

func newSidecar(t testing.TB, env map[string]string) *sidecar {
	t.Helper()
	s := &sidecar{t: t, bin: testservers.BuildSidecar(t), logPath: filepath.Join(t.TempDir(), "sidecar.log")}
	if env["OPSIGHT_METRICS_ADDR"] == "" {
		env["OPSIGHT_METRICS_ADDR"] = testservers.FreeAddr(t)
	}
	if env["OPSIGHT_OTLP_GRPC_ADDR"] == "" {
		env["OPSIGHT_OTLP_GRPC_ADDR"] = testservers.FreeAddr(t)
	}
	if env["OPSIGHT_OTLP_HTTP_ADDR"] == "" {
		env["OPSIGHT_OTLP_HTTP_ADDR"] = testservers.FreeAddr(t)
	}
	s.metrics = "http://" + env["OPSIGHT_METRICS_ADDR"] + "/metrics"
	s.env = append(os.Environ(), "GOMAXPROCS=1")
	for k, v := range env {
		s.env = append(s.env, k+"="+v)
	}
	t.Cleanup(func() { s.stop(syscall.SIGKILL) })
	return s
}

func (s *sidecar) start() {
	s.t.Helper()
	f, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	fmt.Fprintf(f, "---- run %d\n", s.runs)
	s.runs++
	s.cmd = exec.Command(s.bin)
	if len(s.wrap) > 0 {
		s.cmd = exec.Command(s.wrap[0], append(s.wrap[1:], s.bin)...)
	}
	s.cmd.Env = s.env
	s.cmd.Stdout, s.cmd.Stderr = f, f
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("starting sidecar: %v", err)
	}
	if err := testservers.WaitHTTP(s.metrics, 30*time.Second); err != nil {
		s.t.Fatalf("sidecar not serving metrics: %v\n%s", err, s.logs())
	}
}

// stop sends sig and waits for the process to exit.
func (s *sidecar) stop(sig syscall.Signal) {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

func (s *sidecar) logs() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 8000 && os.Getenv("OPSIGHT_E2E_FULL_LOGS") == "" {
		b = b[len(b)-8000:]
	}
	return string(b)
}

// metricValue sums the samples of a metric family on the sidecar's endpoint
// whose label set contains match (e.g. `exporter="loki"`).
func (s *sidecar) metricValue(name, match string) (float64, error) {
	resp, err := http.Get(s.metrics)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		if match != "" && !strings.Contains(line, match) {
			continue
		}
		f := strings.Fields(line)
		var v float64
		if _, err := fmt.Sscanf(f[len(f)-1], "%g", &v); err == nil {
			sum += v
		}
	}
	return sum, sc.Err()
}

// readNDJSON reads every record the localfile exporter wrote under dir.
func readNDJSON(t testing.TB, dir string) []map[string]any {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "logs-*.ndjson"))
	var out []map[string]any
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Errorf("%s: output line is not JSON: %v: %.200q", f, err, sc.Text())
				continue
			}
			out = append(out, m)
		}
		fh.Close()
	}
	return out
}

// seqCount counts how often each "seq" field value arrived.
func seqCount(records []map[string]any) map[int]int {
	seen := map[int]int{}
	for _, r := range records {
		if v, ok := r["seq"].(float64); ok {
			seen[int(v)]++
		}
	}
	return seen
}

func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(250 * time.Millisecond)
	}
	return cond()
}

// stateDir is the sidecar's OPSIGHT_STATE_DIR.
func (s *sidecar) stateDir() string {
	for _, kv := range s.env {
		if v, ok := strings.CutPrefix(kv, "OPSIGHT_STATE_DIR="); ok {
			return v
		}
	}
	return ""
}

// writeReconcileLines writes n controller-runtime lines numbered seq, seq+1,
// …, pausing after every 1000 (the write rate), and returns the next seq.
func writeReconcileLines(w *simoperator.CRIWriter, seq, n int, pause time.Duration) (int, error) {
	for i := 0; i < n; i, seq = i+1, seq+1 {
		line := fmt.Sprintf(`{"level":"info","ts":"%s","logger":"controller.widget","msg":"Reconciling","controller":"widget","reconcileID":"r-%d","seq":%d}`,
			time.Now().UTC().Format(time.RFC3339Nano), seq/4, seq)
		if err := w.WriteLine(time.Now(), "stderr", line); err != nil {
			return seq, err
		}
		if i%1000 == 999 {
			time.Sleep(pause)
		}
	}
	return seq, nil
}

// killWhile kills sc with SIGKILL and starts it again, at random intervals
// of minGap plus up to spread, until work reports; it returns the kills.
func killWhile(t *testing.T, sc *sidecar, work <-chan error, rng *rand.Rand, minGap, spread time.Duration) int {
	t.Helper()
	kills := 0
	for {
		select {
		case err := <-work:
			if err != nil {
				t.Fatal(err)
			}
			return kills
		case <-time.After(minGap + time.Duration(rng.Int64N(int64(spread)))):
			sc.stop(syscall.SIGKILL)
			kills++
			sc.start()
		}
	}
}

// tally checks seq ids 0..total-1 against what arrived: how many never did
// (and their ranges, for the failure message) and how many arrived again.
func tally(seen map[int]int, total int) (missing, dups int, gaps []string) {
	for i := 0; i < total; i++ {
		switch n := seen[i]; {
		case n == 0:
			if missing == 0 || seen[i-1] != 0 {
				gaps = append(gaps, fmt.Sprintf("%d-", i))
			}
			if i+1 == total || seen[i+1] != 0 {
				gaps[len(gaps)-1] += fmt.Sprint(i)
			}
			missing++
		case n > 1:
			dups += n - 1
		}
	}
	return missing, dups, gaps
}
