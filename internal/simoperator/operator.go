// Package simoperator simulates a controller-runtime operator: it writes the
// JSON (zap) and klog text lines such an operator writes into kubelet-style
// CRI log files with rotation, sends its reconcile spans over OTLP/HTTP, and
// exposes controller-runtime, workqueue and client-go metrics. The demo, the
// end-to-end tests and the benchmarks drive opsight with it.
package simoperator

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// Config describes one simulated operator pod.
type Config struct {
	LogRoot     string // kubelet's /var/log/pods equivalent
	Namespace   string
	Pod         string
	PodUID      string
	Container   string // default "manager"
	Service     string // service.name of spans, default "etcd-operator"
	Revision    string
	Cluster     string
	Controllers []string // default etcdcluster, etcdbackup

	ReconcilesPerSecond float64 // default 50
	Workers             int     // default 4
	// MedianLatency of a reconcile; durations are log-normal around it.
	MedianLatency time.Duration // default 20ms
	// SlowTailShare of reconciles take SlowTailFactor times longer: the
	// regression a release gate must catch (p99 up, median unchanged).
	SlowTailShare  float64
	SlowTailFactor float64
	ErrorShare     float64 // default 0.03
	// ErrorMessages replaces the messages a failed reconcile logs (one per
	// failure, picked at random); empty keeps the default mix. An error storm
	// is a high ErrorShare with one message.
	ErrorMessages []string
	// SlowCallDelay is added to the API calls of method SlowCallMethod (e.g.
	// "GET"), to a SlowCallShare of them (0 means all): a slow dependency
	// such as one zone's API server. The call's client span and the
	// reconcile take that much longer; later calls start that much later.
	// Zero (the default) changes nothing.
	SlowCallMethod string
	SlowCallDelay  time.Duration
	SlowCallShare  float64
	// CPUThrottleFactor stretches everything this pod does by that factor
	// (its reconciles' own time and every API call alike), as a pod-local
	// CPU throttle (a tight CPU limit, a noisy neighbour) does: one pod
	// slow in every span, not one span slow everywhere. 0 or 1 (the
	// default) changes nothing; it draws nothing from the generator, so
	// runs without it see the same sequence as before the knob existed.
	CPUThrottleFactor float64
	// FieldTraceShare of reconciles log trace ids themselves (instrumented
	// logger); the rest only carry reconcileID and rely on the late join.
	FieldTraceShare float64 // default 0.4
	RotateBytes     int64   // default 1 MiB
	MaxFiles        int     // default 5
	OTLPEndpoint    string  // e.g. http://127.0.0.1:4318 ("" = no spans)
	Metrics         *OperatorMetrics
	Seed            uint64
}

func (c *Config) defaults() {
	if c.Container == "" {
		c.Container = "manager"
	}
	if c.Service == "" {
		c.Service = "etcd-operator"
	}
	if len(c.Controllers) == 0 {
		c.Controllers = []string{"etcdcluster", "etcdbackup"}
	}
	if c.ReconcilesPerSecond == 0 {
		c.ReconcilesPerSecond = 50
	}
	if c.Workers == 0 {
		c.Workers = 4
	}
	if c.MedianLatency == 0 {
		c.MedianLatency = 20 * time.Millisecond
	}
	if c.ErrorShare == 0 {
		c.ErrorShare = 0.03
	}
	if c.FieldTraceShare == 0 {
		c.FieldTraceShare = 0.4
	}
	if c.RotateBytes == 0 {
		c.RotateBytes = 1 << 20
	}
	if c.MaxFiles == 0 {
		c.MaxFiles = 5
	}
	if c.PodUID == "" {
		c.PodUID = fmt.Sprintf("%08x-0000-4000-8000-%012x", c.Seed, c.Seed)
	}
}

// Stats counts what the operator produced.
type Stats struct {
	Reconciles int64
	Lines      int64 // log lines written
	KeyedLines int64 // lines carrying a reconcileID
	Spans      int64 // spans accepted by the OTLP endpoint
	SpanErrors int64 // span batches the endpoint refused
	Rotations  int
	LogDir     string
}

// Operator is a running simulation.
type Operator struct {
	cfg   Config
	logs  *CRIWriter
	rng   *rand.Rand
	rngMu sync.Mutex

	reconciles, lines, keyed, spans, spanErrs atomic.Int64

	spanMu  sync.Mutex
	pending ptrace.Traces
	client  *http.Client
}

// New prepares an operator; Run starts it.
func New(cfg Config) (*Operator, error) {
	cfg.defaults()
	w, err := NewCRIWriter(PodLogDir(cfg.LogRoot, cfg.Namespace, cfg.Pod, cfg.PodUID, cfg.Container), cfg.RotateBytes, cfg.MaxFiles)
	if err != nil {
		return nil, err
	}
	return &Operator{
		cfg: cfg, logs: w,
		rng:     rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		pending: ptrace.NewTraces(),
		client:  &http.Client{Timeout: 5 * time.Second},
	}, nil
}

// Run reconciles until ctx ends, then flushes spans and closes the log.
func (o *Operator) Run(ctx context.Context) (Stats, error) {
	o.line(time.Now(), "stderr", klogLine(time.Now(), "I", "leaderelection.go:258", "successfully acquired lease "+o.cfg.Namespace+"/"+o.cfg.Service+"-lock"))
	if m := o.cfg.Metrics; m != nil {
		m.leader.WithLabelValues(o.cfg.labels(o.cfg.Service + "-lock")...).Set(1)
		for _, c := range o.cfg.Controllers {
			m.maxWorkers.WithLabelValues(o.cfg.labels(c)...).Set(float64(o.cfg.Workers))
		}
	}
	jobs := make(chan job, 1024)
	var wg sync.WaitGroup
	for i := 0; i < o.cfg.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				o.reconcile(ctx, j)
			}
		}()
	}
	flushDone := make(chan struct{})
	go func() {
		defer close(flushDone)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				o.flushSpans()
			}
		}
	}()
	interval := time.Duration(float64(time.Second) / o.cfg.ReconcilesPerSecond)
	tick := time.NewTicker(interval)
	n := 0
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case now := <-tick.C:
			n++
			j := job{enqueued: now, controller: o.cfg.Controllers[n%len(o.cfg.Controllers)], object: fmt.Sprintf("%s-%d", o.cfg.Service[:4], n%37)}
			select {
			case jobs <- j:
				if m := o.cfg.Metrics; m != nil {
					m.depth.WithLabelValues(o.cfg.labels(j.controller)...).Set(float64(len(jobs)))
				}
			default: // queue full: the operator is saturated; drop the tick like a rate-limited queue would.
			}
		}
	}
	tick.Stop()
	close(jobs)
	wg.Wait()
	<-flushDone
	o.flushSpans()
	err := o.logs.Close()
	return Stats{
		Reconciles: o.reconciles.Load(), Lines: o.lines.Load(), KeyedLines: o.keyed.Load(),
		Spans: o.spans.Load(), SpanErrors: o.spanErrs.Load(), Rotations: o.logs.rotations, LogDir: o.logs.dir,
	}, err
}

type job struct {
	enqueued   time.Time
	controller string
	object     string
}

func (o *Operator) draw() (u float64, n float64, id uint64, id2 uint64) {
	o.rngMu.Lock()
	defer o.rngMu.Unlock()
	return o.rng.Float64(), o.rng.NormFloat64(), o.rng.Uint64(), o.rng.Uint64()
}

func (o *Operator) line(now time.Time, stream, s string) {
	if err := o.logs.WriteLine(now, stream, s); err == nil {
		o.lines.Add(1)
	}
}

var errorMessages = []string{
	`Operation cannot be fulfilled on etcdclusters.etcd.database.coreos.com \"%s\": the object has been modified; please apply your changes to the latest version and try again`,
	`failed to get member status: context deadline exceeded`,
	`dial tcp 10.96.12.7:2379: connect: connection refused`,
	`etcdserver: request timed out`,
	`read tcp 10.244.1.9:51234->10.96.0.1:443: read: connection reset by peer`,
}

func (o *Operator) reconcile(ctx context.Context, j job) {
	start := time.Now()
	u, z, a, b := o.draw()
	traceID := pcommon.TraceID{}
	binary.BigEndian.PutUint64(traceID[:8], a)
	binary.BigEndian.PutUint64(traceID[8:], b)
	spanID := pcommon.SpanID{}
	binary.BigEndian.PutUint64(spanID[:], a^b|1)
	reconcileID := fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", uint32(a>>32), uint16(a>>16), uint16(a)&0xfff, uint16(b>>48)&0xfff, b&0xffffffffffff)
	withTrace := u < o.cfg.FieldTraceShare
	spelling := int(a % 7)
	if withTrace && spelling == 5 {
		// Datadog-style loggers carry 64-bit ids: such a tracer makes 64-bit trace ids.
		traceID = pcommon.TraceID{}
		binary.BigEndian.PutUint64(traceID[8:], b)
	}

	d := float64(o.cfg.MedianLatency) * math.Exp(0.5*z)
	u2, _, _, _ := o.draw()
	if u2 < o.cfg.SlowTailShare {
		d *= o.cfg.SlowTailFactor
	}
	if f := o.cfg.CPUThrottleFactor; f > 0 && f != 1 {
		d *= f
	}
	dur := time.Duration(d)
	u3, _, _, _ := o.draw()
	failed := u3 < o.cfg.ErrorShare
	// API calls: a GET, sometimes an update.
	calls := []string{"GET"}
	if a%3 == 0 {
		calls = append(calls, "PUT")
	}
	slow := o.slowCall(calls)
	base := dur // the reconcile's own time, before a slow call's delay
	if slow.index >= 0 {
		dur += slow.delay
	}

	kv := &fields{}
	kv.add("controller", j.controller).add("controllerGroup", "etcd.database.coreos.com").add("controllerKind", "EtcdCluster")
	kv.obj("EtcdCluster", j.object, o.cfg.Namespace)
	kv.add("namespace", o.cfg.Namespace).add("name", j.object).add("reconcileID", reconcileID)
	if withTrace {
		kv.trace(spelling, traceID, spanID)
	}
	o.jsonLine(start, "info", "Reconciling", kv)
	if m := o.cfg.Metrics; m != nil {
		m.queueWait.WithLabelValues(o.cfg.labels(j.controller)...).Observe(start.Sub(j.enqueued).Seconds())
		m.active.WithLabelValues(o.cfg.labels(j.controller)...).Inc()
	}
	select {
	case <-ctx.Done():
	case <-time.After(dur):
	}
	end := start.Add(dur)
	if a%29 == 0 {
		o.line(end, "stderr", klogLine(end, "I", "request.go:697", fmt.Sprintf("Waited for %.3fs due to client-side throttling, not priority and fairness, request: GET:https://10.96.0.1:443/apis/etcd.database.coreos.com/v1beta2/namespaces/%s/etcdclusters/%s", float64(a%2000)/1000, o.cfg.Namespace, j.object)))
	}
	o.jsonLine(end, "debug", "Fetched member status", kv.clone().add("members", strconv.Itoa(int(a%5)+1)))
	result := "success"
	if failed {
		result = "error"
		msgs := errorMessages
		if len(o.cfg.ErrorMessages) > 0 {
			msgs = o.cfg.ErrorMessages
		}
		msg := msgs[int(b%uint64(len(msgs)))]
		if a%5 == 0 {
			// A recovered panic, the way controller-runtime logs it, followed by the stack on stderr.
			o.jsonLine(end, "error", "Observed a panic in reconciler: runtime error: invalid memory address or nil pointer dereference", kv.clone().add("panic", "runtime error: invalid memory address or nil pointer dereference"))
			o.line(end, "stderr", "goroutine 412 [running]:")
			o.line(end, "stderr", "sigs.k8s.io/controller-runtime/pkg/internal/controller.(*Controller).Reconcile.func1()")
			o.line(end, "stderr", "\t/go/pkg/mod/sigs.k8s.io/controller-runtime@v0.22.4/pkg/internal/controller/controller.go:108 +0x1e5")
		}
		if strings.Contains(msg, "%s") { // only some messages name the object
			msg = fmt.Sprintf(msg, j.object)
		}
		o.jsonLine(end, "error", "Reconciler error", kv.clone().add("error", msg))
	} else {
		o.jsonLine(end, "info", "Reconcile successful", kv.clone().add("duration", dur.String()))
	}
	o.reconciles.Add(1)
	if m := o.cfg.Metrics; m != nil {
		l := o.cfg.labels(j.controller)
		m.active.WithLabelValues(l...).Dec()
		m.reconcileTotal.WithLabelValues(append(l, result)...).Inc()
		if failed {
			m.reconcileErrors.WithLabelValues(l...).Inc()
			m.retries.WithLabelValues(l...).Inc()
		}
		m.reconcileTime.WithLabelValues(l...).Observe(dur.Seconds())
		m.workDuration.WithLabelValues(l...).Observe(dur.Seconds())
		for _, c := range calls {
			code := "200"
			if failed && c == "PUT" {
				code = "409"
			}
			m.restRequests.WithLabelValues(o.cfg.Cluster, o.cfg.Namespace, o.cfg.Pod, o.cfg.Revision, code, c, "10.96.0.1:443").Inc()
		}
	}
	o.addSpans(traceID, spanID, reconcileID, j, start, start.Add(base), failed, calls, slow)
}

// slowCall is the call a reconcile makes slow (index -1: none) and by how much.
type slowCall struct {
	index int
	delay time.Duration
}

// slowCall decides whether this reconcile meets the slow dependency. It
// draws from the generator only when SlowCallDelay is set, so runs without
// it see the same sequence as before the knob existed.
func (o *Operator) slowCall(calls []string) slowCall {
	if o.cfg.SlowCallDelay <= 0 {
		return slowCall{index: -1}
	}
	i := slices.Index(calls, o.cfg.SlowCallMethod)
	if i < 0 {
		return slowCall{index: -1}
	}
	if s := o.cfg.SlowCallShare; s > 0 && s < 1 {
		if u, _, _, _ := o.draw(); u >= s {
			return slowCall{index: -1}
		}
	}
	return slowCall{index: i, delay: o.cfg.SlowCallDelay}
}

func (o *Operator) jsonLine(ts time.Time, level, msg string, kv *fields) {
	var buf bytes.Buffer
	buf.WriteString(`{"level":"`)
	buf.WriteString(level)
	buf.WriteString(`","ts":"`)
	buf.WriteString(ts.UTC().Format("2006-01-02T15:04:05.000000Z07:00"))
	buf.WriteString(`","logger":"controller.`)
	buf.WriteString(kv.get("controller"))
	buf.WriteString(`","msg":"`)
	buf.WriteString(msg)
	buf.WriteByte('"')
	buf.Write(kv.buf)
	buf.WriteByte('}')
	o.line(ts, "stderr", buf.String())
	if kv.get("reconcileID") != "" {
		o.keyed.Add(1)
	}
}

func klogLine(ts time.Time, sev, loc, msg string) string {
	return fmt.Sprintf("%s%s       1 %s] %s", sev, ts.UTC().Format("0102 15:04:05.000000"), loc, msg)
}

// fields builds the tail of a zap JSON line in insertion order.
type fields struct {
	buf  []byte
	vals map[string]string
}

func (f *fields) clone() *fields {
	c := &fields{buf: append([]byte(nil), f.buf...), vals: map[string]string{}}
	for k, v := range f.vals {
		c.vals[k] = v
	}
	return c
}

func (f *fields) add(k, v string) *fields {
	if f.vals == nil {
		f.vals = map[string]string{}
	}
	f.vals[k] = v
	f.buf = append(f.buf, `,"`...)
	f.buf = append(f.buf, k...)
	f.buf = append(f.buf, `":`...)
	f.buf = strconv.AppendQuote(f.buf, v)
	return f
}

func (f *fields) raw(k, v string) {
	f.buf = append(f.buf, `,"`...)
	f.buf = append(f.buf, k...)
	f.buf = append(f.buf, `":`...)
	f.buf = append(f.buf, v...)
}

func (f *fields) obj(kind, name, ns string) {
	f.raw(kind, fmt.Sprintf(`{"name":%q,"namespace":%q}`, name, ns))
}

func (f *fields) get(k string) string { return f.vals[k] }

// trace writes the trace context in one of the spellings real loggers use.
func (f *fields) trace(spelling int, t pcommon.TraceID, s pcommon.SpanID) {
	th, sh := hex.EncodeToString(t[:]), hex.EncodeToString(s[:])
	switch spelling {
	case 0:
		f.add("trace_id", th).add("span_id", sh)
	case 1:
		f.add("traceId", th).add("spanId", sh)
	case 2:
		f.add("traceID", th).add("spanID", sh)
	case 3:
		f.raw("trace", fmt.Sprintf(`{"id":%q,"span_id":%q}`, th, sh))
	case 4:
		f.add("otelTraceID", th).add("otelSpanID", sh)
	case 5:
		// Datadog: the low 64 bits in decimal.
		f.add("dd.trace_id", strconv.FormatUint(binary.BigEndian.Uint64(t[8:]), 10)).add("dd.span_id", strconv.FormatUint(binary.BigEndian.Uint64(s[:]), 10))
	default:
		f.add("traceparent", "00-"+th+"-"+sh+"-01")
	}
}

// addSpans records the reconcile's spans: end is where the reconcile would
// end without slow's delay; the delay lengthens call slow.index and shifts
// everything after it.
func (o *Operator) addSpans(traceID pcommon.TraceID, spanID pcommon.SpanID, reconcileID string, j job, start, end time.Time, failed bool, calls []string, slow slowCall) {
	if o.cfg.OTLPEndpoint == "" {
		return
	}
	o.spanMu.Lock()
	defer o.spanMu.Unlock()
	rss := o.pending.ResourceSpans()
	if rss.Len() == 0 {
		rs := rss.AppendEmpty()
		r := rs.Resource().Attributes()
		r.PutStr("service.name", o.cfg.Service)
		r.PutStr("service.version", o.cfg.Revision)
		r.PutStr("k8s.namespace.name", o.cfg.Namespace)
		r.PutStr("k8s.pod.name", o.cfg.Pod)
		rs.ScopeSpans().AppendEmpty().Scope().SetName("sigs.k8s.io/controller-runtime")
	}
	ss := rss.At(0).ScopeSpans().At(0).Spans()
	root := ss.AppendEmpty()
	root.SetTraceID(traceID)
	root.SetSpanID(spanID)
	root.SetName("Reconcile")
	root.SetKind(ptrace.SpanKindServer)
	root.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
	var delay time.Duration
	if slow.index >= 0 {
		delay = slow.delay
	}
	root.SetEndTimestamp(pcommon.NewTimestampFromTime(end.Add(delay)))
	root.Attributes().PutStr("reconcile.id", reconcileID)
	root.Attributes().PutStr("controller", j.controller)
	root.Attributes().PutStr("k8s.object.namespace", o.cfg.Namespace)
	root.Attributes().PutStr("k8s.object.name", j.object)
	if failed {
		root.Status().SetCode(ptrace.StatusCodeError)
	}
	step := end.Sub(start) / time.Duration(len(calls)+1)
	for i, c := range calls {
		ch := ss.AppendEmpty()
		ch.SetTraceID(traceID)
		var sid pcommon.SpanID
		copy(sid[:], spanID[:])
		sid[7] ^= byte(i + 1)
		sid[6] ^= 0x5a
		ch.SetSpanID(sid)
		ch.SetParentSpanID(spanID)
		ch.SetName(c)
		ch.SetKind(ptrace.SpanKindClient)
		cs := start.Add(step * time.Duration(i))
		ce := cs.Add(step / 2)
		switch {
		case slow.index >= 0 && i == slow.index:
			ce = ce.Add(delay)
		case slow.index >= 0 && i > slow.index:
			cs, ce = cs.Add(delay), ce.Add(delay)
		}
		ch.SetStartTimestamp(pcommon.NewTimestampFromTime(cs))
		ch.SetEndTimestamp(pcommon.NewTimestampFromTime(ce))
		ch.Attributes().PutStr("http.request.method", c)
		ch.Attributes().PutStr("server.address", "10.96.0.1")
		ch.Attributes().PutStr("k8s.object.name", j.object)
	}
}

func (o *Operator) flushSpans() {
	o.spanMu.Lock()
	td := o.pending
	o.pending = ptrace.NewTraces()
	o.spanMu.Unlock()
	n := td.SpanCount()
	if n == 0 {
		return
	}
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		o.spanErrs.Add(1)
		return
	}
	for attempt := 0; attempt < 5; attempt++ {
		resp, err := o.client.Post(o.cfg.OTLPEndpoint+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				o.spans.Add(int64(n))
				return
			}
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
	o.spanErrs.Add(1)
}

// RunAll runs one operator per config side by side until ctx ends and
// returns their stats in config order, or the first error.
func RunAll(ctx context.Context, cfgs []Config) ([]Stats, error) {
	ops := make([]*Operator, len(cfgs))
	for i, c := range cfgs {
		op, err := New(c)
		if err != nil {
			return nil, fmt.Errorf("pod %s: %w", c.Pod, err)
		}
		ops[i] = op
	}
	stats := make([]Stats, len(ops))
	errs := make([]error, len(ops))
	var wg sync.WaitGroup
	for i, op := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stats[i], errs[i] = op.Run(ctx)
		}()
	}
	wg.Wait()
	return stats, errors.Join(errs...)
}
