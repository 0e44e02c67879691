package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/simoperator"
	"github.com/opsight/opsight/internal/testservers"
)

// TestStrictLokiBadTimesAndSizes: the sidecar as injected pushes to the strict
// Loki stand-in (Loki's documented ingestion rules), which a user's Loki is.
// The operator writes what real Loki refused before: klog lines whose header
// is local time days ago (and has no year), JSON lines whose own ts is hours
// and days old, a 300 KB binary line, a line with a multi-byte character
// across every split point. This Loki's max_line_size (100KB) is below the
// sidecar's default (256KB), so pushes are half refused and the refused
// entries must be split again and re-sent. Nothing may be lost, every entry
// must carry the container runtime's time, and the sidecar's refused counts
// must equal what Loki discarded.
func TestStrictLokiBadTimesAndSizes(t *testing.T) {
	loki := testservers.StartStrictLoki(t, testservers.WithLokiLimits(func(l *testservers.LokiLimits) { l.MaxLineSize = 100 << 10 }))
	ip := injectSidecar(t, "sidecar.lokiURL="+loki.PushURL)
	w, err := simoperator.NewCRIWriter(filepath.Join(ip.podLogs, "manager"), 10<<20, 5)
	if err != nil {
		t.Fatal(err)
	}
	ip.sc.start()
	start := time.Now()

	rng := rand.New(rand.NewPCG(7, 11))
	binary := make([]byte, 300_000)
	for i := range binary {
		if binary[i] = byte(rng.UintN(256)); binary[i] == '\n' || binary[i] == '\r' {
			binary[i] = 0xff
		}
	}
	// 'é' is two bytes: after one ASCII byte every even offset, 102400 and
	// 262144 among them, falls inside a character.
	multibyte := "x" + strings.Repeat("é", 125_000)

	const n = 3000
	daysAgo := time.Now().Add(-75 * time.Hour).Local()
	for i := 0; i < n; i++ {
		var line string
		switch i % 5 {
		case 0: // klog text: local time, no year, days ago
			line = fmt.Sprintf(`E%s    1 reconciler.go:42] "Reconciler error" err="etcdserver: request timed out" controller="etcdcluster" seq=%d`,
				daysAgo.Format("0102 15:04:05.000000"), i)
		case 1: // JSON whose own ts is hours old
			line = fmt.Sprintf(`{"level":"info","ts":"%s","msg":"Reconciling","controller":"etcdcluster","seq":%d}`,
				time.Now().Add(-5*time.Hour).UTC().Format(time.RFC3339Nano), i)
		case 2: // JSON whose own ts is days old, as epoch seconds
			line = fmt.Sprintf(`{"level":"debug","ts":%d.5,"msg":"requeue","seq":%d}`, time.Now().Add(-80*time.Hour).Unix(), i)
		default:
			line = seqLine(i)
		}
		if err := w.WriteLine(time.Now(), "stderr", line); err != nil {
			t.Fatal(err)
		}
		switch i {
		case n / 3:
			if err := w.WriteLine(time.Now(), "stdout", string(binary)); err != nil {
				t.Fatal(err)
			}
		case 2 * n / 3:
			if err := w.WriteLine(time.Now(), "stdout", multibyte); err != nil {
				t.Fatal(err)
			}
		}
		if i%500 == 499 {
			time.Sleep(100 * time.Millisecond)
		}
	}

	seqRE := regexp.MustCompile(`"seq":(\d+)|seq=(\d+)`)
	var seen map[int]int
	var pieces []string
	restLen := 0
	collect := func() {
		seen, pieces, restLen = map[int]int{}, nil, 0
		for _, e := range loki.Entries() {
			if m := seqRE.FindStringSubmatch(e.Line); m != nil && len(e.Line) < 1000 {
				k, _ := strconv.Atoi(m[1] + m[2])
				seen[k]++
				continue
			}
			pieces = append(pieces, e.Line)
			restLen += len(e.Line)
		}
	}
	want := replaceInvalid(binary) + multibyte
	waitFor(90*time.Second, func() bool { collect(); return len(seen) >= n && restLen >= len(want) })
	end := time.Now()

	missing, dups, gaps := tally(seen, n)
	refused, _ := ip.sc.metricValue(conventions.MetricExportRefused, `reason="line_too_long"`)
	deadLettered, _ := ip.sc.metricValue(conventions.MetricExportDeadLetter, "")
	dropped, _ := ip.sc.metricValue(conventions.MetricExportDropped, "")
	discarded := loki.Discarded()
	t.Logf("%d lines: missing %d, duplicates %d; long lines %d bytes back of %d; Loki discarded %v, sidecar refused(line_too_long) %.0f, dead-lettered %.0f, dropped %.0f",
		n, missing, dups, restLen, len(want), discarded, refused, deadLettered, dropped)

	if missing > 0 || dups > 0 {
		t.Errorf("%d lines missing (%v), %d duplicated\n%s", missing, gaps, dups, ip.sc.logs())
	}
	// Re-sent pieces arrive after the rest of their push, and pieces of one
	// line may share a timestamp, so they are checked as a cover of the line:
	// each is a part of it (random binary: no piece matches by chance) and
	// together they have its length.
	if restLen != len(want) {
		t.Errorf("the binary and multi-byte lines came back as %d bytes, want %d (UTF-8 repaired per byte, nothing lost or repeated)", restLen, len(want))
	}
	for _, p := range pieces {
		if !strings.Contains(want, p) {
			t.Errorf("a piece of %d bytes is not part of the lines written (%.40q…)", len(p), p)
		}
	}
	for _, e := range loki.Entries() {
		if len(e.Line) > 100<<10 || !utf8.ValidString(e.Line) {
			t.Errorf("an entry of %d bytes (valid UTF-8: %v) was stored past the 100KB limit", len(e.Line), utf8.ValidString(e.Line))
		}
		// The container runtime's time, not the line's own (local, yearless or hours old).
		if e.Timestamp.Before(start.Add(-time.Minute)) || e.Timestamp.After(end.Add(time.Minute)) {
			t.Errorf("entry stored at %v, outside the run [%v, %v]: not the runtime's timestamp: %.80q", e.Timestamp, start, end, e.Line)
			break
		}
	}
	if discarded["line_too_long"] == 0 {
		t.Errorf("Loki discarded nothing as line_too_long: the test did not exercise a half-refused push")
	}
	if float64(discarded["line_too_long"]) != refused {
		t.Errorf("the sidecar counted %.0f refused (line_too_long), Loki discarded %d: refused counts must be exact", refused, discarded["line_too_long"])
	}
	for reason, k := range discarded {
		if reason != "line_too_long" {
			t.Errorf("Loki discarded %d entries as %s: the sidecar sent what Loki refuses", k, reason)
		}
	}
	if deadLettered != 0 || dropped != 0 {
		t.Errorf("dead-lettered %.0f, dropped %.0f: both must be 0 when every refusal can be fixed", deadLettered, dropped)
	}
}

// TestStrictLokiSimulatedOperator: the simulated operator (controller-runtime
// JSON, klog text, panics, goroutine dumps, spans to the sidecar) behind the
// sidecar as injected, pushing to a Loki with default limits. Loki must
// refuse nothing, every line must be stored exactly once with the
// conventions' stream labels and the pod's one service name, and the lines
// of a reconcile must carry its trace id (field or late join).
func TestStrictLokiSimulatedOperator(t *testing.T) {
	loki := testservers.StartStrictLoki(t)
	ip := injectSidecar(t, "sidecar.lokiURL="+loki.PushURL, "cluster=e2e")
	ip.sc.start()
	op, err := simoperator.New(simoperator.Config{
		LogRoot: filepath.Join(ip.hostRoot, "var/log/pods"), Namespace: injNamespace, Pod: injPod, PodUID: injUID,
		Revision: "v1.5.0", Cluster: "e2e", Service: ip.env[conventions.EnvServiceName], ReconcilesPerSecond: 100,
		MaxFiles: 1000, OTLPEndpoint: "http://" + ip.env[conventions.EnvOTLPHTTPAddr], Seed: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := op.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	written, err := podLines(st.LogDir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	for _, l := range written {
		want[l]++
	}
	waitFor(90*time.Second, func() bool { return len(loki.Entries()) >= len(written) })
	time.Sleep(time.Second) // late duplicates
	entries := loki.Entries()
	got := map[string]int{}
	keyed, joined := 0, 0
	for _, e := range entries {
		got[e.Line]++
		for k, v := range map[string]string{"service_name": "etcd-operator", "namespace": injNamespace, "pod": injPod,
			"container": "manager", "revision": "v1.5.0", "cluster": "e2e"} {
			if e.Labels[k] != v {
				t.Fatalf("stream %s: label %s = %q, want %q", e.Stream, k, e.Labels[k], v)
			}
		}
		if e.StructuredMetadata[conventions.LogReconcileID] != "" {
			keyed++
			if len(e.StructuredMetadata[conventions.LogTraceID]) == 32 {
				joined++
			}
		}
	}
	missing, dups := 0, 0
	for l, n := range want {
		if g := got[l]; g < n {
			missing += n - g
		} else if g > n {
			dups += g - n
		}
	}
	dropped, _ := ip.sc.metricValue(conventions.MetricExportDropped, "")
	t.Logf("operator wrote %d lines (%d rotations, %d spans); Loki stored %d: missing %d, duplicates %d; discarded %v; %d of %d keyed lines carry a trace id; dropped %.0f",
		len(written), st.Rotations, st.Spans, len(entries), missing, dups, loki.Discarded(), joined, keyed, dropped)
	if missing > 0 || dups > 0 || len(entries) != len(written) {
		t.Errorf("missing %d, duplicates %d, stored %d of %d lines\n%s", missing, dups, len(entries), len(written), ip.sc.logs())
	}
	if d := loki.Discarded(); len(d) > 0 {
		t.Errorf("Loki discarded %v: the sidecar sent what Loki refuses", d)
	}
	if keyed == 0 || float64(joined) < 0.98*float64(keyed) {
		t.Errorf("%d of %d lines with a reconcile id carry a trace id, want ≥ 98%%", joined, keyed)
	}
	if dropped != 0 {
		t.Errorf("dropped %.0f, want 0", dropped)
	}
}
