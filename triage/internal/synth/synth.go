// Package synth writes synthetic sidecar output — OTLP JSON trace lines
// and enriched NDJSON log records in the localfile exporter's formats —
// from a seed, byte for byte the same every time: for golden reports and
// for benchmarks at sizes a simulated operator cannot reach quickly (a
// million spans). The shape follows internal/simoperator: a Reconcile
// server span with a GET client call and, for a third, a PUT.
package synth

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Pod is one pod's share of the data and what is wrong with it.
type Pod struct {
	Name, Revision, Zone string
	Traces               int
	SlowGET              time.Duration // added to every GET
	ErrorShare           float64       // default 0.03
	ErrorMessage         string        // default: a mix
}

// Config of a data set.
type Config struct {
	Service, Namespace, Cluster string
	Start                       time.Time // of the first reconcile
	Rate                        float64   // reconciles per second per pod (default 100)
	Pods                        []Pod
	Seed                        uint64
	TracesPerLine               int // default 200
}

var messages = []string{
	"failed to get member status: context deadline exceeded",
	"dial tcp 10.96.12.7:2379: connect: connection refused",
	"etcdserver: request timed out",
	"read tcp 10.244.1.9:51234->10.96.0.1:443: read: connection reset by peer",
}

// risks are the ids the sidecar's matcher gives those messages.
var risks = map[string]string{
	messages[0]: "deadline_exceeded",
	messages[1]: "connection_refused",
	messages[2]: "etcd_timeout",
	messages[3]: "connection_reset",
}

// Write writes the traces to tw and the logs to lw (nil: none).
func Write(cfg Config, tw, lw io.Writer) error {
	if cfg.Rate == 0 {
		cfg.Rate = 100
	}
	if cfg.TracesPerLine == 0 {
		cfg.TracesPerLine = 200
	}
	tb := bufio.NewWriterSize(tw, 1<<20)
	var lb *bufio.Writer
	if lw != nil {
		lb = bufio.NewWriterSize(lw, 1<<20)
	}
	m := &ptrace.JSONMarshaler{}
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	for pi, p := range cfg.Pods {
		errShare := p.ErrorShare
		if errShare == 0 {
			errShare = 0.03
		}
		for done := 0; done < p.Traces; {
			td := ptrace.NewTraces()
			rs := td.ResourceSpans().AppendEmpty()
			r := rs.Resource().Attributes()
			r.PutStr("service.name", cfg.Service)
			r.PutStr("service.version", p.Revision)
			r.PutStr("k8s.namespace.name", cfg.Namespace)
			r.PutStr("k8s.pod.name", p.Name)
			r.PutStr("k8s.cluster.name", cfg.Cluster)
			r.PutStr("cloud.availability_zone", p.Zone)
			ss := rs.ScopeSpans().AppendEmpty()
			ss.Scope().SetName("sigs.k8s.io/controller-runtime")
			spans := ss.Spans()
			for k := 0; k < cfg.TracesPerLine && done < p.Traces; k, done = k+1, done+1 {
				start := cfg.Start.Add(time.Duration(float64(done) / cfg.Rate * float64(time.Second))).Add(time.Duration(pi) * time.Microsecond)
				a, b := rng.Uint64(), rng.Uint64()
				var tid pcommon.TraceID
				binary.BigEndian.PutUint64(tid[:8], a)
				binary.BigEndian.PutUint64(tid[8:], b)
				var sid pcommon.SpanID
				binary.BigEndian.PutUint64(sid[:], a^b|1)
				base := time.Duration(20e6 * math.Exp(0.5*rng.NormFloat64()))
				failed := rng.Float64() < errShare
				calls := []string{"GET"}
				if a%3 == 0 {
					calls = append(calls, "PUT")
				}
				step := base / time.Duration(len(calls)+1)
				end := start.Add(base + p.SlowGET)
				root := spans.AppendEmpty()
				root.SetTraceID(tid)
				root.SetSpanID(sid)
				root.SetName("Reconcile")
				root.SetKind(ptrace.SpanKindServer)
				root.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
				root.SetEndTimestamp(pcommon.NewTimestampFromTime(end))
				if failed {
					root.Status().SetCode(ptrace.StatusCodeError)
				}
				for i, c := range calls {
					ch := spans.AppendEmpty()
					ch.SetTraceID(tid)
					cid := sid
					cid[7] ^= byte(i + 1)
					cid[6] ^= 0x5a
					ch.SetSpanID(cid)
					ch.SetParentSpanID(sid)
					ch.SetName(c)
					ch.SetKind(ptrace.SpanKindClient)
					cs := start.Add(step * time.Duration(i))
					ce := cs.Add(step / 2)
					if i == 0 {
						ce = ce.Add(p.SlowGET)
					} else {
						cs, ce = cs.Add(p.SlowGET), ce.Add(p.SlowGET)
					}
					ch.SetStartTimestamp(pcommon.NewTimestampFromTime(cs))
					ch.SetEndTimestamp(pcommon.NewTimestampFromTime(ce))
				}
				if lb != nil {
					msg := p.ErrorMessage
					if msg == "" {
						msg = messages[int(b%uint64(len(messages)))]
					}
					writeLogs(lb, cfg, p, hex.EncodeToString(tid[:]), start, end, failed, msg)
				}
			}
			line, err := m.MarshalTraces(td)
			if err != nil {
				return err
			}
			tb.Write(line)
			tb.WriteByte('\n')
		}
	}
	if lb != nil {
		if err := lb.Flush(); err != nil {
			return err
		}
	}
	return tb.Flush()
}

func writeLogs(w *bufio.Writer, cfg Config, p Pod, trace string, start, end time.Time, failed bool, msg string) {
	line := func(ts time.Time, level, text, extra, risk string) {
		fmt.Fprintf(w, `{"level":%q,"ts":%q,"msg":%q%s,"trace_id":%q,"correlation":"field"`, level, ts.UTC().Format("2006-01-02T15:04:05.000000Z07:00"), text, extra, trace)
		if risk != "" {
			fmt.Fprintf(w, `,"risk":%q`, risk)
		}
		fmt.Fprintf(w, `,"revision":%q,"cluster":%q,"namespace":%q,"pod":%q,"container":"manager","service_name":%q,"zone":%q}`+"\n",
			p.Revision, cfg.Cluster, cfg.Namespace, p.Name, cfg.Service, p.Zone)
	}
	line(start, "info", "Reconciling", "", "")
	if failed {
		r := risks[msg]
		if r != "" {
			r += ","
		}
		line(end, "error", "Reconciler error", `,"error":`+strconv.Quote(msg), r+"reconciler_error")
		return
	}
	line(end, "info", "Reconcile successful", "", "")
}
