package testservers

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// VictoriaLogs is the real log store the end-to-end tests push to in Loki's
// place: it accepts Loki's push protocol (protobuf+snappy and JSON, stream
// labels and structured metadata) and is queryable with LogsQL. Loki itself
// cannot be used: its module is AGPL (see docs/e2e.md).
var VictoriaLogs = Tool{Name: "victoria-logs", Module: "tools/victorialogs", Pkg: "github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs"}

// VictoriaLogsServer is a running VictoriaLogs process.
type VictoriaLogsServer struct {
	URL     string // http://127.0.0.1:port
	PushURL string // Loki push endpoint: URL + /insert/loki/api/v1/push
	Dir     string
	logs    string
}

// StartVictoriaLogs starts VictoriaLogs on a free loopback port with its data
// in a temporary directory; it is stopped when the test ends.
//
// Loki keeps a pushed line verbatim, so JSON lines are not unpacked into
// fields here either (-loki.disableMessageParsing): _msg is the line as the
// sidecar sent it. Retention is wide so lines with far-past or future
// timestamps are stored rather than silently rejected.
func StartVictoriaLogs(t testing.TB, extraArgs ...string) *VictoriaLogsServer {
	t.Helper()
	bin := VictoriaLogs.MustPath(t)
	dir := t.TempDir()
	addr := FreeAddr(t)
	args := append([]string{
		"-httpListenAddr=" + addr,
		"-storageDataPath=" + filepath.Join(dir, "data"),
		"-loki.disableMessageParsing",
		"-retentionPeriod=100y",
		"-futureRetention=100y",
		"-insert.maxLineSizeBytes=2MiB",
		"-loggerLevel=WARN",
		"-http.shutdownDelay=0s",
	}, extraArgs...)
	s := &VictoriaLogsServer{URL: "http://" + addr, Dir: dir, logs: filepath.Join(dir, "victoria-logs.log")}
	s.PushURL = s.URL + "/insert/loki/api/v1/push"
	startProcess(t, "victoria-logs", bin, args, s.logs, s.URL+"/health", 60*time.Second)
	return s
}

// Query runs a LogsQL query over all time and returns every matching entry
// as field → value (VictoriaLogs returns all values as strings; _msg is the
// line, _time the timestamp, stream labels and structured metadata are fields).
func (s *VictoriaLogsServer) Query(logsql string) ([]map[string]string, error) {
	form := url.Values{"query": {logsql}}
	resp, err := http.PostForm(s.URL+"/select/logsql/query", form)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("LogsQL %q: status %d: %s", logsql, resp.StatusCode, b)
	}
	var out []map[string]string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		m := map[string]string{}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return out, fmt.Errorf("LogsQL %q: answer line is not a JSON object of strings: %v", logsql, err)
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// Count returns how many entries match logsql.
func (s *VictoriaLogsServer) Count(logsql string) (int, error) {
	rows, err := s.Query(logsql + " | stats count() as n")
	if err != nil {
		return 0, err
	}
	if len(rows) != 1 {
		return 0, fmt.Errorf("count of %q: %d result rows, want 1", logsql, len(rows))
	}
	var n int
	if _, err := fmt.Sscan(rows[0]["n"], &n); err != nil {
		return 0, fmt.Errorf("count of %q: %q is not a number", logsql, rows[0]["n"])
	}
	return n, nil
}

// startProcess runs bin with args, output to logPath, waits until readyURL
// answers 200 and stops it (SIGKILL) when the test ends. A process that does
// not get ready fails the test with its output.
func startProcess(t testing.TB, name, bin string, args []string, logPath, readyURL string, timeout time.Duration) *exec.Cmd {
	t.Helper()
	return startProcessReady(t, name, bin, args, logPath, func() error { return WaitHTTP(readyURL, timeout) })
}

// startProcessReady is startProcess with its own readiness check: ready
// blocks until the process serves (nil) or gives up (an error).
func startProcessReady(t testing.TB, name, bin string, args []string, logPath string, ready func() error) *exec.Cmd {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		logf.Close()
	})
	readyc := make(chan error, 1)
	go func() { readyc <- ready() }()
	select {
	case err = <-readyc:
	case <-exited:
		err = fmt.Errorf("exited: %v", cmd.ProcessState)
	}
	if err != nil {
		t.Fatalf("%s not ready: %v\n%s", name, err, tail(logPath))
	}
	return cmd
}

// tail returns the last 8 KiB of a log file.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 8<<10 {
		b = b[len(b)-8<<10:]
	}
	return string(b)
}
