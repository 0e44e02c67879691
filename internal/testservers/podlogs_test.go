package testservers

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCRI writes a kubelet container log file, creating its directory.
func writeCRI(t *testing.T, path string, lines ...string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendCRI(t *testing.T, path, line string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(line + "\n"); err != nil {
		t.Fatal(err)
	}
}

// podLogsClient is what an in-cluster client builds from the service
// account directory: the CA to trust and the bearer token.
type podLogsClient struct {
	s     *PodLogsServer
	http  *http.Client
	token string
}

func newPodLogsClient(t *testing.T, s *PodLogsServer) *podLogsClient {
	t.Helper()
	ca, err := os.ReadFile(filepath.Join(s.SADir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatal("ca.crt holds no certificate")
	}
	tok, err := os.ReadFile(filepath.Join(s.SADir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(c.CloseIdleConnections)
	return &podLogsClient{s: s, http: c, token: string(tok)}
}

func logPath(ns, pod string, q url.Values) string {
	return "/api/v1/namespaces/" + ns + "/pods/" + pod + "/log?" + q.Encode()
}

func (c *podLogsClient) request(ctx context.Context, t *testing.T, path, token string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.s.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, c.s.Logs())
	}
	return resp
}

// get returns the status and body of a non-streaming request.
func (c *podLogsClient) get(t *testing.T, path, token string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp := c.request(ctx, t, path, token)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

// apiStatus is the part of metav1.Status the tests look at.
type apiStatus struct {
	Kind, APIVersion, Status, Message, Reason string
	Code                                      int
}

func TestPodLogs(t *testing.T) {
	pods := t.TempDir()
	op := filepath.Join(pods, "ops_op-0_11111111-2222-3333-4444-555555555555")
	writeCRI(t, filepath.Join(op, "operator", "0.log"),
		"2026-11-25T21:40:00.000000001Z stdout F previous instance line")
	writeCRI(t, filepath.Join(op, "operator", "1.log"),
		"2026-11-25T21:41:49.123456789Z stdout F first line",
		"2026-11-25T21:41:49.9Z stderr F second line",
		"2026-11-25T21:41:50.5Z stdout P part one, ",
		"2026-11-25T21:41:50.6Z stdout F part two",
		"2026-11-25T21:41:52.000000000Z stdout F late line")
	writeCRI(t, filepath.Join(op, "sidecar", "0.log"),
		"2026-11-25T21:41:49.000000000Z stdout F sidecar line")
	writeCRI(t, filepath.Join(pods, "other_op-0_99999999-2222-3333-4444-555555555555", "operator", "0.log"),
		"2026-11-25T21:41:49.000000000Z stdout F other namespace")

	s := StartPodLogs(t, pods, "ops")
	c := newPodLogsClient(t, s)
	if b, _ := os.ReadFile(filepath.Join(s.SADir, "namespace")); string(b) != "ops" {
		t.Errorf("namespace file = %q, want ops", b)
	}
	if s.Host != "127.0.0.1" || s.Port == "" || s.URL != "https://"+s.Host+":"+s.Port {
		t.Errorf("Host %q Port %q URL %q do not agree", s.Host, s.Port, s.URL)
	}

	ok := func(t *testing.T, q url.Values, want ...string) {
		t.Helper()
		code, body := c.get(t, logPath("ops", "op-0", q), c.token)
		if code != http.StatusOK {
			t.Fatalf("status %d: %s\n%s", code, body, s.Logs())
		}
		if w := strings.Join(want, ""); body != w {
			t.Errorf("body:\n%s\nwant:\n%s", body, w)
		}
	}
	// The fixed-width prefix: nine fraction digits whatever the file had.
	all := []string{
		"2026-11-25T21:41:49.123456789Z first line\n",
		"2026-11-25T21:41:49.900000000Z second line\n",
		"2026-11-25T21:41:50.500000000Z part one, part two\n",
		"2026-11-25T21:41:52.000000000Z late line\n",
	}

	t.Run("timestamps, partial pair joined", func(t *testing.T) {
		ok(t, url.Values{"container": {"operator"}, "timestamps": {"true"}}, all...)
	})
	t.Run("no timestamps", func(t *testing.T) {
		ok(t, url.Values{"container": {"operator"}}, "first line\n", "second line\n", "part one, part two\n", "late line\n")
	})
	t.Run("sinceTime", func(t *testing.T) {
		ok(t, url.Values{"container": {"operator"}, "timestamps": {"true"}, "sinceTime": {"2026-11-25T21:41:51Z"}}, all[3])
	})
	t.Run("sinceTime fraction is truncated on the way to the kubelet", func(t *testing.T) {
		// 49.95 reaches ReadLogs as 49: the lines at 49.12 and 49.9 come too.
		ok(t, url.Values{"container": {"operator"}, "timestamps": {"true"}, "sinceTime": {"2026-11-25T21:41:49.95Z"}}, all...)
	})
	t.Run("tailLines", func(t *testing.T) {
		ok(t, url.Values{"container": {"operator"}, "timestamps": {"true"}, "tailLines": {"1"}}, all[3])
	})
	t.Run("previous", func(t *testing.T) {
		ok(t, url.Values{"container": {"operator"}, "timestamps": {"true"}, "previous": {"true"}},
			"2026-11-25T21:40:00.000000001Z previous instance line\n")
	})
	t.Run("rotated token", func(t *testing.T) {
		old := c.token
		if err := os.WriteFile(filepath.Join(s.SADir, "token"), []byte("rotated-token"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.WriteFile(filepath.Join(s.SADir, "token"), []byte(old), 0o644) })
		if code, body := c.get(t, logPath("ops", "op-0", url.Values{"container": {"operator"}}), old); code != http.StatusUnauthorized {
			t.Errorf("old token: status %d, want 401: %s", code, body)
		}
		if code, body := c.get(t, logPath("ops", "op-0", url.Values{"container": {"operator"}}), "rotated-token"); code != http.StatusOK {
			t.Errorf("new token: status %d, want 200: %s", code, body)
		}
	})

	for _, tc := range []struct {
		name, path, token string
		code              int
		reason, message   string
	}{
		{"no token", logPath("ops", "op-0", url.Values{"container": {"operator"}}), "",
			401, "Unauthorized", "Unauthorized"},
		{"wrong token", logPath("ops", "op-0", url.Values{"container": {"operator"}}), "nope",
			401, "Unauthorized", "Unauthorized"},
		{"other namespace", logPath("other", "op-0", url.Values{"container": {"operator"}}), c.token,
			403, "Forbidden", `pods "op-0" is forbidden: User "system:serviceaccount:ops:default" cannot get resource "pods/log" in API group "" in the namespace "other"`},
		{"unknown pod", logPath("ops", "op-1", url.Values{"container": {"operator"}}), c.token,
			404, "NotFound", `pods "op-1" not found`},
		{"unknown container", logPath("ops", "op-0", url.Values{"container": {"nope"}}), c.token,
			400, "BadRequest", "container nope is not valid for pod op-0"},
		{"no container in a two-container pod", logPath("ops", "op-0", nil), c.token,
			400, "BadRequest", "a container name must be specified for pod op-0, choose one of: [operator sidecar]"},
		{"no previous instance", logPath("ops", "op-0", url.Values{"container": {"sidecar"}, "previous": {"true"}}), c.token,
			400, "BadRequest", `previous terminated container "sidecar" in pod "op-0" not found`},
		{"bad tailLines", logPath("ops", "op-0", url.Values{"container": {"operator"}, "tailLines": {"x"}}), c.token,
			400, "BadRequest", `strconv.ParseInt: parsing "x": invalid syntax`},
		{"both since options", logPath("ops", "op-0", url.Values{"container": {"operator"}, "sinceSeconds": {"5"}, "sinceTime": {"2026-11-25T21:41:51Z"}}), c.token,
			422, "Invalid", "PodLogOptions \"op-0\" is invalid: []: Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified"},
		{"other path", "/api/v1/namespaces/ops/pods", c.token,
			404, "NotFound", "the server could not find the requested resource"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := c.get(t, tc.path, tc.token)
			var st apiStatus
			if err := json.Unmarshal([]byte(body), &st); err != nil {
				t.Fatalf("status %d, body is not a Status: %v\n%s", code, err, body)
			}
			want := apiStatus{Kind: "Status", APIVersion: "v1", Status: "Failure", Message: tc.message, Reason: tc.reason, Code: tc.code}
			if code != tc.code || st != want {
				t.Errorf("status %d %+v\nwant   %d %+v", code, st, tc.code, want)
			}
		})
	}

	t.Run("follow ends when the instance exits", func(t *testing.T) {
		log := filepath.Join(op, "sidecar", "0.log")
		lines, done := follow(t, c, url.Values{"container": {"sidecar"}, "follow": {"true"}, "timestamps": {"true"}})
		expectLine(t, s, lines, "2026-11-25T21:41:49.000000000Z sidecar line\n")
		appendCRI(t, log, "2026-11-25T21:42:00.25Z stdout F appended after the request")
		expectLine(t, s, lines, "2026-11-25T21:42:00.250000000Z appended after the request\n")
		appendCRI(t, log, "2026-11-25T21:42:01Z stdout P half, ")
		appendCRI(t, log, "2026-11-25T21:42:01.5Z stdout F other half")
		expectLine(t, s, lines, "2026-11-25T21:42:01.000000000Z half, other half\n")
		if err := os.WriteFile(filepath.Join(op, "sidecar", "0.exited"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		expectEOF(t, s, lines, done)
	})
	t.Run("follow ends when a new instance starts", func(t *testing.T) {
		dir := filepath.Join(pods, "ops_restart-0_abc", "app")
		writeCRI(t, filepath.Join(dir, "0.log"), "2026-11-25T21:41:49Z stdout F first run")
		lines, done := follow(t, c, url.Values{"follow": {"true"}})
		expectLine(t, s, lines, "first run\n")
		writeCRI(t, filepath.Join(dir, "1.log"), "2026-11-25T21:43:00Z stdout F second run")
		expectEOF(t, s, lines, done)
		ok := func(q url.Values, want string) {
			t.Helper()
			if code, body := c.get(t, logPath("ops", "restart-0", q), c.token); code != http.StatusOK || body != want {
				t.Errorf("%v: status %d body %q, want %q", q, code, body, want)
			}
		}
		ok(url.Values{"previous": {"true"}}, "first run\n")
		ok(nil, "second run\n")
	})
}

// follow starts a follow request for pod op-0 (or restart-0 when no
// container is given) and delivers its body line by line; done is closed
// with the stream's end.
func follow(t *testing.T, c *podLogsClient, q url.Values) (<-chan string, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	pod := "op-0"
	if q.Get("container") == "" {
		pod = "restart-0"
	}
	lines := make(chan string, 16)
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.s.URL+logPath("ops", pod, q), nil)
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := c.http.Do(req)
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			done <- errors.New(resp.Status + ": " + string(b))
			return
		}
		if ct := resp.Header.Get("Content-Type"); ct != "text/plain" {
			done <- errors.New("Content-Type " + ct)
			return
		}
		r := bufio.NewReader(resp.Body)
		for {
			line, err := r.ReadString('\n')
			if line != "" {
				lines <- line
			}
			if err != nil {
				if err == io.EOF {
					err = nil
				}
				done <- err
				return
			}
		}
	}()
	return lines, done
}

func expectLine(t *testing.T, s *PodLogsServer, lines <-chan string, want string) {
	t.Helper()
	select {
	case got := <-lines:
		if got != want {
			t.Fatalf("line %q, want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no line %q within 10s\n%s", want, s.Logs())
	}
}

func expectEOF(t *testing.T, s *PodLogsServer, lines <-chan string, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stream ended with %v, want EOF", err)
		}
		select {
		case l := <-lines:
			t.Errorf("unexpected line %q", l)
		default:
		}
	case l := <-lines:
		t.Fatalf("unexpected line %q, want EOF", l)
	case <-time.After(10 * time.Second):
		t.Fatalf("stream did not end within 10s\n%s", s.Logs())
	}
}
