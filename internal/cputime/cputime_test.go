package cputime

import (
	"runtime"
	"testing"
	"time"
)

// Burning CPU on this goroutine for a while must show up, and never more
// than the wall time times the number of CPUs. Where the system cannot
// tell, Process says so with ok=false and 0.
func TestProcessCountsWork(t *testing.T) {
	c0, ok := Process()
	if supported := runtime.GOOS == "windows" || isUnix(); ok != supported {
		t.Fatalf("Process() ok=%v on %s, want %v", ok, runtime.GOOS, supported)
	}
	if !ok {
		if c0 != 0 {
			t.Errorf("Process() = %v with ok=false, want 0", c0)
		}
		return
	}
	start := time.Now()
	x := 1.0
	for time.Since(start) < 200*time.Millisecond {
		for i := 0; i < 1000; i++ {
			x = x*1.0000001 + 1e-9
		}
	}
	wall := time.Since(start)
	c1, _ := Process()
	used := c1 - c0
	if used < 20*time.Millisecond || used > wall*time.Duration(runtime.NumCPU())+50*time.Millisecond {
		t.Errorf("used %v CPU in %v wall on %d CPUs (x=%g)", used, wall, runtime.NumCPU(), x)
	}
}

func isUnix() bool {
	switch runtime.GOOS {
	case "aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "linux", "netbsd", "openbsd", "solaris":
		return true
	}
	return false
}
