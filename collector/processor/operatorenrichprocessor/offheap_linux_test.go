package operatorenrichprocessor

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"
	"unsafe"
)

// The span index keeps its ring and table outside the Go heap, and returns
// them to the system once it is garbage.
func TestSpanIndexOffHeap(t *testing.T) {
	const n = 50_000
	spans := make([]keyedSpan, n)
	for k := range spans {
		spans[k] = keyedSpan{key: fmt.Sprintf("reconcile-%d", k)}
		spans[k].trace[0], spans[k].span[0] = 1, 1
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc

	ix := newSpanIndex(n, time.Hour)
	ix.add(spans, time.Now())
	if ix.len() != n {
		t.Fatalf("index has %d entries, want %d", ix.len(), n)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	entry := int(unsafe.Sizeof(indexEntry{}))
	if grew := int64(ms.HeapAlloc) - int64(before); grew > int64(n*entry/4) {
		t.Errorf("Go heap grew by %d bytes for %d entries of %d bytes: the ring is on the heap", grew, n, entry)
	}
	if ix.mem.bytes < n*entry {
		t.Errorf("%d bytes mapped for %d entries of %d bytes", ix.mem.bytes, n, entry)
	}
	ring := uintptr(unsafe.Pointer(&ix.ring[0][0]))
	cells := uintptr(unsafe.Pointer(&ix.slots.cells[0]))
	if !mapped(t, ring) || !mapped(t, cells) {
		t.Fatalf("ring %#x or cells %#x not in /proc/self/maps", ring, cells)
	}
	runtime.KeepAlive(ix)

	ix = nil
	deadline := time.Now().Add(10 * time.Second)
	for mapped(t, ring) || mapped(t, cells) {
		if time.Now().After(deadline) {
			t.Fatal("the index's memory is still mapped 10 s after it became garbage")
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

// mapped reports whether addr lies in a mapping of this process.
func mapped(t *testing.T, addr uintptr) bool {
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
