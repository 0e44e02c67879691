package operatorenrichprocessor

import (
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/zap"

	"github.com/opsight/opsight/internal/conventions"
)

// attrOriginalServiceName keeps the service.name a span arrived with when it
// differed from the pod's (like opsight.original_version for revisions).
// Not in internal/conventions yet: see README.md "Revision and service name".
const attrOriginalServiceName = conventions.AttrOriginalServiceName

const (
	// mismatchWarnEvery: one warning per disagreeing name per interval, so a
	// misconfigured SDK does not flood the sidecar's log.
	mismatchWarnEvery = time.Minute
	// maxMismatchNames bounds the span_service label values (and the warning
	// map); further names count under mismatchOther.
	maxMismatchNames = 32
	mismatchOther    = "other"
)

// serviceCheck enforces one service name per pod on spans: a span resource
// whose service.name differs from the configured one is counted and
// warned about before stampResource replaces the name, and keeps the
// original under opsight.original_service_name. Without a configured name
// (no service_name, no $OPSIGHT_SERVICE_NAME) the SDK's name stands and
// nothing is checked.
type serviceCheck struct {
	want    string
	counter *prometheus.CounterVec
	logger  *zap.Logger
	now     func() time.Time

	mu       sync.Mutex
	counters map[string]prometheus.Counter // by span_service label value
	warned   map[string]time.Time          // last warning per label value
}

func newServiceCheck(want string, counter *prometheus.CounterVec, logger *zap.Logger, now func() time.Time) *serviceCheck {
	if want != "" {
		// The series exists at 0 from the start (span_service="" is no label
		// in Prometheus), so alert rules and dashboards see the metric before
		// the first mismatch.
		counter.WithLabelValues("")
	}
	return &serviceCheck{want: want, counter: counter, logger: logger, now: now,
		counters: map[string]prometheus.Counter{}, warned: map[string]time.Time{}}
}

// check looks at one span resource (before stampResource).
func (c *serviceCheck) check(rs ptrace.ResourceSpans) {
	if c.want == "" {
		return
	}
	attrs := rs.Resource().Attributes()
	v, ok := attrs.Get(conventions.AttrServiceName)
	if !ok {
		return
	}
	got := v.AsString()
	// unknown_service[:<process>] is the SDK's "no name configured", not a
	// disagreement: it is simply filled in.
	if got == "" || got == c.want || strings.HasPrefix(got, "unknown_service") {
		return
	}
	if _, ok := attrs.Get(attrOriginalServiceName); !ok {
		attrs.PutStr(attrOriginalServiceName, got)
	}
	spans := 0
	sss := rs.ScopeSpans()
	for i := 0; i < sss.Len(); i++ {
		spans += sss.At(i).Spans().Len()
	}
	c.record(got, spans)
}

func (c *serviceCheck) record(got string, spans int) {
	now := c.now()
	c.mu.Lock()
	label := got
	ctr, ok := c.counters[label]
	if !ok {
		if len(c.counters) >= maxMismatchNames {
			label = mismatchOther
			ctr, ok = c.counters[label]
		}
		if !ok {
			ctr = c.counter.WithLabelValues(label)
			c.counters[label] = ctr
		}
	}
	last, seen := c.warned[label]
	warn := !seen || now.Sub(last) >= mismatchWarnEvery
	if warn {
		c.warned[label] = now
	}
	c.mu.Unlock()

	if spans > 0 {
		ctr.Add(float64(spans))
	}
	if warn {
		c.logger.Warn("spans arrived with another service.name than the pod's service; renamed to the pod's (original in "+
			attrOriginalServiceName+"). Make the operator's OTEL_SERVICE_NAME equal to the pod's service (the webhook sets it when the container has none; annotation opsight.dev/service overrides)",
			zap.String("span_service", got), zap.String("service", c.want), zap.Int("spans", spans),
			zap.String("metric", conventions.MetricSpanServiceMismatch), zap.Duration("next_warning_after", mismatchWarnEvery))
	}
}
