package data

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/opsight/opsight/internal/jsonlines"
)

// record is the top-level fields of an NDJSON record a triage reads; the
// rest of the line is skipped, not kept in a map. Each field also comes as
// opsight.<name>: the sidecar adds its fields after the operator's, and when
// the line already had a field of that name with another value, ours is
// written as opsight.<name> (localfileexporter README), so that one wins.
type record struct {
	TS        json.RawMessage `json:"ts"`
	Line      string          `json:"line"`
	Level     string          `json:"level"`
	Revision  string          `json:"revision"`
	Namespace string          `json:"namespace"`
	Cluster   string          `json:"cluster"`
	Service   string          `json:"service_name"`
	Pod       string          `json:"pod"`
	Zone      string          `json:"zone"`
	Risk      string          `json:"risk"`
	Trace     string          `json:"trace_id"`

	OLevel     string `json:"opsight.level"`
	ORevision  string `json:"opsight.revision"`
	ONamespace string `json:"opsight.namespace"`
	OCluster   string `json:"opsight.cluster"`
	OService   string `json:"opsight.service_name"`
	OPod       string `json:"opsight.pod"`
	OZone      string `json:"opsight.zone"`
	ORisk      string `json:"opsight.risk"`
	OTrace     string `json:"opsight.trace_id"`
}

func pick(ours, line string) string {
	if ours != "" {
		return ours
	}
	return line
}

// ParseLogLine decodes one record of the sidecar's NDJSON. year dates klog
// lines, whose header has none (0: the current year). A field of another
// JSON type than expected (an operator's own "level": 3) is an error only
// for encoding/json's strictness: the record is read without it.
func ParseLogLine(line []byte, year int) (Log, error) {
	var r record
	if err := json.Unmarshal(line, &r); err != nil {
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) {
			return Log{}, err
		}
	}
	l := Log{
		Level: pick(r.OLevel, r.Level), Revision: pick(r.ORevision, r.Revision), Namespace: pick(r.ONamespace, r.Namespace),
		Cluster: pick(r.OCluster, r.Cluster), Service: pick(r.OService, r.Service), Pod: pick(r.OPod, r.Pod), Zone: pick(r.OZone, r.Zone),
		Line: string(line),
	}
	if risk := pick(r.ORisk, r.Risk); risk != "" {
		l.Risk = strings.Split(risk, ",")
	}
	if id := pick(r.OTrace, r.Trace); len(id) == 32 {
		if _, err := hex.Decode(l.Trace[:], []byte(id)); err != nil {
			l.Trace = TraceID{}
		}
	}
	if len(r.TS) > 0 {
		var s string
		if r.TS[0] == '"' {
			if json.Unmarshal(r.TS, &s) == nil {
				if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
					l.Time = t.UTC()
				}
			}
		} else if f, err := strconv.ParseFloat(string(r.TS), 64); err == nil && f > 0 && f < 1e11 {
			sec := int64(f)
			l.Time = time.Unix(sec, int64((f-float64(sec))*1e9)).UTC()
		}
	}
	if l.Time.IsZero() && r.Line != "" {
		l.Time = KlogTime(r.Line, year)
	}
	return l, nil
}

// KlogTime reads a klog header ("I1201 14:33:26.695780 ..."), which has no
// year: year supplies it (0: the current one). Zero when s has no header.
func KlogTime(s string, year int) time.Time {
	if len(s) < 21 || !strings.ContainsRune("IWEF", rune(s[0])) || s[5] != ' ' {
		return time.Time{}
	}
	if year == 0 {
		year = time.Now().UTC().Year()
	}
	t, err := time.Parse("0102 15:04:05.000000", s[1:21])
	if err != nil {
		return time.Time{}
	}
	return t.AddDate(year-t.Year(), 0, 0).UTC()
}

// ReadLogs reads the NDJSON files. A line that is not JSON is an error
// naming the file and line: the sidecar never writes one.
func ReadLogs(files []string) ([]Log, error) {
	var out []Log
	for _, path := range files {
		if err := readLogFile(path, &out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readLogFile decodes the lines on every core (JSON decoding is the cost)
// and appends them in file order; klog lines then take the year of the
// records before them.
func readLogFile(path string, out *[]Log) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("--logs: %v", err)
	}
	defer f.Close()
	year := time.Now().UTC().Year()
	return jsonlines.Each(f, path, 64<<20, func(line []byte) (Log, error) {
		l, err := ParseLogLine(line, 1)
		if err != nil {
			return Log{}, fmt.Errorf("not an NDJSON log record (the sidecar's logs-*.ndjson expected): %v", err)
		}
		return l, nil
	}, func(_ int, l Log) {
		if l.Time.Year() == 1 {
			// Parsed with year 1 as a marker: klog headers carry none.
			l.Time = l.Time.AddDate(year-1, 0, 0)
		} else if !l.Time.IsZero() {
			year = l.Time.Year()
		}
		*out = append(*out, l)
	})
}
