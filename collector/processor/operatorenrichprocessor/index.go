package operatorenrichprocessor

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// spanIndex maps a correlation key (e.g. a reconcile id) to the span that
// carried it, for the late join of log lines. It is a ring of at most size
// entries in insertion order with a key → slot map: inserting into a full
// ring evicts the oldest entry, and entries older than ttl are ignored and
// dropped on lookup. Memory is bounded by size whatever the key churn.
type spanIndex struct {
	size int
	ttl  time.Duration

	mu     sync.Mutex
	ring   []indexEntry // grows up to size, then wraps
	next   int          // slot written next once the ring is full
	slots  map[string]int32
	notify chan struct{} // closed (and replaced) when keyed spans arrive; nil if nobody waits

	lastKeyed atomic.Int64 // unix nanos of the last span carrying a key
	created   int64        // unix nanos; the start-up grace counts from here

	// controllers: when keyed spans carry the controller attribute, the
	// last time each controller was seen, so lines of a controller that is
	// not traced never hold a batch. Bounded: reset when it grows past
	// maxControllers (then rebuilt from the next spans).
	controllers map[string]*int64
}

const maxControllers = 1024

type indexEntry struct {
	key    string
	trace  pcommon.TraceID
	span   pcommon.SpanID
	parent pcommon.SpanID
	at     int64 // unix nanos when recorded
}

func newSpanIndex(size int, ttl time.Duration) *spanIndex {
	return &spanIndex{size: size, ttl: ttl, slots: make(map[string]int32), created: time.Now().UnixNano()}
}

// keyedSpan is one span carrying a correlation key.
type keyedSpan struct {
	key        string
	controller string
	trace      pcommon.TraceID
	span       pcommon.SpanID
	parent     pcommon.SpanID
}

// add records spans and wakes the batches waiting for keys.
func (ix *spanIndex) add(spans []keyedSpan, now time.Time) {
	if len(spans) == 0 {
		return
	}
	at := now.UnixNano()
	ix.mu.Lock()
	for i := range spans {
		ix.addLocked(&spans[i], at)
		if c := spans[i].controller; c != "" {
			// Update through the pointer: assigning with c as key would make
			// the map keep c, which may point into the request buffer.
			if last, ok := ix.controllers[c]; ok {
				*last = at
				continue
			}
			if ix.controllers == nil || len(ix.controllers) >= maxControllers {
				ix.controllers = make(map[string]*int64)
			}
			v := at
			ix.controllers[strings.Clone(c)] = &v
		}
	}
	if ix.notify != nil {
		close(ix.notify)
		ix.notify = nil
	}
	ix.mu.Unlock()
	ix.lastKeyed.Store(at)
}

func (ix *spanIndex) addLocked(s *keyedSpan, at int64) {
	if slot, ok := ix.slots[s.key]; ok {
		e := &ix.ring[slot]
		if at-e.at <= int64(ix.ttl) {
			// Spans end (and are exported) children first: when the parent of
			// the recorded span also carries the key, prefer it — it is the
			// reconcile span, the one the whole reconcile's lines belong to.
			if e.trace == s.trace && e.parent == s.span && !s.span.IsEmpty() {
				e.span, e.parent = s.span, s.parent
			}
			return
		}
		delete(ix.slots, s.key) // expired: record afresh
	}
	// The key is kept beyond this batch: copy it so it does not pin the
	// request buffer it may point into.
	e := indexEntry{key: strings.Clone(s.key), trace: s.trace, span: s.span, parent: s.parent, at: at}
	var slot int
	if len(ix.ring) < ix.size {
		if len(ix.ring) == cap(ix.ring) {
			// Grow by hand so the ring never holds more than size entries of capacity.
			grown := make([]indexEntry, len(ix.ring), min(max(2*cap(ix.ring), 1024), ix.size))
			copy(grown, ix.ring)
			ix.ring = grown
		}
		ix.ring = append(ix.ring, e)
		slot = len(ix.ring) - 1
	} else {
		slot = ix.next
		if old := ix.ring[slot].key; old != "" {
			if cur, ok := ix.slots[old]; ok && int(cur) == slot {
				delete(ix.slots, old)
			}
		}
		ix.ring[slot] = e
		ix.next = (ix.next + 1) % ix.size
	}
	ix.slots[e.key] = int32(slot)
}

// lookupLocked returns the live entry for key.
func (ix *spanIndex) lookupLocked(key string, now int64) (indexEntry, bool) {
	slot, ok := ix.slots[key]
	if !ok {
		return indexEntry{}, false
	}
	e := ix.ring[slot]
	if now-e.at > int64(ix.ttl) {
		delete(ix.slots, key)
		ix.ring[slot].key = ""
		return indexEntry{}, false
	}
	return e, true
}

// resolve looks every unresolved pending line up, under one lock, and
// counts the unresolved ones worth waiting for. When some remain and wait
// is set, it also returns a channel closed on the next add, taken under the
// same lock so no add can slip in between.
func (ix *spanIndex) resolve(pending []pendingLine, now time.Time, wait bool) (remaining int, woken <-chan struct{}) {
	at := now.UnixNano()
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for i := range pending {
		p := &pending[i]
		if p.found {
			continue
		}
		if e, ok := ix.lookupLocked(p.key, at); ok {
			p.found, p.trace, p.span = true, e.trace, e.span
			continue
		}
		if p.wait {
			remaining++
		}
	}
	if remaining > 0 && wait {
		if ix.notify == nil {
			ix.notify = make(chan struct{})
		}
		woken = ix.notify
	}
	return remaining, woken
}

// len is the number of live keys (tests).
func (ix *spanIndex) len() int {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return len(ix.slots)
}

// active reports whether keyed spans were seen within window: only then is
// holding a batch worth its latency.
func (ix *spanIndex) active(now time.Time, window time.Duration) bool {
	last := ix.lastKeyed.Load()
	return last != 0 && now.UnixNano()-last <= int64(window)
}

// inGrace reports whether now is within grace of the index's creation: no
// span can have arrived yet then (the operator's first batch is still in its
// exporter), so a short hold lets its first reconciles join too.
func (ix *spanIndex) inGrace(now time.Time, grace time.Duration) bool {
	return now.UnixNano()-ix.created <= int64(grace)
}

// markWaitable sets wait on the pending lines worth holding for: all of
// them, unless keyed spans name their controllers — then only lines of a
// controller seen on a keyed span within window (an untraced controller's
// lines would only ever time out). Returns how many.
func (ix *spanIndex) markWaitable(pending []pendingLine, now time.Time, window time.Duration) int {
	at := now.UnixNano()
	ix.mu.Lock()
	defer ix.mu.Unlock()
	n := 0
	for i := range pending {
		p := &pending[i]
		p.wait = !p.found
		if p.wait && len(ix.controllers) > 0 && p.controller != "" {
			last, ok := ix.controllers[p.controller]
			p.wait = ok && at-*last <= int64(window)
		}
		if p.wait {
			n++
		}
	}
	return n
}
