package operatorlogsreceiver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/consumer/consumertest"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/selftelemetry"
	"github.com/opsight/opsight/internal/simoperator"
)

// manual builds a receiver whose polls the test drives, so each rotation
// step happens at a known point between two polls.
func manual(t *testing.T, glob string) (*operatorLogsReceiver, *consumertest.LogsSink, *selftelemetry.Metrics) {
	t.Helper()
	sink := new(consumertest.LogsSink)
	m := selftelemetry.New()
	rc, err := newReceiver(testSettings(t), fastConfig(glob), sink, m)
	if err != nil {
		t.Fatal(err)
	}
	rc.ctx = context.Background()
	t.Cleanup(func() {
		for _, r := range rc.readers {
			r.f.Close()
		}
	})
	return rc, sink, m
}

func lines(from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		b.WriteString(criLine(i))
	}
	return b.String()
}

func pollOK(t *testing.T, rc *operatorLogsReceiver) {
	t.Helper()
	if err := rc.poll(); err != nil {
		t.Fatal(err)
	}
}

// settle polls until every file that went idle is let go (goneIdlePolls).
func settle(t *testing.T, rc *operatorLogsReceiver) {
	t.Helper()
	for i := 0; i < goneIdlePolls+2; i++ {
		pollOK(t, rc)
	}
}

func wantExactly(t *testing.T, sink *consumertest.LogsSink, n int) {
	t.Helper()
	c := counts(sink)
	for i := 0; i < n; i++ {
		if c[i] != 1 {
			t.Fatalf("line %d received %d times; all: %v", i, c[i], c)
		}
	}
	if len(c) != n {
		t.Fatalf("received %d distinct lines, want %d", len(c), n)
	}
}

// The lines written after our last read but before logrotate's copy are
// only in the copy once the file is truncated: they are read from there.
func TestCopyTruncateReadsTheCopy(t *testing.T) {
	dir := podLogDir(t)
	path := filepath.Join(dir, "0.log")
	rc, sink, m := manual(t, filepath.Join(dir, "*.log"))
	appendFile(t, path, lines(0, 10))
	pollOK(t, rc)
	appendFile(t, path, lines(10, 20))
	copyFile(t, path, path+".1")
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, lines(20, 30))
	pollOK(t, rc)
	wantExactly(t, sink, 30)
	if v := counterValue(m.TailRotations); v != 1 {
		t.Errorf("rotations = %v, want 1", v)
	}
	appendFile(t, path, lines(30, 35))
	pollOK(t, rc)
	wantExactly(t, sink, 35)
}

// Truncation followed by more writing than was read before: the size alone
// does not show it, the changed first bytes do.
func TestTruncateAndRewriteDetectedByFingerprint(t *testing.T) {
	dir := podLogDir(t)
	path := filepath.Join(dir, "0.log")
	rc, sink, _ := manual(t, filepath.Join(dir, "*.log"))
	appendFile(t, path, lines(0, 2))
	pollOK(t, rc)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, lines(2, 10))
	pollOK(t, rc)
	wantExactly(t, sink, 10)
}

// kubelet: rename N.log to N.log.<ts>, the runtime writes a little more to
// the renamed file before reopening, a new N.log appears, and later the
// rotated file is gzipped and deleted.
func TestKubeletRenameDrainsRotatedFile(t *testing.T) {
	dir := podLogDir(t)
	path := filepath.Join(dir, "0.log")
	rotated := path + ".20240301-101112"
	rc, sink, m := manual(t, filepath.Join(dir, "*.log"))
	appendFile(t, path, lines(0, 10))
	pollOK(t, rc)
	appendFile(t, path, lines(10, 20))
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	appendFile(t, rotated, lines(20, 25)) // written before the runtime reopened
	appendFile(t, path, lines(25, 30))
	pollOK(t, rc)
	wantExactly(t, sink, 30)
	appendFile(t, rotated, lines(30, 32)) // late write to the renamed file, still caught
	pollOK(t, rc)
	wantExactly(t, sink, 32)
	gzipAndDelete(t, rotated)
	for i := 0; i < goneIdlePolls+1; i++ {
		pollOK(t, rc)
	}
	if len(rc.readers) != 1 || rc.readers[0].path != path {
		t.Fatalf("want only %s open, have %d readers", path, len(rc.readers))
	}
	appendFile(t, path, lines(32, 40))
	pollOK(t, rc)
	wantExactly(t, sink, 40)
	if v := counterValue(m.TailRotations); v != 1 {
		t.Errorf("rotations = %v, want 1", v)
	}
}

// A drained rotated file, kept open until the runtime deletes it, gives its
// read buffer back (six such readers held ~2 MiB at 10k lines/s); a late
// write to it is still read, and a line without its newline yet keeps the
// buffer that holds it.
func TestRotatedFileReleasesBuffer(t *testing.T) {
	dir := podLogDir(t)
	path := filepath.Join(dir, "0.log")
	rotated := path + ".20240301-101112"
	rc, sink, _ := manual(t, filepath.Join(dir, "*.log*")) // the webhook's include: rotations too
	appendFile(t, path, lines(0, 10))
	pollOK(t, rc)
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, lines(10, 20))
	settle(t, rc)
	wantExactly(t, sink, 20)
	bufs := func() (live, old []byte) {
		t.Helper()
		if len(rc.readers) != 2 {
			t.Fatalf("%d readers, want the live and the rotated file", len(rc.readers))
		}
		for _, r := range rc.readers {
			if r.path == path {
				live = r.buf
			} else {
				old = r.buf
			}
		}
		return live, old
	}
	if live, old := bufs(); live == nil || old != nil {
		t.Fatalf("live buffer %d bytes, rotated %d: want only the rotated one released", len(live), len(old))
	}

	appendFile(t, rotated, lines(20, 22)) // late write to the renamed file
	half := criLine(22)
	appendFile(t, rotated, half[:len(half)/2])
	settle(t, rc)
	wantExactly(t, sink, 22)
	if _, old := bufs(); old == nil {
		t.Fatal("the rotated file's buffer was released with half a line in it")
	}
	appendFile(t, rotated, half[len(half)/2:])
	settle(t, rc)
	wantExactly(t, sink, 23)
	if _, old := bufs(); old != nil {
		t.Fatalf("rotated buffer (%d bytes) kept once drained again", len(old))
	}
}

// A glob that also matches rotated names follows the file by inode instead
// of reading it twice.
func TestRotatedNameMatchedByGlobIsNotReread(t *testing.T) {
	dir := podLogDir(t)
	path := filepath.Join(dir, "0.log")
	rc, sink, _ := manual(t, filepath.Join(dir, "0.log*"))
	appendFile(t, path, lines(0, 10))
	pollOK(t, rc)
	if err := os.Rename(path, path+".20240301-101112"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, lines(10, 20))
	pollOK(t, rc)
	pollOK(t, rc)
	wantExactly(t, sink, 20)
}

// A physical line longer than the read buffer (a runtime that does not split
// like kubelet's, or a plain file) is read in pieces that still join to the
// line, framing removed once.
func TestPhysicalLineLongerThanBuffer(t *testing.T) {
	for _, tc := range []struct{ name, prefix string }{
		{"json", ""},
		{"cri", "2024-03-01T10:11:12Z stderr F "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := podLogDir(t)
			path := filepath.Join(dir, "0.log")
			rc, sink, _ := manual(t, filepath.Join(dir, "*.log"))
			rc.cfg.MaxLineSize = 64 << 10
			msg := strings.Repeat("0123456789abcdef", (3<<20)/16) // 3 MiB, beyond the 1 MiB buffer
			appendFile(t, path, tc.prefix+msg+"\n"+tc.prefix+"after\n")
			for i := 0; i < 3; i++ {
				pollOK(t, rc)
			}
			got := records(sink.AllLogs())
			var joined strings.Builder
			for _, r := range got[:len(got)-1] {
				if !r.truncated || len(r.body) > rc.cfg.MaxLineSize || r.parseErr != "" {
					t.Fatalf("piece: truncated=%v len=%d parseErr=%q", r.truncated, len(r.body), r.parseErr)
				}
				joined.WriteString(r.body)
			}
			if joined.String() != msg {
				t.Errorf("pieces join to %d bytes, want the %d-byte line", joined.Len(), len(msg))
			}
			if last := got[len(got)-1]; last.body != "after" || last.truncated {
				t.Errorf("line after the long one: %+v", last)
			}
		})
	}
}

// Two include paths to one file (kubelet's /var/log/containers symlinks):
// it is read once.
func TestSymlinkAliasReadOnce(t *testing.T) {
	dir := podLogDir(t)
	path := filepath.Join(dir, "0.log")
	appendFile(t, path, lines(0, 10))
	links := t.TempDir()
	if err := os.Symlink(path, filepath.Join(links, "manager.log")); err != nil {
		t.Fatal(err)
	}
	rc, sink, _ := manual(t, filepath.Join(dir, "*.log"))
	rc.cfg.Include = append(rc.cfg.Include, filepath.Join(links, "*.log"))
	pollOK(t, rc)
	appendFile(t, path, lines(10, 20))
	pollOK(t, rc)
	pollOK(t, rc)
	wantExactly(t, sink, 20)
	if len(rc.readers) != 1 {
		t.Errorf("%d readers for one file", len(rc.readers))
	}
}

// A backlog grows the read buffer; once the reader has caught up the large
// buffer is given back, and the lines are the same either way.
func TestReadBufferGrowsForBacklogOnly(t *testing.T) {
	dir := podLogDir(t)
	path := filepath.Join(dir, "0.log")
	appendFile(t, path, lines(0, 30000)) // ~2.3 MiB: several large reads
	rc, sink, _ := manual(t, filepath.Join(dir, "*.log"))
	pollOK(t, rc)
	if got := len(rc.readers[0].buf); got != rc.largeBuf() {
		t.Errorf("buffer after a backlog poll = %d, want the large %d", got, rc.largeBuf())
	}
	pollOK(t, rc) // nothing new: caught up
	if got := len(rc.readers[0].buf); got != rc.smallBuf() {
		t.Errorf("buffer once caught up = %d, want the small %d", got, rc.smallBuf())
	}
	appendFile(t, path, lines(30000, 30010))
	pollOK(t, rc)
	if got := len(rc.readers[0].buf); got != rc.smallBuf() {
		t.Errorf("buffer after a small read = %d, want the small %d", got, rc.smallBuf())
	}
	// A steady writer's poll: more than the small buffer holds, less than
	// a large one (10,000 lines/s of 400 B is 800 KiB per 200 ms poll):
	// read in small pieces, the buffer stays small.
	n := 30010 + (rc.smallBuf()+rc.largeBuf())/2/len(criLine(30010))
	appendFile(t, path, lines(30010, n))
	pollOK(t, rc)
	if got := len(rc.readers[0].buf); got != rc.smallBuf() {
		t.Errorf("buffer after a poll of %d lines = %d, want the small %d", n-30010, got, rc.smallBuf())
	}
	wantExactly(t, sink, n)
}

// opsight_tail_rotations_total counts each rotation once, on every path a
// rotation can take, with the webhook's include (every file of the
// container's directory, rotations and .gz included) and kubelet's naming.
func TestRotationCounter(t *testing.T) {
	type env struct {
		dir, path string
		client    *memClient
		sink      *consumertest.LogsSink
		glob      string
	}
	start := func(t *testing.T, e *env) (*operatorLogsReceiver, *selftelemetry.Metrics) {
		return instance(t, e.glob, e.client, e.sink, nil)
	}
	rename := func(t *testing.T, from, to string) {
		t.Helper()
		if err := os.Rename(from, to); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		// run drives the files and the receiver; it returns the metrics of
		// the last instance, the rotations it must have counted and how many
		// lines (0..n-1) must have arrived exactly once.
		run func(t *testing.T, e *env) (m *selftelemetry.Metrics, want, n int)
		// With include *.log a file rotated before a poll saw it is never
		// seen at all (nor read): that is why the webhook includes *.log*.
		webhookGlobOnly bool
	}{
		{"kubelet rename, older ones gzipped and pruned", func(t *testing.T, e *env) (*selftelemetry.Metrics, int, int) {
			w, err := simoperator.NewCRIWriter(e.dir, 8<<10, 3)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			rc, m := start(t, e)
			n := 0
			for ; w.Rotations() < 7; n++ {
				if err := w.WriteLine(time.Unix(1764584100, int64(n)), "stdout", fmt.Sprintf(`{"msg":"reconciled","seq":%d}`, n)); err != nil {
					t.Fatal(err)
				}
				if n%10 == 9 {
					pollOK(t, rc)
				}
			}
			settle(t, rc)
			if gz, _ := filepath.Glob(filepath.Join(e.dir, "0.log.*.gz")); len(gz) == 0 {
				t.Fatal("the writer compressed no rotation")
			}
			return m, 7, n
		}, false},
		{"three rotations between two polls", func(t *testing.T, e *env) (*selftelemetry.Metrics, int, int) {
			w, err := simoperator.NewCRIWriter(e.dir, 8<<10, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			rc, m := start(t, e)
			n := 0
			for ; w.Rotations() < 3; n++ {
				if err := w.WriteLine(time.Unix(1764584100, int64(n)), "stdout", fmt.Sprintf(`{"msg":"reconciled","seq":%d}`, n)); err != nil {
					t.Fatal(err)
				}
				if n == 5 {
					pollOK(t, rc)
				}
			}
			settle(t, rc)
			return m, 3, n
		}, true},
		{"rotated while stopped", func(t *testing.T, e *env) (*selftelemetry.Metrics, int, int) {
			rc, _ := start(t, e)
			appendFile(t, e.path, lines(0, 10))
			pollOK(t, rc)
			// kill -9, then kubelet rotates.
			appendFile(t, e.path, lines(10, 20))
			rename(t, e.path, e.path+".20261201-101500")
			appendFile(t, e.path, lines(20, 30))
			rc2, m := start(t, e)
			settle(t, rc2)
			return m, 1, 30
		}, false},
		{"rotated and compressed while stopped", func(t *testing.T, e *env) (*selftelemetry.Metrics, int, int) {
			rc, _ := start(t, e)
			appendFile(t, e.path, lines(0, 10))
			pollOK(t, rc)
			appendFile(t, e.path, lines(10, 20))
			rename(t, e.path, e.path+".20261201-101500")
			compress(t, e.path+".20261201-101500")
			appendFile(t, e.path, lines(20, 30))
			rc2, m := start(t, e)
			settle(t, rc2)
			return m, 1, 30
		}, false},
		{"killed while the renamed file drains: counted by the first run only", func(t *testing.T, e *env) (*selftelemetry.Metrics, int, int) {
			rc, m1 := start(t, e)
			appendFile(t, e.path, lines(0, 10))
			pollOK(t, rc)
			rename(t, e.path, e.path+".20261201-101500")
			appendFile(t, e.path, lines(10, 20))
			pollOK(t, rc)
			if got := counterValue(m1.TailRotations); got != 1 {
				t.Errorf("first run counted %v rotations, want 1", got)
			}
			rc2, m := start(t, e)
			settle(t, rc2)
			return m, 0, 20
		}, false},
		{"copytruncate", func(t *testing.T, e *env) (*selftelemetry.Metrics, int, int) {
			rc, m := start(t, e)
			appendFile(t, e.path, lines(0, 10))
			pollOK(t, rc)
			appendFile(t, e.path, lines(10, 20))
			copyFile(t, e.path, e.path+".1")
			if err := os.Truncate(e.path, 0); err != nil {
				t.Fatal(err)
			}
			appendFile(t, e.path, lines(20, 30))
			pollOK(t, rc)
			pollOK(t, rc)
			return m, 1, 30
		}, false},
		{"truncated and rewritten", func(t *testing.T, e *env) (*selftelemetry.Metrics, int, int) {
			rc, m := start(t, e)
			appendFile(t, e.path, lines(0, 2))
			pollOK(t, rc)
			if err := os.Truncate(e.path, 0); err != nil {
				t.Fatal(err)
			}
			appendFile(t, e.path, lines(2, 10))
			pollOK(t, rc)
			return m, 1, 10
		}, false},
		{"deleted and a new file under the same name", func(t *testing.T, e *env) (*selftelemetry.Metrics, int, int) {
			rc, m := start(t, e)
			appendFile(t, e.path, lines(0, 10))
			pollOK(t, rc)
			if err := os.Remove(e.path); err != nil {
				t.Fatal(err)
			}
			appendFile(t, e.path, lines(10, 20))
			pollOK(t, rc)
			pollOK(t, rc)
			return m, 1, 20
		}, false},
		{"deleted, the new file a poll later", func(t *testing.T, e *env) (*selftelemetry.Metrics, int, int) {
			rc, m := start(t, e)
			appendFile(t, e.path, lines(0, 10))
			pollOK(t, rc)
			rename(t, e.path, e.path+".20261201-101500")
			compress(t, e.path+".20261201-101500")
			pollOK(t, rc)
			appendFile(t, e.path, lines(10, 20))
			settle(t, rc)
			return m, 1, 20
		}, false},
	}
	for _, tt := range tests {
		for _, glob := range []string{"*.log*", "*.log"} {
			if tt.webhookGlobOnly && glob != "*.log*" {
				continue
			}
			t.Run(tt.name+"/"+glob, func(t *testing.T) {
				root := filepath.Join(t.TempDir(), "var", "log", "pods")
				dir := simoperator.PodLogDir(root, "ops", "op-0", "uid-1", "manager")
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				e := &env{dir: dir, path: filepath.Join(dir, "0.log"), client: newMemClient(), sink: new(consumertest.LogsSink),
					glob: filepath.Join(root, "ops_op-0_*", "manager", glob)}
				m, want, n := tt.run(t, e)
				if got := counterValue(m.TailRotations); got != float64(want) {
					t.Errorf("%s = %v, want %d", conventions.MetricTailRotations, got, want)
				}
				wantExactly(t, e.sink, n)
			})
		}
	}
}
