package lokiexporter

import (
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/selftelemetry"
	"github.com/opsight/opsight/internal/testservers"
)

// TestAgainstStrictLoki pushes to the strict Loki stand-in
// (internal/testservers) configured stricter than the exporter's limits:
// old entries, lines over Loki's max_line_size (one binary, invalid UTF-8)
// and a stream with a label value over Loki's limit. Every entry of the
// valid stream arrives exactly once (long lines as their pieces, in order);
// the refused counts equal the stand-in's loki_discarded_samples_total; the
// unfixable stream is in the dead-letter file; nothing is dropped.
func TestAgainstStrictLoki(t *testing.T) {
	loki := testservers.StartStrictLoki(t, testservers.WithLokiLimits(func(l *testservers.LokiLimits) {
		l.RejectOldSamplesMaxAge = 20 * time.Minute
		l.MaxLineSize = 1000
		l.MaxLabelValueLength = 20
	}))
	m := selftelemetry.New()
	dir := t.TempDir()
	push, id := syncExporter(t, loki.PushURL, m, dir, nil)

	rnd := rand.New(rand.NewSource(7))
	bin := make([]byte, 100*1024)
	rnd.Read(bin)
	long := strings.Repeat("€", 1500) // 4500 bytes

	ld := plog.NewLogs()
	now := time.Now()
	var want []string
	for p, pod := range []string{"pod-a", "pod-b-with-a-very-long-name"} {
		rl := ld.ResourceLogs().AppendEmpty()
		fullResource(rl.Resource(), pod)
		lrs := rl.ScopeLogs().AppendEmpty().LogRecords()
		for i := 0; i < 20; i++ {
			r := lrs.AppendEmpty()
			line := fmt.Sprintf("%s-%02d", pod, i)
			switch {
			case p == 0 && i == 5:
				line = long
			case p == 0 && i == 6:
				line = string(bin)
			}
			r.Body().SetStr(line)
			ts := now.Add(time.Duration(i-40) * time.Millisecond)
			if i%2 == 1 {
				ts = now.Add(-30*time.Minute + time.Duration(i)*time.Second)
			}
			r.SetTimestamp(pcommon.NewTimestampFromTime(ts))
			r.SetObservedTimestamp(pcommon.NewTimestampFromTime(now))
			if p == 0 {
				want = append(want, validUTF8(line))
			}
		}
	}
	if err := push(ld); err != nil {
		t.Fatalf("pushLogs: %v; want nil", err)
	}

	// What the stand-in stored for pod-a, in arrival order; pieces of one
	// line share its structured metadata and come 1 ns apart.
	var got []string
	for _, en := range loki.Entries() {
		if en.Labels[conventions.LabelPod] == "pod-a" {
			got = append(got, en.Line)
		}
	}
	all := strings.Join(got, "")
	for _, w := range want {
		if n := strings.Count(all, w); n != 1 {
			t.Errorf("line %.20q... found %d times in what Loki stored, want once", w, n)
		}
	}
	for _, g := range got {
		if len(g) > 1000 {
			t.Errorf("Loki stored a %d-byte line over its max_line_size", len(g))
		}
	}
	// Loki returns a stream ordered by timestamp: the pieces, read that
	// way, must still rebuild each long line.
	var stored []testservers.LokiEntry
	for _, en := range loki.Entries() {
		if en.Labels[conventions.LabelPod] == "pod-a" {
			stored = append(stored, en)
		}
	}
	sort.SliceStable(stored, func(i, j int) bool { return stored[i].Timestamp.Before(stored[j].Timestamp) })
	var byTime strings.Builder
	for i, en := range stored {
		if i > 0 && en.Timestamp.Equal(stored[i-1].Timestamp) {
			t.Errorf("two stored entries share timestamp %v: %.20q and %.20q", en.Timestamp, stored[i-1].Line, en.Line)
		}
		byTime.WriteString(en.Line)
	}
	for _, w := range want[5:7] {
		if !strings.Contains(byTime.String(), w) {
			t.Errorf("read by timestamp, the long line %.20q... is not rebuilt from its pieces", w)
		}
	}

	disc := loki.Discarded()
	for _, reason := range []string{reasonTooOld, reasonLineTooLong, reasonLabelValueTooLong} {
		if got, want := counter(t, m.ExportRefused, id, reason), float64(disc[reason]); got != want || want == 0 {
			t.Errorf("refused{%s} = %v, Loki discarded %v", reason, got, want)
		}
	}
	dead := readDeadLetters(t, dir)
	if len(dead) != 20 {
		t.Fatalf("%d dead letters, want pod-b's 20", len(dead))
	}
	for _, d := range dead {
		if d.Reason != reasonLabelValueTooLong || d.Stream[conventions.LabelPod] != "pod-b-with-a-very-long-name" {
			t.Errorf("dead letter %+v", d)
		}
	}
}
