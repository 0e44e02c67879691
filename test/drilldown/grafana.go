// Package drilldown checks the trace → logs drill-down without Grafana: it
// reads the provisioned data sources (deploy/grafana/datasources.yaml),
// builds the Loki query Grafana builds when a span's "Logs for this span"
// is clicked, and evaluates it on what the sidecar sends Loki. See
// docs/drilldown.md.
//
// How Grafana builds the query (public/app/features/explore/TraceView/
// createSpanLink.tsx, Grafana 10–12): with tracesToLogsV2.customQuery the
// query is tracesToLogsV2.query, interpolated with the scoped variables
// ${__trace.traceId}, ${__span.traceId}, ${__span.spanId},
// ${__span.name}, ${__span.tags.<key>} / ${__span.tags["<key>"]} (resource
// and span attributes) and ${__tags} (the configured tag mappings the span
// has, `label="value"` joined by ", "); a query naming a variable the span
// does not have gets no link at all. Without a custom query it is
// {${__tags}} followed by a trace id filter whose form depends on the
// version (FormLineFilter, FormLabelFormat). The trace id is the hex of
// the trace's 16 bytes with 16 leading zeros trimmed (Grafana's Tempo
// backend, pkg/tsdb/tempo/trace_transform.go); Tempo's search API trims all
// leading zeros.
package drilldown

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// TracesToLogs is the Tempo data source's tracesToLogsV2 block.
type TracesToLogs struct {
	DatasourceUID   string `yaml:"datasourceUid"`
	SpanStartShift  string `yaml:"spanStartTimeShift"`
	SpanEndShift    string `yaml:"spanEndTimeShift"`
	FilterByTraceID bool   `yaml:"filterByTraceID"`
	FilterBySpanID  bool   `yaml:"filterBySpanID"`
	Tags            []Tag  `yaml:"tags"`
	CustomQuery     bool   `yaml:"customQuery"`
	Query           string `yaml:"query"`
}

// Tag maps a span attribute (Key) to a Loki label (Value; empty: the same name).
type Tag struct {
	Key   string `yaml:"key"`
	Value string `yaml:"value"`
}

// Span is what Grafana knows of the clicked span.
type Span struct {
	TraceID string // as Grafana has it (leading zeros possibly trimmed)
	SpanID  string // 16 hex
	Name    string // operation name
	Process []KV   // resource attributes, in order
	Attrs   []KV   // span attributes, in order
}

// KV is one attribute.
type KV struct{ Key, Value string }

// tag is ${__span.tags.<key>}: span attributes win over resource ones.
func (s Span) tag(key string) (string, bool) {
	v, ok := "", false
	for _, kv := range append(append([]KV(nil), s.Process...), s.Attrs...) {
		if kv.Key == key {
			v, ok = kv.Value, true
		}
	}
	return v, ok
}

// LoadTracesToLogs reads the tracesToLogsV2 block of the Tempo data source
// in a provisioning file, with provisioning's "$$" → "$" unescaping applied
// (Grafana expands $VAR and ${VAR} from its environment in provisioned
// values; "$$" is a literal "$").
func LoadTracesToLogs(path string) (TracesToLogs, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return TracesToLogs{}, err
	}
	var f struct {
		Datasources []struct {
			Type     string `yaml:"type"`
			JSONData struct {
				TracesToLogs *TracesToLogs `yaml:"tracesToLogsV2"`
			} `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		return TracesToLogs{}, fmt.Errorf("%s: %w", path, err)
	}
	for _, d := range f.Datasources {
		if d.Type == "tempo" && d.JSONData.TracesToLogs != nil {
			t := *d.JSONData.TracesToLogs
			t.Query = strings.ReplaceAll(t.Query, "$$", "$")
			return t, nil
		}
	}
	return TracesToLogs{}, fmt.Errorf("%s: no tempo data source with jsonData.tracesToLogsV2", path)
}

// FormattedTags is Grafana's ${__tags}: for each resource then span
// attribute that a configured tag names, label="value", joined by ", ".
func FormattedTags(span Span, tags []Tag) string {
	var parts []string
	for _, kv := range append(append([]KV(nil), span.Process...), span.Attrs...) {
		for _, t := range tags {
			if t.Key == kv.Key {
				label := t.Value
				if label == "" {
					label = t.Key
				}
				parts = append(parts, label+`="`+kv.Value+`"`)
				break
			}
		}
	}
	return strings.Join(parts, ", ")
}

// Forms of the trace → logs query.
type Form int

const (
	// FormCustom is tracesToLogsV2.query, interpolated (opsight's setting).
	FormCustom Form = iota
	// FormLineFilter is the default query of older Grafanas:
	// {${__tags}} |="<traceId>" — a text search of the line.
	FormLineFilter
	// FormLabelFormat is the default query of newer Grafanas: the line
	// contains the id, or the trace_id label/metadata equals it.
	FormLabelFormat
)

func (f Form) String() string {
	return [...]string{"custom query", "line filter (older default)", "label_format (newer default)"}[f]
}

var varRe = regexp.MustCompile(`\$\{([^}]*)\}|\$(__[A-Za-z_.]+)`)

// Build returns the Loki query Grafana runs for span in the given form, or
// an error where Grafana would show no link (a variable the span lacks, no
// tag to select streams by).
func (t TracesToLogs) Build(span Span, form Form) (string, error) {
	tags := FormattedTags(span, t.Tags)
	var q string
	switch form {
	case FormCustom:
		if !t.CustomQuery || t.Query == "" {
			return "", fmt.Errorf("tracesToLogsV2 has no custom query (customQuery: %t, query: %q)", t.CustomQuery, t.Query)
		}
		q = t.Query
	case FormLineFilter:
		if tags == "" {
			return "", fmt.Errorf("no configured tag on the span: Grafana shows no link")
		}
		q = `{${__tags}} |="${__span.traceId}"`
	case FormLabelFormat:
		if tags == "" {
			return "", fmt.Errorf("no configured tag on the span: Grafana shows no link")
		}
		q = "{${__tags}} | label_format log_line_contains_trace_id=`{{ contains \"${__span.traceId}\" __line__  }}` | log_line_contains_trace_id=\"true\" or trace_id=\"${__span.traceId}\""
	}
	var missing []string
	out := varRe.ReplaceAllStringFunc(q, func(m string) string {
		sub := varRe.FindStringSubmatch(m)
		name := sub[1]
		if name == "" {
			name = sub[2]
		}
		v, ok := lookup(span, tags, name)
		if !ok {
			missing = append(missing, m)
			return m
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("variables %s are not defined for this span: Grafana shows no link", strings.Join(missing, ", "))
	}
	return out, nil
}

func lookup(span Span, tags, name string) (string, bool) {
	switch name {
	case "__tags":
		return tags, true
	case "__trace.traceId", "__span.traceId":
		return span.TraceID, span.TraceID != ""
	case "__span.spanId":
		return span.SpanID, span.SpanID != ""
	case "__span.name", "__trace.name":
		return span.Name, span.Name != ""
	}
	if key, ok := strings.CutPrefix(name, "__span.tags"); ok {
		switch {
		case strings.HasPrefix(key, `["`) && strings.HasSuffix(key, `"]`):
			key = key[2 : len(key)-2]
		case strings.HasPrefix(key, "."):
			key = key[1:]
		default:
			return "", false
		}
		return span.tag(key)
	}
	return "", false
}

// Window is the time range Grafana queries for a span: its start shifted by
// spanStartTimeShift, its end by spanEndTimeShift (Go duration syntax, which
// covers Grafana's "5m", "-1h", "30s").
func (t TracesToLogs) Window(start, end time.Time) (from, to time.Time, err error) {
	shift := func(s string) (time.Duration, error) {
		if s == "" {
			return 0, nil
		}
		return time.ParseDuration(s)
	}
	a, err := shift(t.SpanStartShift)
	if err != nil {
		return from, to, fmt.Errorf("spanStartTimeShift: %w", err)
	}
	b, err := shift(t.SpanEndShift)
	if err != nil {
		return from, to, fmt.Errorf("spanEndTimeShift: %w", err)
	}
	return start.Add(a), end.Add(b), nil
}
