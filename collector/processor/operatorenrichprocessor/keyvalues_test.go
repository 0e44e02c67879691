package operatorenrichprocessor

import (
	"testing"
)

func TestScanKeyValues(t *testing.T) {
	tests := []struct {
		line                       string
		controller, reconcile, obj string
		lvl                        level
		trace                      string
	}{
		{`I0102 15:04:05.123456 1 controller.go:120] "Reconciling x=y" controller="foo" namespace="default" name="bar" reconcileID="r-1"`,
			"foo", "r-1", "default/bar", levelUnknown, ""},
		{`level=warn ts=2024-05-01T10:00:00Z msg="retry \"now\"" controller=foo reconcileID=r-2 trace_id=` + tid,
			"foo", "r-2", "/", levelWarn, tid},
		{`just text = not kv`, "", "", "/", levelUnknown, ""},
	}
	for _, tt := range tests {
		var f fields
		scanKeyValues(tt.line, &scanner{logKey: "reconcileID", f: &f})
		gotTrace := ""
		if f.traceRank != rankNone {
			gotTrace = traceHex(f.traceID, f.traceHex)
		}
		if f.controller != tt.controller || f.reconcileID != tt.reconcile || f.objectNamespace()+"/"+f.objectName() != tt.obj ||
			f.level != tt.lvl || gotTrace != tt.trace {
			t.Errorf("%q: %+v", tt.line, f)
		}
	}
}

func FuzzScanKeyValues(f *testing.F) {
	f.Add(`I0102 15:04:05.123456 1 c.go:1] "m" controller="foo" reconcileID="r"`)
	f.Add(`level=info msg="a=b" x==y "=" =`)
	f.Fuzz(func(t *testing.T, line string) {
		var fl fields
		scanKeyValues(line, &scanner{logKey: "reconcileID", f: &fl}) // must not panic
	})
}
