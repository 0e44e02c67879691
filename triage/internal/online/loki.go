package online

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/triage/internal/data"
)

// lokiAnswer is /loki/api/v1/query_range for a log query. With the header
// X-Loki-Response-Encoding-Flags: categorize-labels, each value carries a
// third element with the entry's structured metadata; without it, Loki
// folds structured metadata into the stream labels. Both are read.
type lokiAnswer struct {
	Status string `json:"status"`
	Data   struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Stream map[string]string   `json:"stream"`
			Values [][]json.RawMessage `json:"values"`
		} `json:"result"`
	} `json:"data"`
}

// Logs runs a LogQL log query over [from, to], oldest first, at most limit lines.
func (c Client) Logs(ctx context.Context, query string, from, to time.Time, limit int) ([]data.Log, error) {
	q := url.Values{}
	q.Set("query", query)
	q.Set("start", strconv.FormatInt(from.UnixNano(), 10))
	q.Set("end", strconv.FormatInt(to.UnixNano(), 10))
	q.Set("limit", strconv.Itoa(limit))
	q.Set("direction", "forward")
	var a lokiAnswer
	hdr := http.Header{"X-Loki-Response-Encoding-Flags": {"categorize-labels"}}
	if err := c.get(ctx, "/loki/api/v1/query_range", q, hdr, &a); err != nil {
		return nil, err
	}
	return lokiLogs(a)
}

// ParseLokiLogs decodes a query_range answer.
func ParseLokiLogs(b []byte) ([]data.Log, error) { return decode(b, lokiLogs) }

// lokiLogs converts a decoded answer, oldest first.
func lokiLogs(a lokiAnswer) ([]data.Log, error) {
	if a.Status != "success" {
		return nil, fmt.Errorf("loki: status %q", a.Status)
	}
	if a.Data.ResultType != "streams" {
		return nil, fmt.Errorf("loki: result type %q, want streams (a log query, not a metric query)", a.Data.ResultType)
	}
	var out []data.Log
	for _, s := range a.Data.Result {
		for _, v := range s.Values {
			if len(v) < 2 {
				return nil, fmt.Errorf("loki: value with %d elements, want [time, line(, metadata)]", len(v))
			}
			var ts, line string
			if json.Unmarshal(v[0], &ts) != nil || json.Unmarshal(v[1], &line) != nil {
				return nil, fmt.Errorf("loki: value %s is not [\"<ns>\", \"<line>\"]", v[0])
			}
			ns, err := strconv.ParseInt(ts, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("loki: timestamp %q: %v", ts, err)
			}
			md := map[string]string{}
			for k, x := range s.Stream {
				md[k] = x
			}
			if len(v) > 2 {
				var cat struct {
					StructuredMetadata map[string]string `json:"structuredMetadata"`
				}
				if err := json.Unmarshal(v[2], &cat); err != nil {
					return nil, fmt.Errorf("loki: entry metadata %s: %v", v[2], err)
				}
				for k, x := range cat.StructuredMetadata {
					md[k] = x
				}
			}
			l := data.Log{Time: time.Unix(0, ns).UTC(), Line: line,
				Level: md[conventions.LogLevel], Revision: md[conventions.LabelRevision], Namespace: md[conventions.LabelNamespace],
				Cluster: md[conventions.LabelCluster], Service: md[conventions.LabelServiceName], Pod: md[conventions.LabelPod], Zone: md[conventions.MetaZone]}
			if r := md[conventions.LogRisk]; r != "" {
				l.Risk = strings.Split(r, ",")
			}
			if id := md[conventions.LogTraceID]; len(id) == 32 {
				if _, err := hex.Decode(l.Trace[:], []byte(id)); err != nil {
					l.Trace = data.TraceID{}
				}
			}
			out = append(out, l)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}
