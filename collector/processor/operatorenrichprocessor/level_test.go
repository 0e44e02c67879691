package operatorenrichprocessor

import (
	"testing"
)

func TestScanLevels(t *testing.T) {
	tests := []struct {
		line string
		want level
	}{
		{`{"level":"debug"}`, levelDebug},
		{`{"level":"INFO"}`, levelInfo},
		{`{"level":"warn"}`, levelWarn},
		{`{"level":"warning"}`, levelWarn},
		{`{"level":"error"}`, levelError},
		{`{"level":"dpanic"}`, levelPanic},
		{`{"level":"panic"}`, levelPanic},
		{`{"level":"fatal"}`, levelFatal},
		{`{"level":"Level(-3)"}`, levelDebug},
		{`{"level":"Level(-2)"}`, levelDebug},
		{`{"level":-1}`, levelDebug},
		{`{"level":0}`, levelInfo},
		{`{"level":2}`, levelError},
		{`{"level":5}`, levelFatal},
		{`{"level":30}`, levelInfo},
		{`{"level":50}`, levelError},
		{`{"lvl":"eror"}`, levelError},
		{`{"severity":"WARNING"}`, levelWarn},
		{`{"level":"bogus"}`, levelUnknown},
		{`{"level":null}`, levelUnknown},
		{`{"ts":1,"caller":"x.go:1","msg":"m","v":0}`, levelInfo}, // klog JSON
		{`{"ts":1,"caller":"x.go:1","msg":"m","v":4}`, levelDebug},
		{`{"ts":1,"caller":"x.go:1","msg":"m","err":"boom"}`, levelError},
		{`{"msg":"no level"}`, levelUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			var f fields
			if r := scanLine(tt.line, "reconcileID", &f); r != "" {
				t.Fatalf("reason %q", r)
			}
			if got := f.resolvedLevel(); got != tt.want {
				t.Errorf("level %v, want %v", got, tt.want)
			}
		})
	}
}
