// Package online reads what a triage needs from the backends' HTTP APIs
// with small types of its own: Tempo's trace by id, Loki's query_range,
// Prometheus' query_exemplars. Each answer becomes the offline types
// (data.Span, data.Log), so the analysis does not know where they came
// from. Not yet wired into the command (docs/triage.md, "Not done yet").
package online

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client is a base URL and an HTTP client.
type Client struct {
	URL  string
	HTTP *http.Client // default: 30 s timeout
	// Record, when set, is told every query run (the API path, the query,
	// what came back in a few words), so a report can list them.
	Record func(api, query, answer string)
}

func (c Client) note(api, query, answer string) {
	if c.Record != nil {
		c.Record(api, query, answer)
	}
}

func (c Client) get(ctx context.Context, path string, q url.Values, hdr http.Header, v any) error {
	u := strings.TrimRight(c.URL, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("GET %s: %v", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, strings.TrimSpace(string(b[:min(len(b), 500)])))
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("GET %s: unexpected answer (%v): %.200s", u, err, b)
	}
	return nil
}

// decode unmarshals b as an A and converts it as the client does its
// answers (the Parse functions: recorded fixtures, fuzzing).
func decode[A, R any](b []byte, convert func(A) (R, error)) (R, error) {
	var a A
	if err := json.Unmarshal(b, &a); err != nil {
		var zero R
		return zero, err
	}
	return convert(a)
}
