package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ: /proc/<pid>/stat counts CPU time in these. It is
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// procStats are a child's figures read from /proc.
type procStats struct {
	cpu     time.Duration // user + system
	rss     int64         // VmRSS, bytes
	peakRSS int64         // VmHWM (high-water mark), bytes
	rssAnon int64         // RssAnon: heap, stacks (what GOMEMLIMIT governs)
	rssFile int64         // RssFile: mapped files (the binary, bbolt's mmap)
	written int64         // wchar of /proc/<pid>/io: bytes passed to write(2)/pwrite(2), network included; -1 if unreadable
}

func readProc(pid int) (procStats, error) {
	var ps procStats
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ps, err
	}
	// The command name (field 2) may hold spaces: fields resume after ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ps, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return ps, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	// f[0] is field 3 (state): utime is field 14, stime field 15.
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	ps.cpu = time.Duration(ut+st) * time.Second / clockTicks

	b, err = os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ps, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "VmRSS":
			dst = &ps.rss
		case "VmHWM":
			dst = &ps.peakRSS
		case "RssAnon":
			dst = &ps.rssAnon
		case "RssFile":
			dst = &ps.rssFile
		default:
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		*dst = kb << 10
	}
	ps.written = -1
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "wchar: "); ok {
				ps.written, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			}
		}
	}
	return ps, nil
}
