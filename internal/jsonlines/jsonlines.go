// Package jsonlines decodes files of JSON lines (the sidecar's OTLP JSON
// trace exports and NDJSON logs) on every core and hands the results back in
// file order. Decoding JSON is the slow part of reading them; the order keeps
// what is built from them independent of scheduling.
package jsonlines

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
)

// chunkLines lines go to a worker at a time: one channel send per line
// would cost more than decoding a short line.
const chunkLines = 256

type chunk[T any] struct {
	first, n int // line number of the first line, and how many lines
	lines    [][]byte
	vals     []T
	nos      []int
	err      error
	errNo    int
}

// Each decodes every non-blank line of r with decode, on GOMAXPROCS
// goroutines, and calls fn with the results in file order from the calling
// goroutine (fn need not lock). It stops at the first line decode rejects,
// returning "name:N: <decode's error>", or at a line longer than maxLine.
func Each[T any](r io.Reader, name string, maxLine int, decode func(line []byte) (T, error), fn func(no int, v T)) error {
	workers := runtime.GOMAXPROCS(0)
	jobs := make(chan *chunk[T], 2*workers)
	done := make(chan *chunk[T], 2*workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range jobs {
				for k, line := range c.lines {
					if len(bytes.TrimSpace(line)) == 0 {
						continue
					}
					v, err := decode(line)
					if err != nil {
						c.err, c.errNo = err, c.first+k
						break
					}
					c.vals, c.nos = append(c.vals, v), append(c.nos, c.first+k)
				}
				c.lines = nil
				done <- c
			}
		}()
	}
	var readErr error
	stop := make(chan struct{})
	go func() {
		defer close(jobs)
		br := bufio.NewReaderSize(r, 1<<20)
		c := &chunk[T]{first: 1}
		send := func(next int) bool {
			c.n = len(c.lines)
			select {
			case jobs <- c:
			case <-stop:
				return false
			}
			c = &chunk[T]{first: next}
			return true
		}
		for no := 1; ; no++ {
			line, err := readLine(br, maxLine)
			if len(line) > 0 || err == nil {
				// Blank lines too: line numbers have no gaps, so chunks
				// can be put back in order.
				c.lines = append(c.lines, line)
			}
			if len(c.lines) == chunkLines || (err != nil && len(c.lines) > 0) {
				if !send(no + 1) {
					return
				}
			}
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				readErr = fmt.Errorf("%s:%d: %v", name, no, err)
				return
			}
		}
	}()
	go func() { wg.Wait(); close(done) }()

	pending := map[int]*chunk[T]{}
	next := 1
	var firstErr error
	for c := range done {
		pending[c.first] = c
		for p, ok := pending[next]; ok; p, ok = pending[next] {
			delete(pending, next)
			next = p.first + p.n
			if firstErr != nil {
				continue
			}
			for i, v := range p.vals {
				fn(p.nos[i], v)
			}
			if p.err != nil {
				firstErr = fmt.Errorf("%s:%d: %w", name, p.errNo, p.err)
				close(stop)
			}
		}
	}
	if firstErr != nil {
		return firstErr
	}
	return readErr
}

// readLine returns one line without its newline, however long, up to max.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := r.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > max {
			return nil, fmt.Errorf("line longer than %d bytes", max)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return bytes.TrimRight(buf, "\r\n"), err
	}
}
