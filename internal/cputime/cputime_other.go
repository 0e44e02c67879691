//go:build !unix && !windows

package cputime

import "time"

// process has no system call to ask on this platform.
func process() (time.Duration, bool) { return 0, false }
