package operatorenrichprocessor

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
	"unsafe"
)

// The span index keeps its ring and table outside the Go heap, and returns
// them to the system once it is garbage.
func TestSpanIndexOffHeap(t *testing.T) {
	const n = 50_000
	ix, grew := fillIndex(n)
	if ix.len() != n {
		t.Fatalf("index has %d entries, want %d", ix.len(), n)
	}
	entry := int(unsafe.Sizeof(indexEntry{}))
	if grew > int64(n*entry/4) {
		t.Errorf("Go heap grew by %d bytes for %d entries of %d bytes: the ring is on the heap", grew, n, entry)
	}
	if ix.mem.bytes < n*entry {
		t.Errorf("%d bytes mapped for %d entries of %d bytes", ix.mem.bytes, n, entry)
	}
	ring := uintptr(unsafe.Pointer(&ix.ring[0][0]))
	cells := uintptr(unsafe.Pointer(&ix.slots.cells[0]))
	if !inMaps(t, ring) || !inMaps(t, cells) {
		t.Fatalf("ring %#x or cells %#x not in /proc/self/maps", ring, cells)
	}
	runtime.KeepAlive(ix)

	ix = nil
	deadline := time.Now().Add(10 * time.Second)
	for inMaps(t, ring) || inMaps(t, cells) {
		if time.Now().After(deadline) {
			t.Fatal("the index's memory is still mapped 10 s after it became garbage")
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

// inMaps reports whether addr lies in a mapping of this process.
func inMaps(t *testing.T, addr uintptr) bool {
	t.Helper()
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var lo, hi uintptr
		if _, err := fmt.Sscanf(sc.Text(), "%x-%x", &lo, &hi); err == nil && lo <= addr && addr < hi {
			return true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return false
}

// While a memory limit is set, what the index maps is taken off it (at most
// a quarter of it), and given back when the index is garbage.
func TestOffHeapLowersMemoryLimit(t *testing.T) {
	const set = 64 << 20
	old := debug.SetMemoryLimit(set)
	defer debug.SetMemoryLimit(old)
	limitNow := func() (limit, bytes int64) {
		mapped.mu.Lock()
		defer mapped.mu.Unlock()
		return debug.SetMemoryLimit(-1), mapped.bytes
	}
	settleMapped := func() {
		// Indexes of earlier tests may still be waiting for their cleanup.
		for range 5 {
			runtime.GC()
			time.Sleep(10 * time.Millisecond)
		}
	}
	settleMapped()
	_, base := limitNow()

	ix := newSpanIndex(100_000, time.Hour)
	spans := reconcileSpans(100_000)
	ix.add(spans, time.Now())
	limit, bytes := limitNow()
	if bytes-base < int64(ix.mem.bytes) || ix.mem.bytes < 100_000*int(unsafe.Sizeof(indexEntry{})) {
		t.Fatalf("index maps %d bytes, process %d (%d before)", ix.mem.bytes, bytes, base)
	}
	if want := set - min(bytes, set/4); limit != want {
		t.Errorf("memory limit %d with %d bytes mapped, want %d", limit, bytes, want)
	}
	runtime.KeepAlive(ix)

	ix = nil
	deadline := time.Now().Add(10 * time.Second)
	for {
		settleMapped()
		limit, bytes = limitNow()
		if bytes == base || time.Now().After(deadline) {
			break
		}
	}
	if want := set - min(bytes, set/4); bytes != base || limit != want {
		t.Errorf("after the index: limit %d with %d bytes mapped, want %d and %d", limit, bytes, want, base)
	}

	// Without a limit nothing is set.
	debug.SetMemoryLimit(math.MaxInt64)
	ix = newSpanIndex(1000, time.Hour)
	ix.add(spans[:1000], time.Now())
	if limit, _ := limitNow(); limit != math.MaxInt64 {
		t.Errorf("no limit set, but the index set %d", limit)
	}
	runtime.KeepAlive(ix)
}
