package operatorenrichprocessor

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/corpus/*.golden from the current output")

// corpusRecord is what a reader of the enriched record sees: the Body is
// never changed, so it is left out.
type corpusRecord struct {
	Line       string            `json:"line"`
	Time       string            `json:"time,omitempty"`
	Severity   string            `json:"severity,omitempty"`
	TraceID    string            `json:"trace_id,omitempty"`
	SpanID     string            `json:"span_id,omitempty"`
	Attributes map[string]string `json:"attributes"`
}

// TestEnrichmentCorpus: the lines of testdata/corpus/*.in, one record each
// as the receiver reads them, through the processor; the records must equal
// testdata/corpus/<name>.golden (go test -run TestEnrichmentCorpus
// -update-corpus rewrites it; review the diff). The corpus holds the
// spellings CONVENTIONS.md promises (trace ids in every form, levels,
// timestamps, klog, logfmt) and the bad input that must be shipped raw.
func TestEnrichmentCorpus(t *testing.T) {
	ins, err := filepath.Glob(filepath.Join("testdata", "corpus", "*.in"))
	if err != nil || len(ins) == 0 {
		t.Fatalf("no corpus in testdata/corpus (%v)", err)
	}
	// The year of klog headers comes from the record's observed time.
	observed := pcommon.NewTimestampFromTime(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))
	for _, in := range ins {
		t.Run(filepath.Base(in), func(t *testing.T) {
			raw, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			lines := bytes.Split(bytes.TrimSuffix(raw, []byte("\n")), []byte("\n"))
			strs := make([]string, len(lines))
			for i, l := range lines {
				strs[i] = string(l)
			}
			ld := fileLogs(strs...)
			lrs := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords()
			for i := 0; i < lrs.Len(); i++ {
				lrs.At(i).SetObservedTimestamp(observed)
			}
			h := newHarness(t, nil, map[string]string{"OPSIGHT_REVISION": "v1.5.0", "OPSIGHT_SERVICE_NAME": "etcd-operator"})
			if err := h.logs.ConsumeLogs(context.Background(), ld); err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			for _, lr := range h.allRecords() {
				b, err := json.Marshal(toCorpusRecord(lr))
				if err != nil {
					t.Fatal(err)
				}
				got.Write(b)
				got.WriteByte('\n')
			}
			golden := in[:len(in)-len(".in")] + ".golden"
			if *updateCorpus {
				if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test -run TestEnrichmentCorpus -update-corpus creates it; review it)", err)
			}
			if len(bytes.Split(bytes.TrimSpace(want), []byte("\n"))) != len(lines) {
				t.Fatalf("%s has not one record per line of %s", golden, in)
			}
			if !bytes.Equal(got.Bytes(), want) {
				gl, wl := bytes.Split(got.Bytes(), []byte("\n")), bytes.Split(want, []byte("\n"))
				for i := 0; i < len(gl) && i < len(wl); i++ {
					if !bytes.Equal(gl[i], wl[i]) {
						t.Errorf("record %d differs from %s (-update-corpus rewrites it; review the diff)\ngot:  %s\nwant: %s", i+1, golden, gl[i], wl[i])
					}
				}
			}
		})
	}
}

func toCorpusRecord(lr plog.LogRecord) corpusRecord {
	r := corpusRecord{Line: lr.Body().AsString(), Severity: lr.SeverityText(), Attributes: map[string]string{}}
	if ts := lr.Timestamp(); ts != 0 {
		r.Time = ts.AsTime().UTC().Format(time.RFC3339Nano)
	}
	if id := lr.TraceID(); !id.IsEmpty() {
		r.TraceID = hexOf(id[:])
	}
	if id := lr.SpanID(); !id.IsEmpty() {
		r.SpanID = hexOf(id[:])
	}
	keys := make([]string, 0, lr.Attributes().Len())
	for k := range lr.Attributes().All() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, _ := lr.Attributes().Get(k)
		r.Attributes[k] = v.AsString()
	}
	return r
}
