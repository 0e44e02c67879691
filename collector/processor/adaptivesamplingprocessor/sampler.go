package adaptivesamplingprocessor

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor/processorhelper"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/selftelemetry"
)

// Metric names (opsight_ prefix per CONVENTIONS.md).
const (
	MetricDecisions = conventions.MetricSamplingDecisions
	MetricRate      = conventions.MetricSamplingRate
)

// Decision label values.
const (
	DecisionSampled = "sampled"
	DecisionDropped = "dropped"
)

// OverflowKey is where keys beyond max_keys are tracked together.
const OverflowKey = "other"

// slots divides the window; the window slides in steps of window/slots.
const slots = 10

// slot counts root/server spans in one window/slots interval.
type slot struct {
	epoch             int64 // which interval this slot holds
	total, slow, errs uint64
}

type keyState struct {
	ring        [slots]slot
	raisedUntil time.Time
	lastSeen    time.Time

	rate      prometheus.Gauge
	sampled   prometheus.Counter
	dropped   prometheus.Counter
	nSampled  uint64 // per batch, flushed into the counters
	nDropped  uint64
	threshold uint64 // current keep threshold on the 56-bit hash
}

type sampler struct {
	cfg      *Config
	now      func() time.Time
	slotDur  int64
	baseline uint64 // keep threshold at baseline_ratio

	decisions *prometheus.CounterVec
	rates     *prometheus.GaugeVec

	mu        sync.Mutex
	keys      map[string]*keyState
	lastSweep time.Time
}

func newSampler(cfg *Config, m *selftelemetry.Metrics, now func() time.Time) (*sampler, error) {
	if now == nil {
		now = time.Now
	}
	s := &sampler{
		cfg:      cfg,
		now:      now,
		slotDur:  max(int64(cfg.Window)/slots, 1),
		baseline: thresholdFor(cfg.BaselineRatio),
		keys:     make(map[string]*keyState),
	}
	var err error
	if s.decisions, err = registerOrReuse(m.Registry, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricDecisions, Help: "Trace sampling decisions by key and decision (sampled, dropped), counted per span.",
	}, []string{"key", "decision"})); err != nil {
		return nil, err
	}
	if s.rates, err = registerOrReuse(m.Registry, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: MetricRate, Help: "Current fraction of traces kept, by key: baseline_ratio, or 1 while the key breaches a threshold or cools down.",
	}, []string{"key"})); err != nil {
		return nil, err
	}
	return s, nil
}

// registerOrReuse registers c, or returns the collector already registered
// under the same name by another instance of this processor.
func registerOrReuse[C prometheus.Collector](r *prometheus.Registry, c C) (C, error) {
	if err := r.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

// thresholdFor maps a ratio to a threshold on a 56-bit hash: kept iff
// hash < threshold. 56 bits, as W3C trace-context level 2 randomness.
func thresholdFor(ratio float64) uint64 {
	const full = uint64(1) << 56
	if ratio >= 1 {
		return full
	}
	if ratio <= 0 {
		return 0
	}
	return uint64(math.Round(ratio * float64(full)))
}

// traceHash is FNV-1a over the trace id, cut to 56 bits. Hashing rather than
// reading the id's low bits keeps it uniform for ids that are not random.
// Every span of a trace, in this sidecar or any other with the same ratio,
// gets the same value and so the same decision.
func traceHash(id pcommon.TraceID) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for _, b := range id {
		h ^= uint64(b)
		h *= prime
	}
	return h >> 8
}

func (s *sampler) keyOf(span ptrace.Span, res pcommon.Map) string {
	if v, ok := span.Attributes().Get(s.cfg.KeyAttribute); ok {
		return v.AsString()
	}
	if v, ok := res.Get(s.cfg.KeyAttribute); ok {
		return v.AsString()
	}
	return ""
}

// isEntry says whether a span measures a request into the service: a server
// span or a root span (controller-runtime reconciles are roots).
func isEntry(span ptrace.Span) bool {
	return span.Kind() == ptrace.SpanKindServer || span.ParentSpanID().IsEmpty()
}

func (s *sampler) processTraces(_ context.Context, td ptrace.Traces) (ptrace.Traces, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(now)

	// Pass 1: update every key's window, so the batch that reveals a breach
	// is itself kept in full.
	touched := make(map[*keyState]struct{})
	rss := td.ResourceSpans()
	epoch := now.UnixNano() / s.slotDur
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		res := rs.Resource().Attributes()
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				sp := spans.At(k)
				ks := s.state(s.keyOf(sp, res), now)
				touched[ks] = struct{}{}
				if isEntry(sp) {
					s.observe(ks, sp, epoch)
				}
			}
		}
	}
	for ks := range touched {
		s.evaluate(ks, now, epoch)
	}

	// Pass 2: keep or drop each span by its trace id and its key's rate.
	rss.RemoveIf(func(rs ptrace.ResourceSpans) bool {
		res := rs.Resource().Attributes()
		rs.ScopeSpans().RemoveIf(func(ss ptrace.ScopeSpans) bool {
			ss.Spans().RemoveIf(func(sp ptrace.Span) bool {
				ks := s.state(s.keyOf(sp, res), now)
				if traceHash(sp.TraceID()) < ks.threshold {
					ks.nSampled++
					return false
				}
				ks.nDropped++
				return true
			})
			return ss.Spans().Len() == 0
		})
		return rs.ScopeSpans().Len() == 0
	})
	for ks := range touched {
		ks.sampled.Add(float64(ks.nSampled))
		ks.dropped.Add(float64(ks.nDropped))
		ks.nSampled, ks.nDropped = 0, 0
	}
	if td.ResourceSpans().Len() == 0 {
		return td, processorhelper.ErrSkipProcessingData
	}
	return td, nil
}

// state returns the key's state, creating it while under max_keys; past it
// the key shares the overflow state.
func (s *sampler) state(key string, now time.Time) *keyState {
	ks, ok := s.keys[key]
	if !ok {
		if len(s.keys) >= s.cfg.MaxKeys && key != OverflowKey {
			return s.state(OverflowKey, now)
		}
		ks = &keyState{
			threshold: s.baseline,
			rate:      s.rates.WithLabelValues(key),
			sampled:   s.decisions.WithLabelValues(key, DecisionSampled),
			dropped:   s.decisions.WithLabelValues(key, DecisionDropped),
		}
		ks.rate.Set(s.cfg.BaselineRatio)
		s.keys[key] = ks
	}
	ks.lastSeen = now
	return ks
}

func (s *sampler) observe(ks *keyState, sp ptrace.Span, epoch int64) {
	sl := &ks.ring[epoch%slots]
	if sl.epoch != epoch {
		*sl = slot{epoch: epoch}
	}
	sl.total++
	if s.cfg.P99Threshold > 0 {
		if d := time.Duration(sp.EndTimestamp() - sp.StartTimestamp()); sp.EndTimestamp() > sp.StartTimestamp() && d > s.cfg.P99Threshold {
			sl.slow++
		}
	}
	if sp.Status().Code() == ptrace.StatusCodeError {
		sl.errs++
	}
}

// breached says whether the window's p99 or error ratio is over threshold.
// p99 > T is computed exactly from counts: with n samples the nearest-rank
// p99 is the ceil(0.99·n)-th smallest, which exceeds T iff more than
// n − ceil(0.99·n) samples exceed T. No latency histogram is kept.
func (s *sampler) breached(ks *keyState, epoch int64) bool {
	var total, slow, errs uint64
	for _, sl := range ks.ring {
		if sl.epoch > epoch-slots && sl.epoch <= epoch {
			total += sl.total
			slow += sl.slow
			errs += sl.errs
		}
	}
	if total == 0 || total < uint64(s.cfg.MinSamples) {
		return false
	}
	if s.cfg.P99Threshold > 0 {
		rank := uint64(math.Ceil(0.99 * float64(total)))
		if slow > total-rank {
			return true
		}
	}
	return s.cfg.ErrorRatioThreshold > 0 && float64(errs)/float64(total) > s.cfg.ErrorRatioThreshold
}

// evaluate sets the key's rate: 100% from a breach until cooldown after the
// last evaluation that still saw one, baseline otherwise.
func (s *sampler) evaluate(ks *keyState, now time.Time, epoch int64) {
	if s.breached(ks, epoch) {
		ks.raisedUntil = now.Add(s.cfg.Cooldown)
	}
	want, ratio := s.baseline, s.cfg.BaselineRatio
	if now.Before(ks.raisedUntil) || (s.cfg.Cooldown == 0 && s.breached(ks, epoch)) {
		want, ratio = thresholdFor(1), 1
	}
	if want != ks.threshold {
		ks.threshold = want
		ks.rate.Set(ratio)
	}
}

// sweep forgets keys not seen for window+cooldown and not raised, once per
// window, so max_keys counts live keys and their series leave /metrics.
func (s *sampler) sweep(now time.Time) {
	if now.Sub(s.lastSweep) < s.cfg.Window {
		return
	}
	s.lastSweep = now
	stale := now.Add(-(s.cfg.Window + s.cfg.Cooldown))
	epoch := now.UnixNano() / s.slotDur
	for key, ks := range s.keys {
		if ks.lastSeen.Before(stale) && !now.Before(ks.raisedUntil) {
			delete(s.keys, key)
			s.rates.DeleteLabelValues(key)
			s.decisions.DeleteLabelValues(key, DecisionSampled)
			s.decisions.DeleteLabelValues(key, DecisionDropped)
			continue
		}
		// Keys without traffic are re-evaluated here, so their rate gauge
		// also falls back once the cool-down is over.
		s.evaluate(ks, now, epoch)
	}
}
