// Package cputime reads the CPU time the current process has used (user plus
// system, every thread, the garbage collector included). Benchmarks report it
// beside wall time because on a shared machine wall time also counts the
// time spent waiting for a core; CPU time does not.
//
// Unix systems read getrusage(RUSAGE_SELF), Windows GetProcessTimes. Other
// systems (js/wasm, wasip1, plan9) have no such call: Process returns 0 and
// ok=false there, and callers should leave the CPU figure out rather than
// print 0.
package cputime

import "time"

// Process returns the CPU time used by this process so far and whether the
// system could tell. Only differences between two calls mean anything.
func Process() (d time.Duration, ok bool) { return process() }
