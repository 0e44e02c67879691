package lokiexporter

import (
	"math/rand"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/grafana/loki/pkg/push"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/opsight/opsight/internal/conventions"
)

// fixedNow is the encoder's clock in these tests.
var fixedNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func clockEncoder(lim LimitsConfig) *encoder {
	e := newEncoder(nil, lim)
	e.now = func() time.Time { return fixedNow }
	return e
}

type rec struct {
	body     string
	ts, obs  time.Time // zero: unset
	traceID  string
	podValue string
}

func logsOf(recs ...rec) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	fullResource(rl.Resource(), "pod-a")
	if recs[0].podValue != "" {
		rl.Resource().Attributes().PutStr(conventions.AttrPod, recs[0].podValue)
	}
	lrs := rl.ScopeLogs().AppendEmpty().LogRecords()
	for _, r := range recs {
		lr := lrs.AppendEmpty()
		lr.Body().SetStr(r.body)
		if !r.ts.IsZero() {
			lr.SetTimestamp(pcommon.NewTimestampFromTime(r.ts))
		}
		if !r.obs.IsZero() {
			lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(r.obs))
		}
		if r.traceID != "" {
			lr.Attributes().PutStr(conventions.LogTraceID, r.traceID)
		}
	}
	return ld
}

// TestEncodeTimestamps: entries Loki would refuse for their time are
// restamped (observed time when acceptable, else now), the rest untouched.
func TestEncodeTimestamps(t *testing.T) {
	ago := func(d time.Duration) time.Time { return fixedNow.Add(-d) }
	tests := []struct {
		name      string
		recs      []rec
		newest    int64 // sent before for this stream
		want      []time.Time
		restamped int
	}{
		{
			name: "in range: unchanged",
			recs: []rec{{body: "a", ts: ago(time.Minute)}, {body: "b", ts: ago(2 * time.Minute)}},
			want: []time.Time{ago(time.Minute), ago(2 * time.Minute)},
		},
		{
			name: "klog-style day-old timestamp after current lines: too far behind, observed time used",
			recs: []rec{
				{body: "I1130 12:00:00.000000 1 controller.go:1] current", ts: ago(time.Second), obs: ago(time.Second)},
				{body: "I1130 12:00:00.000000 1 controller.go:1] a day old", ts: ago(24 * time.Hour), obs: ago(time.Second / 2)},
			},
			want:      []time.Time{ago(time.Second), ago(time.Second / 2)},
			restamped: 1,
		},
		{
			name:      "hours-old JSON ts behind what was sent before",
			recs:      []rec{{body: `{"ts":"3h ago","msg":"x"}`, ts: ago(3 * time.Hour), obs: ago(time.Second)}},
			newest:    ago(time.Minute).UnixNano(),
			want:      []time.Time{ago(time.Second)},
			restamped: 1,
		},
		{
			name:      "older than reject_old_samples_max_age, observed also: now",
			recs:      []rec{{body: "old", ts: ago(8 * 24 * time.Hour), obs: ago(9 * 24 * time.Hour)}},
			want:      []time.Time{fixedNow},
			restamped: 1,
		},
		{
			name:      "beyond creation_grace_period",
			recs:      []rec{{body: "future", ts: fixedNow.Add(time.Hour), obs: ago(time.Second)}},
			want:      []time.Time{ago(time.Second)},
			restamped: 1,
		},
		{
			name: "no timestamp: observed, then now",
			recs: []rec{{body: "o", obs: ago(time.Second)}, {body: "n"}},
			want: []time.Time{ago(time.Second), fixedNow},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := clockEncoder(defaultLimits())
			b := e.build(logsOf(tt.recs...), func(string) int64 { return tt.newest })
			got := b.streams[0].entries
			if len(got) != len(tt.want) {
				t.Fatalf("%d entries, want %d", len(got), len(tt.want))
			}
			for i, w := range tt.want {
				if !got[i].Timestamp.Equal(w) {
					t.Errorf("entry %d (%q): %v, want %v", i, got[i].Line, got[i].Timestamp, w)
				}
			}
			if b.adj.restamped != tt.restamped {
				t.Errorf("restamped %d, want %d", b.adj.restamped, tt.restamped)
			}
		})
	}
}

// TestEncodeLongLines: a 300 KB binary line (invalid bytes become U+FFFD,
// 3 bytes each) and a line cut by the receiver at the limit are split into
// pieces within max_line_size, valid UTF-8, in order, 1 ns apart, every
// byte kept.
func TestEncodeLongLines(t *testing.T) {
	rnd := rand.New(rand.NewSource(1))
	binary := make([]byte, 300*1024)
	rnd.Read(binary)
	cut := strings.Repeat("x", 262142) + "\xe2\x82"     // the receiver cut a 3-byte rune at 262144: repaired, 262148
	multi := strings.Repeat("a", 262143) + "€" + "tail" // € straddles byte 262144
	for _, tc := range []struct {
		name, line string
	}{{"300KB binary", string(binary)}, {"repair grows past the limit", cut}, {"multi-byte at the split point", multi}} {
		t.Run(tc.name, func(t *testing.T) {
			e := clockEncoder(defaultLimits())
			ts := fixedNow.Add(-time.Minute)
			b := e.build(logsOf(rec{body: tc.line, ts: ts, traceID: "4bf92f3577b34da6a3ce929d0e0e4736"}), nil)
			got := b.streams[0].entries
			want := validUTF8(tc.line)
			var joined strings.Builder
			for i, en := range got {
				if len(en.Line) > int(e.lim.MaxLineSize) || !utf8.ValidString(en.Line) {
					t.Errorf("piece %d: %d bytes, valid %v", i, len(en.Line), utf8.ValidString(en.Line))
				}
				if !en.Timestamp.Equal(ts.Add(time.Duration(i))) {
					t.Errorf("piece %d at %v, want %v", i, en.Timestamp, ts.Add(time.Duration(i)))
				}
				if len(en.StructuredMetadata) == 0 || en.StructuredMetadata[0].Value != "4bf92f3577b34da6a3ce929d0e0e4736" {
					t.Errorf("piece %d lost its metadata: %v", i, en.StructuredMetadata)
				}
				joined.WriteString(en.Line)
			}
			if joined.String() != want {
				t.Errorf("pieces do not concatenate to the repaired line (%d vs %d bytes)", joined.Len(), len(want))
			}
			if len(got) < 2 || b.adj.split != 1 {
				t.Errorf("%d pieces, split counted %d; want >= 2 and 1", len(got), b.adj.split)
			}
		})
	}
}

// TestEncodeLabelAndMetadataLimits: a label value over max_label_value_length
// is cut at a rune boundary; metadata over its size and count limits is cut.
func TestEncodeLabelAndMetadataLimits(t *testing.T) {
	lim := defaultLimits()
	lim.MaxLabelValueLength = 10
	lim.MaxStructuredMetadataSize = 64
	lim.MaxStructuredMetadataEntriesCount = 2
	e := clockEncoder(lim)
	ld := logsOf(rec{body: "x", ts: fixedNow, traceID: "4bf92f3577b34da6a3ce929d0e0e4736", podValue: "pod-ééééééé"})
	a := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0).Attributes()
	a.PutStr(conventions.LogSpanID, "00f067aa0ba902b7")
	a.PutStr(conventions.LogLevel, "info")
	b := e.build(ld, nil)
	s := b.streams[0]
	var pod string
	for _, p := range s.pairs {
		if p.Name == "pod" {
			pod = p.Value
		}
	}
	if pod != "pod-ééé" { // 4 + 3*2 = 10 bytes
		t.Errorf("pod label %q, want %q", pod, "pod-ééé")
	}
	if !strings.Contains(s.key, `pod="pod-ééé"`) {
		t.Errorf("key %s does not carry the cut value", s.key)
	}
	md := s.entries[0].StructuredMetadata
	if len(md) > 2 || metadataSize(md) > 64 {
		t.Errorf("metadata %v: %d entries, %d bytes", md, len(md), metadataSize(md))
	}
	if b.adj.labelTruncated != 1 || b.adj.metadataTruncated != 1 {
		t.Errorf("adjustments %+v", b.adj)
	}
}

// TestNewestMapAcrossBatches: the per-stream newest timestamp sent carries
// over to the next batch; the map stays bounded.
func TestNewestMapAcrossBatches(t *testing.T) {
	e := clockEncoder(defaultLimits())
	n := newNewestMap(4)
	b1 := e.build(logsOf(rec{body: "now", ts: fixedNow}), n.get)
	n.update(b1)
	b2 := e.build(logsOf(rec{body: "2h old", ts: fixedNow.Add(-2 * time.Hour), obs: fixedNow.Add(-time.Second)}), n.get)
	if got := b2.streams[0].entries[0].Timestamp; !got.Equal(fixedNow.Add(-time.Second)) || b2.adj.restamped != 1 {
		t.Errorf("second batch entry at %v (restamped %d); want the observed time", got, b2.adj.restamped)
	}
	for i := 0; i < 20; i++ {
		n.update(&batch{streams: []*stream{{key: string(rune('a' + i)), newest: 1}}})
		if len(n.m) > 4 {
			t.Fatalf("map grew to %d, bound 4", len(n.m))
		}
	}
}

func TestTruncateRunes(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{{"abc", 5, "abc"}, {"abc", 2, "ab"}, {"a€", 3, "a"}, {"a€", 4, "a€"}, {"€", 0, ""}, {"😀x", 3, ""}} {
		if got := truncateRunes(tc.s, tc.n); got != tc.want {
			t.Errorf("truncateRunes(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
	var md push.LabelsAdapter
	if _, ok := (&encoder{lim: defaultLimits()}).limitMetadata(md); !ok {
		t.Error("empty metadata reported over the limits")
	}
}
