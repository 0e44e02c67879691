package testservers

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// PrometheusServer is a real Prometheus process started for a test.
type PrometheusServer struct {
	URL  string // e.g. http://127.0.0.1:41234
	Dir  string // data and config directory
	cmd  *exec.Cmd
	logs string
}

// StartPrometheus starts Prometheus with the given prometheus.yml content,
// native histograms and exemplar storage enabled, on a free loopback port.
// It is stopped when the test ends. extraArgs are appended to the command line.
func StartPrometheus(t testing.TB, config string, extraArgs ...string) *PrometheusServer {
	t.Helper()
	bin := Prometheus.MustPath(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := FreeAddr(t)
	args := append([]string{
		"--config.file=" + cfg,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr,
		"--enable-feature=exemplar-storage,native-histograms",
		"--web.enable-admin-api",
		"--log.level=warn",
	}, extraArgs...)
	logPath := filepath.Join(dir, "prometheus.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting prometheus: %v", err)
	}
	s := &PrometheusServer{URL: "http://" + addr, Dir: dir, cmd: cmd, logs: logPath}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		logf.Close()
	})
	if err := WaitHTTP(s.URL+"/-/ready", 60*time.Second); err != nil {
		b, _ := os.ReadFile(logPath)
		t.Fatalf("prometheus not ready: %v\n%s", err, b)
	}
	return s
}

// Logs returns what the server printed so far (for failure messages).
func (s *PrometheusServer) Logs() string {
	b, _ := os.ReadFile(s.logs)
	return string(b)
}

// FreeAddr returns a free 127.0.0.1:port.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// WaitHTTP polls url until it answers 200 or the timeout passes.
func WaitHTTP(url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("status %d", resp.StatusCode)
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %v (last: %v)", url, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
