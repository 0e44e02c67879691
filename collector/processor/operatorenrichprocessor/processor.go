package operatorenrichprocessor

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/opsight/opsight/internal/conventions"
)

// shared is one component ID's state, common to its logs and traces
// processors: the span index the late join reads, the resolved settings and
// counters, and the count of held lines.
type shared struct {
	e     *enricher
	index *spanIndex
	svc   *serviceCheck // spans named otherwise than the pod's service
	held  atomic.Int64  // log records in batches currently held for the join
	refs  int           // started processors (guarded by the factory's mutex)
	yield holdYield
}

// holdYield learns whether holding pays. Holding blocks the receiver, so a
// hold whose lines mostly time out unjoined (the operator samples its
// traces, or spans of some reconciles never come) costs throughput for
// nothing. When the recent share of waited-for lines that got joined falls
// below minHoldYield, batches are held only as a probe, once per
// probeEvery, to notice when spans come back.
type holdYield struct {
	mu        sync.Mutex
	ewma      float64 // share of waited lines joined during recent holds
	seen      bool
	nextProbe time.Time
}

const (
	graceHold    = 500 * time.Millisecond // longest hold during the start-up grace
	minHoldYield = 0.8
	probeEvery   = 10 * time.Second
)

// worth reports whether a batch should be held now.
func (y *holdYield) worth(now time.Time) bool {
	y.mu.Lock()
	defer y.mu.Unlock()
	if !y.seen || y.ewma >= minHoldYield {
		return true
	}
	if now.Before(y.nextProbe) {
		return false
	}
	y.nextProbe = now.Add(probeEvery)
	return true
}

// record adds one hold's outcome: joined of waited lines got their span.
func (y *holdYield) record(joined, waited int, now time.Time) {
	if waited == 0 {
		return
	}
	r := float64(joined) / float64(waited)
	y.mu.Lock()
	defer y.mu.Unlock()
	if !y.seen {
		y.ewma, y.seen = r, true
	} else {
		y.ewma = 0.7*y.ewma + 0.3*r
	}
	if y.ewma < minHoldYield && y.nextProbe.Before(now) {
		y.nextProbe = now.Add(probeEvery)
	}
}

// logsProcessor enriches log records and holds batches for the late join.
type logsProcessor struct {
	sh *shared
	e  *enricher

	stopOnce sync.Once
	stop     chan struct{} // closed on Shutdown: held batches go at once
	holders  atomic.Int64  // batches being held now
	stopped  atomic.Bool
}

func newLogsProcessor(sh *shared) *logsProcessor {
	return &logsProcessor{sh: sh, e: sh.e, stop: make(chan struct{})}
}

// processLogs enriches in place; processorhelper forwards the batch (whole,
// in order) once this returns, so ConsumeLogs returns only after that.
func (p *logsProcessor) processLogs(ctx context.Context, ld plog.Logs) (plog.Logs, error) {
	b := p.e.getBatch()
	defer putBatch(b)
	p.e.enrichLogs(ld, b)
	if len(b.pending) > 0 {
		p.join(ctx, b)
	}
	p.e.count(b)
	return ld, nil
}

// join gives keyed lines without trace context the trace and span of the
// span that carried the same key. When spans may still come (keyed spans
// were seen within active_window), the batch is held up to wait for them,
// re-checking as spans arrive; beyond max_held held lines, or on Shutdown
// or a cancelled context, it goes on unjoined. Nothing is ever dropped.
func (p *logsProcessor) join(ctx context.Context, b *batch) {
	now := p.e.now()
	ix := p.sh.index
	for i := range b.pending {
		b.pending[i].wait = true
	}
	remaining, _ := ix.resolve(b.pending, now, false)
	wait := p.e.wait
	active := ix.active(now, p.e.activeWindow)
	if !active && ix.inGrace(now, p.e.wait) {
		// Start-up: hold briefly only. A long hold here would stall the
		// reader on the backlog a restart leaves, and the backlog's spans
		// (if any) came before the restart, beyond the in-memory index.
		active, wait = true, min(wait, graceHold)
	}
	if remaining > 0 && p.e.wait > 0 && !p.stopped.Load() && active &&
		ix.markWaitable(b.pending, now, p.e.activeWindow) > 0 && p.sh.yield.worth(now) {
		n := int64(b.records)
		if p.sh.held.Add(n) <= int64(p.e.maxHeld) {
			p.hold(ctx, b, wait)
			waited, joined := 0, 0
			for i := range b.pending {
				if b.pending[i].wait {
					waited++
					if b.pending[i].found {
						joined++
					}
				}
			}
			p.sh.yield.record(joined, waited, p.e.now())
		}
		p.sh.held.Add(-n)
	}
	for i := range b.pending {
		pl := &b.pending[i]
		if !pl.found {
			continue
		}
		pl.lr.SetTraceID(pl.trace)
		attrs := pl.lr.Attributes()
		attrs.PutStr(conventions.LogTraceID, traceHex(pl.trace, ""))
		if !pl.span.IsEmpty() {
			pl.lr.SetSpanID(pl.span)
			attrs.PutStr(conventions.LogSpanID, spanHex(pl.span, ""))
		}
		attrs.PutStr(conventions.LogCorrelation, conventions.CorrelationJoin)
		b.join++
	}
}

func (p *logsProcessor) hold(ctx context.Context, b *batch, wait time.Duration) {
	// Count first, then check stopped: Shutdown sets stopped before it
	// waits for the count to reach zero, so no hold can slip past it.
	p.holders.Add(1)
	defer p.holders.Add(-1)
	if p.stopped.Load() {
		return
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		remaining, woken := p.sh.index.resolve(b.pending, p.e.now(), true)
		if remaining == 0 {
			return
		}
		select {
		case <-woken:
		case <-timer.C:
			p.sh.index.resolve(b.pending, p.e.now(), false) // spans that came with the deadline
			return
		case <-p.stop:
			return
		case <-ctx.Done():
			return
		}
	}
}

func (p *logsProcessor) shutdown(ctx context.Context) error {
	p.stopped.Store(true)
	p.stopOnce.Do(func() { close(p.stop) })
	// Holders see stop closed and forward at once; wait for them to leave.
	for p.holders.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// tracesProcessor stamps span resources and records keyed spans in the index.
type tracesProcessor struct {
	sh *shared
	e  *enricher
}

var keyedPool = sync.Pool{New: func() any { s := make([]keyedSpan, 0, 64); return &s }}

func (p *tracesProcessor) processTraces(_ context.Context, td ptrace.Traces) (ptrace.Traces, error) {
	kp := keyedPool.Get().(*[]keyedSpan)
	keyed := (*kp)[:0]
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		p.sh.svc.check(rs) // before stampResource replaces the name
		p.e.stampResource(rs.Resource().Attributes())
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				sp := spans.At(k)
				v, ok := sp.Attributes().Get(p.e.spanAttr)
				if !ok || sp.TraceID().IsEmpty() {
					continue
				}
				key := v.AsString()
				if key == "" {
					continue
				}
				ks := keyedSpan{key: key, trace: sp.TraceID(), span: sp.SpanID(), parent: sp.ParentSpanID()}
				if c, ok := sp.Attributes().Get(conventions.AttrControllerSpan); ok {
					ks.controller = c.AsString()
				}
				keyed = append(keyed, ks)
			}
		}
	}
	p.sh.index.add(keyed, p.e.now())
	clear(keyed)
	*kp = keyed[:0]
	keyedPool.Put(kp)
	return td, nil
}

// lifecycle reference-counts a processor's use of its shared state (like
// the collector's sharedcomponent): the state lives while any is started.
type lifecycle struct {
	f       *enrichFactory
	id      component.ID
	sh      *shared
	started bool
	onStop  func(context.Context) error
}

func (l *lifecycle) start(context.Context, component.Host) error {
	l.f.mu.Lock()
	defer l.f.mu.Unlock()
	if !l.started {
		l.started = true
		l.sh.refs++
		if _, ok := l.f.shared[l.id]; !ok {
			l.f.shared[l.id] = l.sh // restarted after every user had shut down
		}
	}
	return nil
}

func (l *lifecycle) shutdown(ctx context.Context) error {
	var err error
	if l.onStop != nil {
		err = l.onStop(ctx)
	}
	l.f.mu.Lock()
	defer l.f.mu.Unlock()
	if l.started {
		l.started = false
		l.sh.refs--
		if l.sh.refs == 0 && l.f.shared[l.id] == l.sh {
			delete(l.f.shared, l.id) // the index goes with the last user
		}
	}
	return err
}
