package jsonlines

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

func TestEachKeepsFileOrder(t *testing.T) {
	var b strings.Builder
	const n = 10*chunkLines + 17
	for i := 1; i <= n; i++ {
		if i%97 == 0 {
			b.WriteString("\n") // a blank line is skipped, not an error
			continue
		}
		fmt.Fprintf(&b, "%d\n", i)
	}
	b.WriteString(strconv.Itoa(n + 1)) // a last line without a newline still counts
	var got []int
	err := Each(strings.NewReader(b.String()), "f", 1<<10, func(l []byte) (int, error) { return strconv.Atoi(string(l)) },
		func(no, v int) {
			if no != v {
				t.Fatalf("line %d decoded as %d", no, v)
			}
			got = append(got, v)
		})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("out of order at %d: %d after %d", i, got[i], got[i-1])
		}
	}
	if want := n + 1 - n/97; len(got) != want {
		t.Errorf("%d values, want %d", len(got), want)
	}
}

func TestEachStopsAtTheFirstBadLine(t *testing.T) {
	var b strings.Builder
	for i := 1; i <= 5*chunkLines; i++ {
		if i == 3*chunkLines+5 || i == 4*chunkLines {
			b.WriteString("x\n")
			continue
		}
		fmt.Fprintf(&b, "%d\n", i)
	}
	last := 0
	err := Each(strings.NewReader(b.String()), "spans.jsonl", 1<<10, func(l []byte) (int, error) {
		v, err := strconv.Atoi(string(l))
		if err != nil {
			return 0, errors.New("not a number")
		}
		return v, nil
	}, func(no, _ int) { last = no })
	if want := fmt.Sprintf("spans.jsonl:%d: not a number", 3*chunkLines+5); err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
	if last != 3*chunkLines+4 {
		t.Errorf("fn saw lines up to %d; want every line before the bad one and none after", last)
	}
}

func TestEachLineTooLong(t *testing.T) {
	err := Each(strings.NewReader("1\n"+strings.Repeat("2", 100)+"\n3\n"), "f", 50, func(l []byte) (int, error) { return len(l), nil }, func(int, int) {})
	if err == nil || err.Error() != "f:2: line longer than 50 bytes" {
		t.Fatalf("error %v", err)
	}
}
