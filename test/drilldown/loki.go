package drilldown

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/opsight/opsight/alerts"
)

// Entry is one log line as Loki stores it: stream labels, the line,
// structured metadata and the timestamp.
type Entry struct {
	Labels   map[string]string `json:"labels"`
	Line     string            `json:"line"`
	Metadata map[string]string `json:"metadata"`
	Time     time.Time         `json:"time"`
}

// DecodePush appends the entries of one Loki JSON push body
// ({"streams":[{"stream":{…},"values":[["<ns>","<line>",{…metadata}]]}]}).
func DecodePush(r io.Reader, into []Entry) ([]Entry, error) {
	var body struct {
		Streams []struct {
			Stream map[string]string `json:"stream"`
			Values [][]json.RawMessage
		} `json:"streams"`
	}
	if err := json.NewDecoder(r).Decode(&body); err != nil {
		return into, fmt.Errorf("push body: %w", err)
	}
	for _, s := range body.Streams {
		for _, v := range s.Values {
			if len(v) < 2 || len(v) > 3 {
				return into, fmt.Errorf("push value with %d elements, want 2 or 3", len(v))
			}
			var ts, line string
			if err := json.Unmarshal(v[0], &ts); err != nil {
				return into, fmt.Errorf("push timestamp: %w", err)
			}
			if err := json.Unmarshal(v[1], &line); err != nil {
				return into, fmt.Errorf("push line: %w", err)
			}
			ns, err := strconv.ParseInt(ts, 10, 64)
			if err != nil {
				return into, fmt.Errorf("push timestamp %q: %w", ts, err)
			}
			e := Entry{Labels: s.Stream, Line: line, Time: time.Unix(0, ns).UTC(), Metadata: map[string]string{}}
			if len(v) == 3 {
				if err := json.Unmarshal(v[2], &e.Metadata); err != nil {
					return into, fmt.Errorf("push structured metadata: %w", err)
				}
			}
			into = append(into, e)
		}
	}
	return into, nil
}

// labelFormatRe is Grafana's newer default query, which alerts.LogQuery
// cannot parse (no label_format stage, no "or" between label filters): the
// line contains the id, or the trace_id label (structured metadata) equals it.
var labelFormatRe = regexp.MustCompile("^(\\{[^}]*\\}) \\| label_format log_line_contains_trace_id=`\\{\\{ contains \"([^\"]*)\" __line__  \\}\\}` \\| log_line_contains_trace_id=\"true\" or trace_id=\"([^\"]*)\"$")

// Select returns the entries a Loki log query returns between from and to
// (inclusive). Stream selectors, line filters and label filters (stream
// labels and structured metadata alike, regexps fully anchored, as in
// Loki 3) are evaluated by alerts.LogQuery; Grafana's label_format form by
// labelFormatRe.
func Select(entries []Entry, query string, from, to time.Time) ([]Entry, error) {
	match, err := matcher(query)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, e := range entries {
		if e.Time.Before(from) || e.Time.After(to) {
			continue
		}
		if match(e) {
			out = append(out, e)
		}
	}
	return out, nil
}

func matcher(query string) (func(Entry) bool, error) {
	if m := labelFormatRe.FindStringSubmatch(query); m != nil {
		sel, err := alerts.ParseLogQL(m[1])
		if err != nil {
			return nil, fmt.Errorf("%q: %w", query, err)
		}
		contains, id := m[2], m[3]
		return func(e Entry) bool {
			if !sel.MatchEntry(e.Line, e.Labels, e.Metadata) {
				return false
			}
			v, ok := e.Metadata["trace_id"]
			if !ok {
				v = e.Labels["trace_id"]
			}
			return strings.Contains(e.Line, contains) || v == id
		}, nil
	}
	q, err := alerts.ParseLogQL(query)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", query, err)
	}
	if len(q.Aggs) > 0 || q.RangeOp != "" {
		return nil, fmt.Errorf("%q is a metric query, want a log query", query)
	}
	return func(e Entry) bool { return q.MatchEntry(e.Line, e.Labels, e.Metadata) }, nil
}
