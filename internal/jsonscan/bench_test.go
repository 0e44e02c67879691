package jsonscan

import (
	"encoding/json"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// benchLine is the processor's benchmark line (controller-runtime's zap
// JSON), with escaped quotes in msg as messages naming an object have
// (312 B): decoding msg is the one allocation.
const benchLine = `{"level":"info","ts":"2024-05-01T10:00:00.123Z","logger":"controller.foo","msg":"Reconciling \"bar\"","controller":"foo","controllerGroup":"apps.example.com","controllerKind":"Foo","Foo":{"name":"bar","namespace":"default"},"namespace":"default","name":"bar","reconcileID":"6b3a0a5e-2d2c-4d7e-9c1e-9a3b1b1f2e11"}`

type benchFields struct {
	Level       string `json:"level"`
	TS          string `json:"ts"`
	Msg         string `json:"msg"`
	Controller  string `json:"controller"`
	Namespace   string `json:"namespace"`
	Name        string `json:"name"`
	ReconcileID string `json:"reconcileID"`
}

// scanFields takes what the processor takes from a line, the way it does:
// top-level members, strings decoded only when they have escapes.
func scanFields(s string, f *benchFields) Err {
	i, empty, err := ObjectStart(s, SkipWS(s, 0))
	for more := !empty; err == OK && more; {
		var key string
		if key, _, i, err = Lenient.Key(s, i); err != OK {
			return err
		}
		if s[i] != '"' {
			if i, err = Lenient.SkipValue(s, i, 1); err != OK {
				return err
			}
		} else {
			raw, j, esc, e := Lenient.ScanString(s, i)
			if e != OK {
				return e
			}
			if esc {
				raw = Unescape(raw)
			}
			switch key {
			case "level":
				f.Level = raw
			case "ts":
				f.TS = raw
			case "msg":
				f.Msg = raw
			case "controller":
				f.Controller = raw
			case "namespace":
				f.Namespace = raw
			case "name":
				f.Name = raw
			case "reconcileID":
				f.ReconcileID = raw
			}
			i = j
		}
		i, more, err = MemberEnd(s, i)
	}
	return err
}

func TestScanFieldsMatchesEncodingJSON(t *testing.T) {
	var ours, theirs benchFields
	if err := scanFields(benchLine, &ours); err != OK {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(benchLine), &theirs); err != nil {
		t.Fatal(err)
	}
	if ours != theirs || ours.Msg != `Reconciling "bar"` {
		t.Fatalf("ours %+v, encoding/json %+v", ours, theirs)
	}
}

// BenchmarkLine: the same fields from the same 300 B line, by this package
// and by encoding/json (Unmarshal into a struct: its cheapest way to the
// same strings), plus Strict.Valid against json.Valid.
func BenchmarkLine(b *testing.B) {
	line := []byte(benchLine)
	b.Run("jsonscan", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(benchLine)))
		cpuLoop(b, func() {
			var f benchFields
			if scanFields(benchLine, &f) != OK {
				b.Fatal("not scanned")
			}
		})
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(benchLine)))
		cpuLoop(b, func() {
			var f benchFields
			if err := json.Unmarshal(line, &f); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("jsonscan-valid", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(benchLine)))
		cpuLoop(b, func() {
			if Strict.Valid(benchLine) != OK {
				b.Fatal("invalid")
			}
		})
	})
	b.Run("encoding-json-valid", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(benchLine)))
		cpuLoop(b, func() {
			if !json.Valid(line) {
				b.Fatal("invalid")
			}
		})
	})
}

// BenchmarkAppendString: writing the same line as a JSON string.
func BenchmarkAppendString(b *testing.B) {
	b.Run("jsonscan", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 1024)
		cpuLoop(b, func() { buf = AppendString(buf[:0], benchLine) })
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		cpuLoop(b, func() {
			if _, err := json.Marshal(benchLine); err != nil {
				b.Fatal(err)
			}
		})
	})
}

// cpuLoop runs f b.N times and reports this thread's CPU time per op
// (cpu-ns/op): the build machine is shared, and wall time mostly measures
// the other jobs on it.
func cpuLoop(b *testing.B, f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c0 := threadCPU()
	for b.Loop() {
		f()
	}
	b.ReportMetric(float64(threadCPU()-c0)/float64(b.N), "cpu-ns/op")
}

func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
