//go:build windows

package cputime

import (
	"time"

	"golang.org/x/sys/windows"
)

func process() (time.Duration, bool) {
	var creation, exit, kernel, user windows.Filetime
	if err := windows.GetProcessTimes(windows.CurrentProcess(), &creation, &exit, &kernel, &user); err != nil {
		return 0, false
	}
	return filetime(kernel) + filetime(user), true
}

// filetime reads a FILETIME that holds a duration in 100 ns units.
// (Filetime.Nanoseconds would subtract the 1601 epoch: it is for dates.)
func filetime(ft windows.Filetime) time.Duration {
	return time.Duration(int64(ft.HighDateTime)<<32|int64(ft.LowDateTime)) * 100
}
