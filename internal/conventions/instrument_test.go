package conventions

import (
	"os"
	"regexp"
	"testing"
)

// The operator-side helper lives in its own module and cannot import this
// package, so it retypes the shared names with a comment naming the
// constant; this test keeps the copies equal.
func TestInstrumentNamesMatch(t *testing.T) {
	src, err := os.ReadFile("../../instrument/instrument.go")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"AttrReconcileIDSpan": AttrReconcileIDSpan, "AttrControllerSpan": AttrControllerSpan,
		"LogObjectNS": LogObjectNS, "LogObjectName": LogObjectName,
		"LogTraceID": LogTraceID, "LogSpanID": LogSpanID,
	}
	re := regexp.MustCompile(`(?m)^\s*\w+\s*=\s*"([^"]*)"\s*// conventions\.(\w+)$`)
	seen := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		v, name := m[1], m[2]
		exp, ok := want[name]
		if !ok {
			t.Errorf("instrument names conventions.%s, which this test does not know", name)
			continue
		}
		if v != exp {
			t.Errorf("instrument copies conventions.%s as %q, want %q", name, v, exp)
		}
		seen[name] = true
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("instrument/instrument.go no longer carries conventions.%s", name)
		}
	}
}
