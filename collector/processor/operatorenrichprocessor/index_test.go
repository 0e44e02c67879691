package operatorenrichprocessor

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

// slotTable against a Go map: random puts and removes of hashes that
// collide in their low bits (long probe runs that wrap around the table's
// end, removals in the middle of a run), every hash looked up after each
// step.
func TestSlotTableMatchesMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var keys []uint64 // slot -> hash, as the ring would hold it
	tab := slotTable{keyOf: func(s int32) uint64 { return keys[s] }}
	model := map[uint64]int32{}
	universe := make([]uint64, 3000)
	for i := range universe {
		// few distinct low bits, so many hashes share a home cell
		universe[i] = r.Uint64()<<12 | uint64(r.IntN(64))<<4 | 0xf
	}
	for step := 0; step < 40_000; step++ {
		h := universe[r.IntN(len(universe))]
		if _, in := model[h]; in && r.IntN(3) == 0 {
			tab.remove(h)
			delete(model, h)
		} else {
			keys = append(keys, h)
			s := int32(len(keys) - 1)
			tab.put(h, s)
			model[h] = s
		}
		if step%211 == 0 || step < 500 {
			for _, u := range universe {
				got, ok := tab.get(u)
				want, in := model[u]
				if ok != in || got != want {
					t.Fatalf("step %d: get(%x) = %d, %v; want %d, %v", step, u, got, ok, want, in)
				}
			}
			if tab.n != len(model) {
				t.Fatalf("step %d: n = %d, want %d", step, tab.n, len(model))
			}
		}
	}
	if len(tab.cells)*4 < tab.n*5 {
		t.Errorf("%d entries in %d cells: beyond 80%%", tab.n, len(tab.cells))
	}
}

// The index through its API: a full ring evicts the oldest, re-adding a key
// keeps its first span (or its parent), expiry drops the entry.
func TestSpanIndexRingAndExpiry(t *testing.T) {
	ix := newSpanIndex(100, time.Minute)
	now := time.Now()
	span := func(key string, id byte) keyedSpan {
		s := keyedSpan{key: key}
		s.trace[0], s.span[0] = id, id
		return s
	}
	for i := 0; i < 250; i++ {
		ix.add([]keyedSpan{span(string(rune('a'+i%26))+string(rune(i)), byte(i))}, now)
	}
	if ix.len() != 100 {
		t.Fatalf("len %d, want the ring's 100", ix.len())
	}
	at := now.UnixNano()
	ix.mu.Lock()
	_, oldIn := ix.lookupLocked(string(rune('a'+149%26))+string(rune(149)), at)
	e, newIn := ix.lookupLocked(string(rune('a'+150%26))+string(rune(150)), at)
	ix.mu.Unlock()
	if oldIn || !newIn || e.span[0] != 150 {
		t.Errorf("after 250 adds to a ring of 100: key 149 found %v, key 150 found %v (span %d)", oldIn, newIn, e.span[0])
	}
	// Expired on lookup: gone from the table.
	later := now.Add(2 * time.Minute).UnixNano()
	ix.mu.Lock()
	_, in := ix.lookupLocked(string(rune('a'+200%26))+string(rune(200)), later)
	ix.mu.Unlock()
	if in || ix.len() != 99 {
		t.Errorf("expired entry found %v, len %d", in, ix.len())
	}
}

// A ring of several chunks, the last one partial: capacity is exactly the
// size, and wrapping evicts the oldest across chunk bounds.
func TestSpanIndexChunkedRing(t *testing.T) {
	const size = 2*ringChunk + 1808
	ix := newSpanIndex(size, time.Hour)
	now := time.Now()
	key := func(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-000000000000", i) }
	for i := 0; i < 25_000; i += 100 {
		batch := make([]keyedSpan, 100)
		for k := range batch {
			batch[k] = keyedSpan{key: key(i + k)}
			batch[k].span[0], batch[k].span[1] = byte(i+k), byte((i+k)>>8)
		}
		ix.add(batch, now)
	}
	if ix.len() != size || ix.ringCap() != size {
		t.Fatalf("len %d, ring capacity %d, want %d", ix.len(), ix.ringCap(), size)
	}
	at := now.UnixNano()
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for i := 0; i < 25_000; i++ {
		e, ok := ix.lookupLocked(key(i), at)
		if want := i >= 25_000-size; ok != want || ok && (e.span[0] != byte(i) || e.span[1] != byte(i>>8)) {
			t.Fatalf("key %d: found %v (span %x), want found %v", i, ok, e.span[:2], want)
		}
	}
}

// reconcileSpans returns n keyed spans whose keys are 36-byte UUIDs, as
// controller-runtime's reconcile ids are.
func reconcileSpans(n int) []keyedSpan {
	spans := make([]keyedSpan, n)
	for k := range spans {
		spans[k] = keyedSpan{key: fmt.Sprintf("6b3a0a5e-2d2c-4d7e-9c1e-%012d", k)}
		spans[k].trace[0], spans[k].span[0] = 1, 1
	}
	return spans
}

// fillIndex returns a new index filled with n reconcile spans, and how much
// the Go heap grew for it.
func fillIndex(n int) (*spanIndex, int64) {
	spans := reconcileSpans(n)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	ix := newSpanIndex(n, time.Hour)
	for k := 0; k < n; k += 1000 {
		ix.add(spans[k:min(k+1000, n)], time.Now())
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	runtime.KeepAlive(spans)
	return ix, int64(ms.HeapAlloc) - int64(before)
}
