package operatorenrichprocessor

import (
	"math"
	"runtime/debug"
	"sync"
	"unsafe"
)

// offHeap hands out pointer-free arrays from memory mapped outside the Go
// heap, for the span index. Why: at steady load the index is the largest
// thing the sidecar keeps (about 6 MiB at the default 100,000 entries, a
// third of the live heap), and on the heap it also raises the garbage
// collector's goal by its own size (GOGC=100), which resident memory
// follows: outside the heap it costs its size once. It holds no pointers,
// so the collector never needs to see it. Where mapping is not available
// (or fails) the arrays come from the heap, as before.
//
// The Go runtime's memory limit (GOMEMLIMIT, which the chart sets from the
// container's limit) does not see this memory, so while a limit is set it
// is lowered by what is mapped (mappedMemory): the heap then gives way to
// the index instead of the container going over its limit.
//
// Not safe for concurrent use: the index uses it under its lock, and frees
// everything only once the index is unreachable (runtime.AddCleanup).
type offHeap struct {
	mapped map[unsafe.Pointer][]byte // start → each live mapping
	bytes  int                       // mapped in total (tests, benchmarks)
}

// offHeapSlice returns n zeroed Ts; T must hold no pointers.
func offHeapSlice[T any](m *offHeap, n int) []T {
	var zero T
	size := n * int(unsafe.Sizeof(zero))
	if m == nil || size == 0 {
		return make([]T, n)
	}
	b := mapAnon(size)
	if b == nil {
		return make([]T, n)
	}
	p := unsafe.Pointer(unsafe.SliceData(b))
	if m.mapped == nil {
		m.mapped = make(map[unsafe.Pointer][]byte)
	}
	m.mapped[p] = b
	m.bytes += size
	mapped.add(size)
	return unsafe.Slice((*T)(p), n)
}

// freeSlice returns s, which offHeapSlice gave, unless it came from the heap.
func freeSlice[T any](m *offHeap, s []T) {
	if m == nil || cap(s) == 0 {
		return
	}
	p := unsafe.Pointer(unsafe.SliceData(s))
	b, ok := m.mapped[p]
	if !ok {
		return
	}
	delete(m.mapped, p)
	m.bytes -= len(b)
	unmapAnon(b)
	mapped.add(-len(b))
}

// freeAll returns every live mapping.
func (m *offHeap) freeAll() {
	for _, b := range m.mapped {
		unmapAnon(b)
	}
	mapped.add(-m.bytes)
	m.mapped, m.bytes = nil, 0
}

// mapped is the process's off-heap memory and what it took off the Go
// runtime's memory limit.
var mapped mappedMemory

type mappedMemory struct {
	mu      sync.Mutex
	bytes   int64 // mapped now
	lowered int64 // taken off the memory limit now: bytes, at most a quarter of it
}

func (m *mappedMemory) add(delta int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.bytes += int64(delta)
	limit := debug.SetMemoryLimit(-1)
	if limit == math.MaxInt64 {
		return // no limit (and none lowered: a lowered one is below MaxInt64)
	}
	set := limit + m.lowered // the limit as set by GOMEMLIMIT or the program
	m.lowered = min(m.bytes, set/4)
	debug.SetMemoryLimit(set - m.lowered)
}
