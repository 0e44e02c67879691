// Package demo writes example OTLP JSON trace files (the sidecar's
// traces-*.jsonl format) so the gate can be tried without a cluster:
// `releasegate demo-data --out DIR`.
package demo

import (
	"bufio"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/opsight/opsight/internal/conventions"
)

// Revision describes one revision's load.
type Revision struct {
	Name     string
	Start    time.Time
	SlowTail float64 // share of reconciles that take 3x longer
}

// Write writes traces-<revision>.jsonl files into dir: n reconciles per
// revision, each a Reconcile server span (2% errors) with a child GET client
// span, lognormal durations around 50 ms. Seeded: the same call writes the
// same files.
func Write(dir string, n int, revs []Revision) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(2026, 11))
	var files []string
	for _, rev := range revs {
		path := filepath.Join(dir, "traces-"+rev.Name+".jsonl")
		f, err := os.Create(path)
		if err != nil {
			return nil, err
		}
		w := bufio.NewWriter(f)
		for k := 0; k < n; k += 200 {
			td := ptrace.NewTraces()
			rs := td.ResourceSpans().AppendEmpty()
			attrs := rs.Resource().Attributes()
			attrs.PutStr(conventions.AttrServiceName, "etcd-operator")
			attrs.PutStr(conventions.AttrServiceVersion, rev.Name)
			attrs.PutStr(conventions.AttrNamespace, "prod")
			spans := rs.ScopeSpans().AppendEmpty().Spans()
			for i := k; i < k+200 && i < n; i++ {
				d := 0.05 * math.Exp(0.5*r.NormFloat64())
				if r.Float64() < rev.SlowTail {
					d *= 3
				}
				start := rev.Start.Add(time.Duration(i) * 100 * time.Millisecond)
				var tid pcommon.TraceID
				var sid, cid pcommon.SpanID
				for j := range tid {
					tid[j] = byte(r.Uint32())
				}
				for j := range sid {
					sid[j], cid[j] = byte(r.Uint32()), byte(r.Uint32())
				}
				sp := spans.AppendEmpty()
				sp.SetTraceID(tid)
				sp.SetSpanID(sid)
				sp.SetName("Reconcile")
				sp.SetKind(ptrace.SpanKindServer)
				sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
				sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(d * 1e9))))
				if r.Float64() < 0.02 {
					sp.Status().SetCode(ptrace.StatusCodeError)
				}
				c := spans.AppendEmpty()
				c.SetTraceID(tid)
				c.SetSpanID(cid)
				c.SetParentSpanID(sid)
				c.SetName("GET /apis/etcd.database.coreos.com/v1beta2")
				c.SetKind(ptrace.SpanKindClient)
				c.SetStartTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Millisecond)))
				c.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Millisecond + time.Duration(0.4*d*1e9))))
			}
			b, err := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
			if err != nil {
				f.Close()
				return nil, err
			}
			w.Write(b)
			w.WriteByte('\n')
		}
		if err := w.Flush(); err != nil {
			f.Close()
			return nil, err
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
		files = append(files, path)
	}
	return files, nil
}

// Describe says what Write wrote, for the command's output.
func Describe(files []string, n int) string {
	return fmt.Sprintf("wrote %d reconciles per revision to %v", n, files)
}
