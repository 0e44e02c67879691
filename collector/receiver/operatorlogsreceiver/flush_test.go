package operatorlogsreceiver

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/consumer/consumertest"
)

// age makes every open file look idle for longer than any flush period.
func age(rc *operatorLogsReceiver) {
	for _, r := range rc.readers {
		r.lastData = time.Now().Add(-time.Hour)
	}
}

// A record that never ends is shipped after force_flush_period; what arrives
// later is its own record, and a kill -9 at any poll boundary changes
// nothing: the checkpoint holds the offset past the shipped bytes and the
// framing the rest needs.
func TestForceFlush(t *testing.T) {
	const ts = "2024-03-01T10:11:12.000000001Z"
	const tsNs = 1709287872000000001
	tests := []struct {
		name   string
		format string
		head   string // written first: a complete line, then the unended one
		rest   string // written after the flush
		want   []rec  // records, in order
	}{
		{"cri P without F", FormatAuto,
			ts + " stdout F {\"seq\":0}\n" + ts + " stderr P {\"msg\":\"par\n",
			ts + " stderr F tial\"}\n",
			[]rec{{body: `{"seq":0}`, ts: tsNs, stream: "stdout"}, {body: `{"msg":"par`, ts: tsNs, stream: "stderr"}, {body: `tial"}`, ts: tsNs, stream: "stderr"}}},
		{"cri last line without newline", FormatAuto,
			ts + " stdout F {\"seq\":0}\n" + ts + " stdout F {\"msg\":\"hal",
			"f\"}\n" + ts + " stdout F {\"seq\":2}\n",
			[]rec{{body: `{"seq":0}`, ts: tsNs, stream: "stdout"}, {body: `{"msg":"hal`, ts: tsNs, stream: "stdout"}, {body: `f"}`, ts: tsNs, stream: "stdout"}, {body: `{"seq":2}`, ts: tsNs, stream: "stdout"}}},
		{"json last line without newline", FormatJSON,
			"{\"seq\":0}\n{\"msg\":\"hal",
			"f\"}\n",
			[]rec{{body: `{"seq":0}`}, {body: `{"msg":"hal`}, {body: `f"}`}}},
		{"docker split piece without its end", FormatAuto,
			`{"log":"{\"seq\":0}\n","stream":"stdout","time":"` + ts + `"}` + "\n" + `{"log":"{\"msg\":\"par","stream":"stdout","time":"` + ts + `"}` + "\n",
			`{"log":"tial\"}\n","stream":"stdout","time":"` + ts + `"}` + "\n",
			[]rec{{body: `{"seq":0}`, ts: tsNs, stream: "stdout"}, {body: `{"msg":"par`, ts: tsNs, stream: "stdout"}, {body: `tial"}`, ts: tsNs, stream: "stdout"}}},
	}
	for _, tt := range tests {
		// kill: -1 none; otherwise a kill -9 after that step: 0 the
		// unended record read, 1 it was shipped, 2 the rest was read.
		for _, kill := range []int{-1, 0, 1, 2} {
			t.Run(fmt.Sprintf("%s/kill after step %d", tt.name, kill), func(t *testing.T) {
				dir := podLogDir(t)
				path := filepath.Join(dir, "0.log")
				glob := filepath.Join(dir, "*.log")
				client := newMemClient()
				sink := new(consumertest.LogsSink)
				edit := func(c *Config) { c.Format = Format(tt.format) }
				rc, _ := instance(t, glob, client, sink, edit)
				restart := func(step int) {
					if step == kill {
						rc, _ = instance(t, glob, client, sink, edit)
						pollOK(t, rc) // finds the file: its flush period starts now
					}
				}
				appendFile(t, path, tt.head)
				pollOK(t, rc)
				pollOK(t, rc)
				if got := records(sink.AllLogs()); len(got) != 1 {
					t.Fatalf("before the flush period: %+v, want only the complete line", got)
				}
				restart(0)
				age(rc) // step 1: the period has passed
				pollOK(t, rc)
				if got := records(sink.AllLogs()); len(got) != 2 || got[1] != tt.want[1] {
					t.Fatalf("after the flush period: %+v, want the unended record %+v", got, tt.want[1])
				}
				restart(1)
				appendFile(t, path, tt.rest) // step 2: the rest arrives
				pollOK(t, rc)
				restart(2)
				age(rc)
				pollOK(t, rc)
				got := records(sink.AllLogs())
				if len(got) != len(tt.want) {
					t.Fatalf("got %+v, want %+v", got, tt.want)
				}
				for i := range tt.want {
					if got[i] != tt.want[i] {
						t.Errorf("record %d: got %+v, want %+v", i, got[i], tt.want[i])
					}
				}
			})
		}
	}
}

// force_flush_period 0 holds an unended record until its end arrives.
func TestForceFlushDisabled(t *testing.T) {
	dir := podLogDir(t)
	path := filepath.Join(dir, "0.log")
	sink := new(consumertest.LogsSink)
	rc, _ := instance(t, filepath.Join(dir, "*.log"), newMemClient(), sink, func(c *Config) { c.ForceFlushPeriod = 0 })
	appendFile(t, path, "2024-03-01T10:11:12Z stdout P {\"msg\":\"par\n")
	pollOK(t, rc)
	age(rc)
	pollOK(t, rc)
	if n := sink.LogRecordCount(); n != 0 {
		t.Fatalf("%d records shipped with force_flush_period 0", n)
	}
	appendFile(t, path, "2024-03-01T10:11:13Z stdout F tial\"}\n")
	pollOK(t, rc)
	if got := records(sink.AllLogs()); len(got) != 1 || got[0].body != `{"msg":"partial"}` {
		t.Fatalf("got %+v, want the joined line", got)
	}
}

// A kill -9 after ConsumeLogs took the forced record and before its
// checkpoint was written: the next run reads the piece again from the last
// checkpoint and, the rest having arrived meanwhile, ships the whole line.
// Nothing is lost; the piece's bytes are shipped twice (the unavoidable
// duplicate of a batch delivered but not checkpointed, as for any batch).
func TestForceFlushKilledBeforeCheckpoint(t *testing.T) {
	dir := podLogDir(t)
	path := filepath.Join(dir, "0.log")
	glob := filepath.Join(dir, "*.log")
	client := newMemClient()
	sink := new(consumertest.LogsSink)
	rc, _ := instance(t, glob, client, sink, nil)
	appendFile(t, path, criLine(0)+"2024-03-01T10:11:12Z stdout P {\"msg\":\"par\n")
	pollOK(t, rc)
	client.dropSets = true
	age(rc)
	pollOK(t, rc) // the piece is delivered, its checkpoint is not written
	client.dropSets = false
	appendFile(t, path, "2024-03-01T10:11:13Z stdout F tial\"}\n")
	rc2, _ := instance(t, glob, client, sink, nil)
	pollOK(t, rc2)
	got := records(sink.AllLogs())
	want := []string{`{"level":"info","msg":"reconciled","seq":0}`, `{"msg":"par`, `{"msg":"partial"}`}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want bodies %q", got, want)
	}
	for i := range want {
		if got[i].body != want[i] {
			t.Errorf("record %d: %q, want %q", i, got[i].body, want[i])
		}
	}
}

// A line cut by the reader's buffer or its per-poll budget is not an unended
// line: with a backlog larger than one poll reads and the flush period long
// past (a poll blocked by backpressure), no record may be half a line.
func TestForceFlushNotAtReadBoundary(t *testing.T) {
	dir := podLogDir(t)
	path := filepath.Join(dir, "0.log")
	// Each batch takes longer than the flush period to be accepted, as
	// under backpressure: the bytes read before it look old afterwards.
	sink := &slowSink{delay: 5 * time.Millisecond}
	rc, _ := instance(t, filepath.Join(dir, "*.log"), newMemClient(), sink, func(c *Config) { c.ForceFlushPeriod = time.Millisecond })
	const n = 30000
	line := func(i int) string { return fmt.Sprintf(`{"seq":%d,"pad":"%s"}`, i, strings.Repeat("x", 700)) }
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString("2024-03-01T10:11:12.000000001Z stdout F " + line(i) + "\n")
	}
	appendFile(t, path, b.String()) // ~22 MB: several polls' worth
	for i := 0; i < 200 && len(records(sink.AllLogs())) < n; i++ {
		pollOK(t, rc)
	}
	got := records(sink.AllLogs())
	if len(got) != n {
		t.Fatalf("%d records, want %d", len(got), n)
	}
	for i, r := range got {
		if r.body != line(i) {
			t.Fatalf("record %d is %.60q…, want line %d whole: a line cut by a read was shipped in pieces", i, r.body, i)
		}
	}
}
