package online

import (
	"context"
	"encoding/hex"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"time"

	"github.com/opsight/opsight/triage/internal/data"
)

// Exemplar is one exemplar of a series: the span metrics' carry trace_id
// and span_id (CONVENTIONS.md).
type Exemplar struct {
	Series map[string]string
	Trace  data.TraceID
	Span   data.SpanID
	Value  float64 // the observation (seconds for a duration)
	Time   time.Time
}

type promExemplars struct {
	Status    string `json:"status"`
	Error     string `json:"error"`
	ErrorType string `json:"errorType"`
	Data      []struct {
		SeriesLabels map[string]string `json:"seriesLabels"`
		Exemplars    []struct {
			Labels    map[string]string `json:"labels"`
			Value     string            `json:"value"`
			Timestamp float64           `json:"timestamp"`
		} `json:"exemplars"`
	} `json:"data"`
}

// Exemplars runs /api/v1/query_exemplars over [from, to]: the trace ids
// behind a span metric's samples, e.g. of its slow buckets.
func (c Client) Exemplars(ctx context.Context, query string, from, to time.Time) ([]Exemplar, error) {
	q := url.Values{}
	q.Set("query", query)
	q.Set("start", strconv.FormatFloat(float64(from.UnixMilli())/1e3, 'f', 3, 64))
	q.Set("end", strconv.FormatFloat(float64(to.UnixMilli())/1e3, 'f', 3, 64))
	var a promExemplars
	if err := c.get(ctx, "/api/v1/query_exemplars", q, nil, &a); err != nil {
		return nil, err
	}
	return exemplarsOf(a)
}

// ParsePromExemplars decodes a query_exemplars answer.
func ParsePromExemplars(b []byte) ([]Exemplar, error) { return decode(b, exemplarsOf) }

// exemplarsOf converts a decoded answer; exemplars without a valid
// trace_id are left out (they cannot be followed).
func exemplarsOf(a promExemplars) ([]Exemplar, error) {
	if a.Status != "success" {
		return nil, fmt.Errorf("prometheus: %s: %s", a.ErrorType, a.Error)
	}
	var out []Exemplar
	for _, d := range a.Data {
		for _, e := range d.Exemplars {
			x := Exemplar{Series: d.SeriesLabels}
			if decodeID(x.Trace[:], e.Labels["trace_id"]) != nil || x.Trace.IsZero() {
				continue
			}
			if id := e.Labels["span_id"]; len(id) == 16 {
				hex.Decode(x.Span[:], []byte(id))
			}
			v, err := strconv.ParseFloat(e.Value, 64)
			if err != nil {
				return nil, fmt.Errorf("prometheus: exemplar value %q: %v", e.Value, err)
			}
			x.Value = v
			sec, frac := math.Modf(e.Timestamp)
			x.Time = time.Unix(int64(sec), int64(frac*1e9)).UTC()
			out = append(out, x)
		}
	}
	return out, nil
}
