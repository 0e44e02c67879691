package riskpatterns

import (
	"bytes"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// naive is the obvious reference: every needle searched separately.
func naive(ps []Pattern, s string) []int {
	ls := foldString(s)
	var out []int
	for i, p := range ps {
		for _, n := range p.Needles {
			if strings.Contains(ls, foldString(n)) {
				out = append(out, i)
				break
			}
		}
	}
	return out
}

func foldString(s string) string {
	b := []byte(s)
	for i := range b {
		b[i] = foldByte(b[i])
	}
	return string(b)
}

func ids(ps []Pattern, idx []int) []string {
	var out []string
	for _, i := range idx {
		out = append(out, ps[i].ID)
	}
	return out
}

func TestDefaultCatalogue(t *testing.T) {
	if len(Default) < 23 {
		t.Fatalf("Default has %d patterns, CONVENTIONS.md requires at least 23", len(Default))
	}
	if err := Validate(Default); err != nil {
		t.Fatal(err)
	}
}

func TestMatcherDefault(t *testing.T) {
	m, err := NewMatcher(Default)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		line string
		want []string
	}{
		{`{"level":"info","msg":"Reconciling"}`, nil},
		{`{"level":"error","msg":"Reconciler error","error":"Operation cannot be fulfilled on foos.example.com \"x\": the object has been modified; please apply your changes to the latest version and try again"}`,
			[]string{"object_modified_conflict", "reconciler_error"}},
		{`E0102 15:04:05.123456 1 reflector.go:150] failed to list *v1.Pod: Get "https://10.0.0.1:443/api": dial tcp 10.0.0.1:443: CONNECT: Connection Refused`,
			[]string{"connection_refused", "list_watch_failed"}},
		{`I0102 request.go:697] Waited for 1.0s due to client-side throttling, not priority and fairness`, []string{"client_throttling"}},
		{"panic: runtime error: invalid memory address or nil pointer dereference", []string{"panic", "nil_pointer"}},
		{"goroutine 1 [running]:", []string{"goroutine_dump"}},
		{`{"level":"FATAL","msg":"x"}`, []string{"fatal_error"}},
		{"x509: certificate signed by unknown authority", []string{"x509_error"}},
		{"OOMKilled", []string{"out_of_memory"}},
		{"", nil},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			got := ids(Default, m.MatchString(tt.line, nil))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("MatchString = %v, want %v", got, tt.want)
			}
			if gotB := ids(Default, m.Match([]byte(tt.line), nil)); !reflect.DeepEqual(gotB, got) {
				t.Errorf("Match = %v, MatchString = %v", gotB, got)
			}
		})
	}
}

// Every needle of the catalogue, embedded in noise and in mixed case, is found.
func TestMatcherEveryNeedle(t *testing.T) {
	m, err := NewMatcher(Default)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range Default {
		for _, n := range p.Needles {
			line := "xx " + strings.ToUpper(n) + " yy"
			got := m.MatchString(line, nil)
			found := false
			for _, g := range got {
				found = found || g == i
			}
			if !found {
				t.Errorf("needle %q of %s not found in %q (got %v)", n, p.ID, line, ids(Default, got))
			}
			if want := naive(Default, line); !reflect.DeepEqual(got, want) {
				t.Errorf("%q: matcher %v, naive %v", line, ids(Default, got), ids(Default, want))
			}
		}
	}
}

func TestMatcherOverlapsAndManyPatterns(t *testing.T) {
	// Needles that are suffixes/prefixes of each other exercise failure and
	// dictionary links; 300 patterns exercise the >256 bitset path.
	ps := []Pattern{
		{ID: "he", Severity: Info, Needles: []string{"he"}},
		{ID: "she", Severity: Info, Needles: []string{"she"}},
		{ID: "his", Severity: Info, Needles: []string{"his"}},
		{ID: "hers", Severity: Info, Needles: []string{"hers"}},
	}
	for i := 0; i < 300; i++ {
		ps = append(ps, Pattern{ID: fmt.Sprintf("p%d", i), Severity: Warning, Needles: []string{fmt.Sprintf("<%d>", i)}})
	}
	m, err := NewMatcher(ps)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"ushers", "SHE", "hishers", "<299> and <0> and <45>", "h", "<2999>"} {
		got := m.MatchString(line, nil)
		if want := naive(ps, line); !reflect.DeepEqual(got, want) {
			t.Errorf("%q: matcher %v, naive %v", line, ids(ps, got), ids(ps, want))
		}
	}
}

func TestValidate(t *testing.T) {
	ok := Pattern{ID: "ok_id", Severity: Warning, Needles: []string{"x"}}
	tests := []struct {
		name string
		ps   []Pattern
		want string // substring of the error; "" = valid
	}{
		{"valid", []Pattern{ok}, ""},
		{"upper", []Pattern{{ID: "Bad", Severity: Info, Needles: []string{"x"}}}, "lower_snake"},
		{"dash", []Pattern{{ID: "bad-id", Severity: Info, Needles: []string{"x"}}}, "lower_snake"},
		{"trailing", []Pattern{{ID: "bad_", Severity: Info, Needles: []string{"x"}}}, "lower_snake"},
		{"double", []Pattern{{ID: "a__b", Severity: Info, Needles: []string{"x"}}}, "lower_snake"},
		{"digit first", []Pattern{{ID: "1a", Severity: Info, Needles: []string{"x"}}}, "lower_snake"},
		{"duplicate", []Pattern{ok, ok}, "unique"},
		{"severity", []Pattern{{ID: "a", Severity: "high", Needles: []string{"x"}}}, "severity"},
		{"no needles", []Pattern{{ID: "a", Severity: Info}}, "at least one needle"},
		{"empty needle", []Pattern{{ID: "a", Severity: Info, Needles: []string{""}}}, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.ps)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if _, err := NewMatcher(tt.ps); err == nil {
				t.Fatal("NewMatcher accepted an invalid set")
			}
		})
	}
}

func TestMatchAppendsToDst(t *testing.T) {
	m, _ := NewMatcher(Default)
	dst := make([]int, 1, 8)
	dst[0] = -1
	got := m.MatchString("connection refused", dst)
	if len(got) != 2 || got[0] != -1 {
		t.Fatalf("got %v, want [-1 <connection_refused>]", got)
	}
	if allocs := testing.AllocsPerRun(100, func() { dst = m.MatchString("panic: connection refused", dst[:0]) }); allocs != 0 {
		t.Fatalf("MatchString allocates %v times with room in dst", allocs)
	}
}

func FuzzMatcher(f *testing.F) {
	m, err := NewMatcher(Default)
	if err != nil {
		f.Fatal(err)
	}
	f.Add("panic: Observed a panic", "he")
	f.Add("CONNECTION REFUSED i/o timeout", "i/o")
	f.Add("\xff\x00fatal error:", "\xff")
	f.Fuzz(func(t *testing.T, line, needle string) {
		got := m.MatchString(line, nil)
		if want := naive(Default, line); !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: matcher %v, naive %v", line, got, want)
		}
		if gb := m.Match([]byte(line), nil); !reflect.DeepEqual(gb, got) {
			t.Fatalf("Match %v != MatchString %v", gb, got)
		}
		// A user set built from the fuzzed needle as well.
		if needle == "" || len(needle) > 64 {
			return
		}
		ps := append(append([]Pattern(nil), Default...), Pattern{ID: "fuzz_user", Severity: Info, Needles: []string{needle, needle + needle}})
		um, err := NewMatcher(ps)
		if err != nil {
			t.Fatal(err)
		}
		line2 := line + strings.ToUpper(needle) + string(bytes.Repeat([]byte{'a'}, len(line)%3))
		for _, l := range []string{line, line2} {
			if g, w := um.MatchString(l, nil), naive(ps, l); !reflect.DeepEqual(g, w) {
				t.Fatalf("user set, %q: matcher %v, naive %v", l, g, w)
			}
		}
	})
}

func BenchmarkMatcher(b *testing.B) {
	m, _ := NewMatcher(Default)
	line := `{"level":"info","ts":"2024-05-01T10:00:00.123Z","logger":"controller.foo","msg":"Reconciling","controller":"foo","controllerGroup":"apps.example.com","controllerKind":"Foo","Foo":{"name":"bar","namespace":"default"},"namespace":"default","name":"bar","reconcileID":"6b3a0a5e-2d2c-4d7e-9c1e-9a3b1b1f2e11"}`
	dst := make([]int, 0, 8)
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	// CPU time of this thread: on a shared machine wall time mostly
	// measures the other processes.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c0 := threadCPU()
	for b.Loop() {
		dst = m.MatchString(line, dst[:0])
	}
	b.ReportMetric(float64(threadCPU()-c0)/float64(b.N), "cpu-ns/line")
}

func threadCPU() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return ts.Nano()
}

var sinkSum uint32

// BenchmarkBaselineByteLoop is a yardstick for BenchmarkMatcher: the
// cheapest possible pass over the same line (one table load per byte), so
// matcher figures from a loaded or slow machine can be read relative to it.
func BenchmarkBaselineByteLoop(b *testing.B) {
	line := `{"level":"info","ts":"2024-05-01T10:00:00.123Z","logger":"controller.foo","msg":"Reconciling","controller":"foo","controllerGroup":"apps.example.com","controllerKind":"Foo","Foo":{"name":"bar","namespace":"default"},"namespace":"default","name":"bar","reconcileID":"6b3a0a5e-2d2c-4d7e-9c1e-9a3b1b1f2e11"}`
	var tab [256]uint8
	for i := range tab {
		tab[i] = uint8(i * 7)
	}
	b.SetBytes(int64(len(line)))
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c0 := threadCPU()
	for b.Loop() {
		var s uint32
		for i := 0; i < len(line); i++ {
			s += uint32(tab[line[i]])
		}
		sinkSum = s
	}
	b.ReportMetric(float64(threadCPU()-c0)/float64(b.N), "cpu-ns/line")
}
