package operatorenrichprocessor

import (
	"hash/maphash"
	"runtime"
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
//
// Keys are kept as their 128-bit hash (keyHash), not as strings: at the
// default 100,000 entries a copy of every key (a 36-byte reconcile UUID
// takes a 48-byte allocation) and a string-keyed map cost about 5 MiB more
// live heap, which the garbage collector's heap goal doubles, and pointers
// it had to scan; ring and map now hold no pointers at all. Two keys whose
// first halves collide share a map slot (the later one wins, the earlier
// one's lines join no more: about n²/2⁶⁵ for n keys, 3·10⁻¹⁰ at 100,000);
// a wrong join would need both halves equal. The key → slot map is an
// open-addressing table of ring slots (slotTable), 4 bytes a cell at most
// 80% full, where a Go map of uint64 to int32 took about 24 bytes an entry:
// with both, an entry costs about 61 bytes (BenchmarkIndexMemory), 139 with
// string keys and a map of them. Ring and table live outside the Go heap
// (offHeap), freed when the index is garbage.
type spanIndex struct {
	size int
	ttl  time.Duration

	mu     sync.Mutex
	ring   [][]indexEntry // chunks of ringChunk entries, added up to size, then wraps
	count  int            // entries written so far, up to size
	next   int            // slot written next once the ring is full
	slots  slotTable      // keyHash.a → slot
	mem    *offHeap       // ring chunks and table cells
	notify chan struct{}  // closed (and replaced) when keyed spans arrive; nil if nobody waits

	lastKeyed atomic.Int64 // unix nanos of the last span carrying a key
	created   int64        // unix nanos; the start-up grace counts from here

	// controllers: when keyed spans carry the controller attribute, the
	// last time each controller was seen, so lines of a controller that is
	// not traced never hold a batch. Bounded: reset when it grows past
	// maxControllers (then rebuilt from the next spans).
	controllers map[string]*int64
}

const maxControllers = 1024

// ringChunk is the ring's unit of growth: a growing ring adds a chunk
// instead of copying itself into one twice as large (which at the default
// 100,000 entries held 3.5 and 5.4 MiB at once when it last grew).
const ringChunk = 4096

// entry is the ring's slot.
func (ix *spanIndex) entry(slot int) *indexEntry {
	return &ix.ring[slot/ringChunk][slot%ringChunk]
}

// ringCap is the ring's allocated capacity in entries (tests).
func (ix *spanIndex) ringCap() int {
	n := 0
	for _, c := range ix.ring {
		n += cap(c)
	}
	return n
}

type indexEntry struct {
	key    keyHash
	trace  pcommon.TraceID
	span   pcommon.SpanID
	parent pcommon.SpanID
	at     int64 // unix nanos when recorded; 0: an empty slot
}

// keyHash is a correlation key reduced to two 64-bit maphash values under
// independent seeds chosen at start-up.
type keyHash struct{ a, b uint64 }

var keySeedA, keySeedB = maphash.MakeSeed(), maphash.MakeSeed()

func hashKey(k string) keyHash {
	return keyHash{maphash.String(keySeedA, k), maphash.String(keySeedB, k)}
}

func newSpanIndex(size int, ttl time.Duration) *spanIndex {
	ix := &spanIndex{size: size, ttl: ttl, created: time.Now().UnixNano(), mem: new(offHeap)}
	ix.slots.keyOf = func(slot int32) uint64 { return ix.entry(int(slot)).key.a }
	ix.slots.mem = ix.mem
	runtime.AddCleanup(ix, (*offHeap).freeAll, ix.mem)
	return ix
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
	h := hashKey(s.key)
	if slot, ok := ix.slots.get(h.a); ok {
		e := ix.entry(int(slot))
		if e.key == h && at-e.at <= int64(ix.ttl) {
			// Spans end (and are exported) children first: when the parent of
			// the recorded span also carries the key, prefer it — it is the
			// reconcile span, the one the whole reconcile's lines belong to.
			if e.trace == s.trace && e.parent == s.span && !s.span.IsEmpty() {
				e.span, e.parent = s.span, s.parent
			}
			return
		}
		ix.slots.remove(h.a) // expired, or another key: record afresh
	}
	e := indexEntry{key: h, trace: s.trace, span: s.span, parent: s.parent, at: at}
	var slot int
	if ix.count < ix.size {
		if c := ix.count / ringChunk; c == len(ix.ring) {
			// The last chunk only as large as size leaves room for.
			ix.ring = append(ix.ring, offHeapSlice[indexEntry](ix.mem, min(ringChunk, ix.size-c*ringChunk)))
		}
		slot = ix.count
		ix.count++
	} else {
		slot = ix.next
		if old := ix.entry(slot); old.at != 0 {
			if cur, ok := ix.slots.get(old.key.a); ok && int(cur) == slot {
				ix.slots.remove(old.key.a)
			}
		}
		ix.next = (ix.next + 1) % ix.size
	}
	*ix.entry(slot) = e
	ix.slots.put(h.a, int32(slot))
}

// lookupLocked returns the live entry for key.
func (ix *spanIndex) lookupLocked(key string, now int64) (indexEntry, bool) {
	h := hashKey(key)
	slot, ok := ix.slots.get(h.a)
	if !ok {
		return indexEntry{}, false
	}
	e := *ix.entry(int(slot))
	if e.key != h {
		return indexEntry{}, false
	}
	if now-e.at > int64(ix.ttl) {
		ix.slots.remove(h.a)
		ix.entry(int(slot)).at = 0
		return indexEntry{}, false
	}
	return e, true
}

// slotTable maps a key hash to a ring slot: linear probing over cells that
// hold slot+1 (0: empty), the hash read back from the ring (keyOf), so a
// cell is 4 bytes. It doubles beyond 80% full and deletes by shifting the
// following cells back (no tombstones).
type slotTable struct {
	cells []int32
	n     int
	keyOf func(slot int32) uint64
	mem   *offHeap // where cells come from; nil: the heap
}

func (t *slotTable) find(h uint64) (i int, ok bool) {
	if len(t.cells) == 0 {
		return 0, false
	}
	mask := len(t.cells) - 1
	for i = int(h) & mask; ; i = (i + 1) & mask {
		c := t.cells[i]
		if c == 0 {
			return i, false
		}
		if t.keyOf(c-1) == h {
			return i, true
		}
	}
}

func (t *slotTable) get(h uint64) (int32, bool) {
	i, ok := t.find(h)
	if !ok {
		return 0, false
	}
	return t.cells[i] - 1, true
}

// put maps h to slot; the ring slot must already hold h.
func (t *slotTable) put(h uint64, slot int32) {
	if (t.n+1)*5 > len(t.cells)*4 {
		t.grow()
	}
	i, ok := t.find(h)
	if !ok {
		t.n++
	}
	t.cells[i] = slot + 1
}

func (t *slotTable) grow() {
	old := t.cells
	t.cells = offHeapSlice[int32](t.mem, max(2*len(old), 1024))
	defer freeSlice(t.mem, old)
	mask := len(t.cells) - 1
	for _, c := range old {
		if c == 0 {
			continue
		}
		i := int(t.keyOf(c-1)) & mask
		for t.cells[i] != 0 {
			i = (i + 1) & mask
		}
		t.cells[i] = c
	}
}

// remove deletes h, read while its ring slot still holds it.
func (t *slotTable) remove(h uint64) {
	i, ok := t.find(h)
	if !ok {
		return
	}
	mask := len(t.cells) - 1
	for j := (i + 1) & mask; t.cells[j] != 0; j = (j + 1) & mask {
		// The cell at j may move back to the hole at i unless its home
		// lies cyclically in (i, j].
		home := int(t.keyOf(t.cells[j]-1)) & mask
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			t.cells[i] = t.cells[j]
			i = j
		}
	}
	t.cells[i] = 0
	t.n--
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
	return ix.slots.n
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
