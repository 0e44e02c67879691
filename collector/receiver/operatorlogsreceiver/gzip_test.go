package operatorlogsreceiver

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/extension/xextension/storage"

	"github.com/opsight/opsight/internal/selftelemetry"
	"github.com/opsight/opsight/internal/simoperator"
)

// memClient is a storage client that survives a receiver instance, as
// file_storage survives a kill -9. dropSets makes Set fail: the process
// died after ConsumeLogs and before the checkpoint was written.
type memClient struct {
	mu       sync.Mutex
	data     map[string][]byte
	dropSets bool
}

func newMemClient() *memClient { return &memClient{data: map[string][]byte{}} }

func (c *memClient) Get(_ context.Context, k string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.data[k], nil
}

func (c *memClient) Set(_ context.Context, k string, v []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dropSets {
		return errors.New("killed before the checkpoint was written")
	}
	c.data[k] = append([]byte(nil), v...)
	return nil
}

func (c *memClient) Delete(_ context.Context, k string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.data, k)
	return nil
}

func (c *memClient) Batch(context.Context, ...*storage.Operation) error { return nil }
func (c *memClient) Close(context.Context) error                        { return nil }

// instance is a receiver whose polls the test drives, with checkpoints in
// client. Abandoning it without Shutdown is a kill -9 between two polls:
// only what was committed survives.
func instance(t *testing.T, glob string, client *memClient, sink consumer.Logs, edit func(*Config)) (*operatorLogsReceiver, *selftelemetry.Metrics) {
	t.Helper()
	m := selftelemetry.New()
	cfg := fastConfig(glob)
	if edit != nil {
		edit(cfg)
	}
	rc, err := newReceiver(testSettings(t), cfg, sink, m)
	if err != nil {
		t.Fatal(err)
	}
	rc.ctx = context.Background()
	if err := rc.useClient(context.Background(), client); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, r := range rc.readers {
			r.closeFile()
		}
	})
	return rc, m
}

// gzipBytes compresses s as kubelet does (one gzip member).
func gzipBytes(t testing.TB, s []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(s); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// compress replaces a rotated file by its .gz the way kubelet does: write
// <f>.tmp, rename it to <f>.gz, delete <f>.
func compress(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, gzipBytes(t, data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path+".gz"); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

// seqs lists the sequence numbers received, in the order received.
func seqs(sink *consumertest.LogsSink) []int {
	var out []int
	for _, r := range records(sink.AllLogs()) {
		out = append(out, seqOf(r.body))
	}
	return out
}

func wantInOrder(t *testing.T, got []int, from, to int) {
	t.Helper()
	if len(got) != to-from {
		t.Fatalf("received %d lines, want %d..%d once each", len(got), from, to-1)
	}
	for i, s := range got {
		if s != from+i {
			t.Fatalf("record %d is line %d, want %d (lines out of order or missing)", i, s, from+i)
		}
	}
}

func TestInspectGzip(t *testing.T) {
	plain := []byte(lines(0, 200))
	full := gzipBytes(t, plain)
	twoMembers := append(gzipBytes(t, plain[:100]), gzipBytes(t, plain[100:])...)
	tests := []struct {
		name     string
		data     []byte
		wantErr  error // nil: complete
		wantSize int
	}{
		{"complete", full, nil, len(plain)},
		{"two members", twoMembers, nil, len(plain)},
		{"empty stream", gzipBytes(t, nil), nil, 0},
		{"trailer missing", full[:len(full)-8], errGzipIncomplete, 0},
		{"last byte missing", full[:len(full)-1], errGzipIncomplete, 0},
		{"header only", full[:10], errGzipIncomplete, 0},
		{"half written", full[:len(full)/2], errGzipIncomplete, 0},
		{"second member cut", twoMembers[:len(twoMembers)-3], errGzipIncomplete, 0},
		{"no bytes", nil, errGzipIncomplete, 0},
		{"not gzip", plain, gzip.ErrHeader, 0},
		{"bad checksum", append(append([]byte(nil), full[:len(full)-8]...), 0, 0, 0, 0, 0, 0, 0, 0), gzip.ErrChecksum, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := inspectGzip(bytes.NewReader(tt.data), 1024)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if info.size != int64(tt.wantSize) || !bytes.Equal(info.head, plain[:min(1024, tt.wantSize)]) {
				t.Errorf("size %d head %q, want %d and the first bytes", info.size, info.head, tt.wantSize)
			}
		})
	}
}

// gzipFile reads like the plain file at any offset, forward or backward.
func TestGzipFileReadAt(t *testing.T) {
	plain := []byte(lines(0, 3000))
	path := filepath.Join(t.TempDir(), "0.log.gz")
	if err := os.WriteFile(path, gzipBytes(t, plain), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g := newGzipFile(f, int64(len(plain)))
	defer g.Close()
	for _, off := range []int64{0, 5, 100000, 4096, 0, int64(len(plain)) - 3, int64(len(plain)), int64(len(plain)) + 9} {
		buf := make([]byte, 7000)
		n, err := g.ReadAt(buf, off)
		want := plain[min(off, int64(len(plain))):]
		want = want[:min(len(want), len(buf))]
		if !bytes.Equal(buf[:n], want) {
			t.Fatalf("offset %d: read %d bytes that differ from the plain file's %d", off, n, len(want))
		}
		if atEnd := off+int64(n) >= int64(len(plain)); atEnd != (err == io.EOF) {
			t.Fatalf("offset %d: err %v at end=%v", off, err, atEnd)
		}
	}
}

// kill -9 while kubelet rotates twice and compresses the older rotation: the
// next instance reads the rest of the file it was tailing from the .gz,
// then the plain rotation, then the live file — each line once, in order.
func TestGzipRotationReadAfterRestart(t *testing.T) {
	root := filepath.Join(t.TempDir(), "var", "log", "pods")
	dir := filepath.Join(root, "ops_op-0_uid-1", "manager")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	glob := filepath.Join(root, "ops_op-0_*", "manager", "*.log*") // the webhook's include
	path := filepath.Join(dir, "0.log")
	client := newMemClient()
	sink := new(consumertest.LogsSink)

	rc, _ := instance(t, glob, client, sink, nil)
	appendFile(t, path, lines(0, 100))
	pollOK(t, rc)
	// kill -9: rc is abandoned. While down:
	appendFile(t, path, lines(100, 200))
	first := path + ".20261201-101500"
	if err := os.Rename(path, first); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, lines(200, 300))
	if err := os.Rename(path, path+".20261201-101600"); err != nil {
		t.Fatal(err)
	}
	compress(t, first)
	appendFile(t, path, lines(300, 400))

	rc2, m2 := instance(t, glob, client, sink, nil)
	for i := 0; i < 3; i++ {
		pollOK(t, rc2)
	}
	wantInOrder(t, seqs(sink), 0, 400)
	if v := counterValue(m2.TailRotations); v != 1 {
		t.Errorf("rotations = %v, want 1 (the file live at the kill was rotated while stopped)", v)
	}
	// Nothing is read twice later, and the .gz is let go once read.
	appendFile(t, path, lines(400, 410))
	pollOK(t, rc2)
	pollOK(t, rc2)
	wantInOrder(t, seqs(sink), 0, 410)
	for _, r := range rc2.readers {
		if r.gz != nil {
			t.Errorf("%s still open after it was read to its end", r.path)
		}
	}
	// A third instance reads nothing again: every file's checkpoint,
	// the .gz's included, was stored.
	rc3, _ := instance(t, glob, client, sink, nil)
	pollOK(t, rc3)
	pollOK(t, rc3)
	wantInOrder(t, seqs(sink), 0, 410)
}

// A plain rotated file, partly read, is compressed while the receiver is
// stopped: the .gz has the same fingerprint (of its decompressed start), and
// reading resumes at the checkpoint's offset, in decompressed bytes.
func TestGzipCompressedWhileStoppedResumesAtOffset(t *testing.T) {
	for _, tc := range []struct{ name, glob string }{
		{"include covers rotations", "*.log*"},
		{"include live file only", "*.log"}, // found beside the old path
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := podLogDir(t)
			path := filepath.Join(dir, "0.log")
			rotated := path + ".20261201-101500"
			client := newMemClient()
			sink := new(consumertest.LogsSink)
			rc, _ := instance(t, filepath.Join(dir, tc.glob), client, sink, nil)
			appendFile(t, path, lines(0, 50))
			pollOK(t, rc)
			if tc.glob == "*.log*" {
				// Rotated while running: followed by inode under its new name.
				if err := os.Rename(path, rotated); err != nil {
					t.Fatal(err)
				}
				pollOK(t, rc)
				appendFile(t, rotated, lines(50, 80)) // the runtime's late writes, not read yet
			} else {
				appendFile(t, path, lines(50, 80))
				if err := os.Rename(path, rotated); err != nil {
					t.Fatal(err)
				}
			}
			// kill -9; while down kubelet compresses it.
			compress(t, rotated)
			appendFile(t, path, lines(80, 100))

			rc2, _ := instance(t, filepath.Join(dir, tc.glob), client, sink, nil)
			settle(t, rc2)
			wantInOrder(t, seqs(sink), 0, 100)
		})
	}
}

// A .gz that is still being written (no trailer yet) is not read; once
// complete it is, once. Also a plain rotation compressed while it is open:
// its reader finishes it and the .gz is recognised as the same file.
func TestGzipHalfWrittenNotReadUntilComplete(t *testing.T) {
	dir := podLogDir(t)
	path := filepath.Join(dir, "0.log")
	client := newMemClient()
	sink := new(consumertest.LogsSink)
	// A rotation the receiver never saw plain (it was down), arriving
	// compressed in two writes.
	gz := gzipBytes(t, []byte(lines(0, 500)))
	half := filepath.Join(dir, "0.log.20261201-101500.gz")
	if err := os.WriteFile(half, gz[:len(gz)-5], 0o644); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, lines(500, 510))
	rc, _ := instance(t, filepath.Join(dir, "*.log*"), client, sink, nil)
	pollOK(t, rc)
	pollOK(t, rc)
	if c := counts(sink); c[0] != 0 || c[499] != 0 {
		t.Fatalf("lines of a half-written .gz were read: %d records", len(c))
	}
	appendFile(t, half, string(gz[len(gz)-5:]))
	pollOK(t, rc)
	pollOK(t, rc)
	wantExactly(t, sink, 510)

	// The plain rotation is compressed while its reader is still open.
	rotated := path + ".20261201-101600"
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	appendFile(t, rotated, lines(510, 520))
	compress(t, rotated)
	appendFile(t, path, lines(520, 530))
	for i := 0; i < goneIdlePolls+3; i++ {
		pollOK(t, rc)
	}
	wantExactly(t, sink, 530)
}

// FuzzGzipStream checks the .gz reading against compress/gzip read whole:
// a stream is taken as complete exactly when it is, and a complete one
// reads back identically at any offsets.
func FuzzGzipStream(f *testing.F) {
	f.Add([]byte(lines(0, 40)), uint16(0), uint16(0), uint16(7), []byte(nil))
	f.Add([]byte(lines(0, 3)), uint16(30), uint16(11), uint16(100), []byte(nil))
	f.Add([]byte("2024-03-01T10:11:12Z stdout P x"), uint16(5), uint16(1), uint16(3), []byte(nil))
	f.Add([]byte(nil), uint16(0), uint16(0), uint16(0), []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff})
	f.Add([]byte(nil), uint16(0), uint16(0), uint16(0), []byte("not gzip at all"))
	f.Fuzz(func(t *testing.T, payload []byte, cut, off, chunk uint16, raw []byte) {
		data, complete := raw, false
		if len(raw) == 0 {
			full := gzipBytes(t, payload)
			k := int(cut) % (len(full) + 1)
			data, complete = full[:len(full)-k], k == 0
		}
		// What compress/gzip makes of the whole stream.
		want, werr := func() ([]byte, error) {
			zr, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				return nil, err
			}
			return io.ReadAll(zr)
		}()
		info, err := inspectGzip(bytes.NewReader(data), 64)
		if (err == nil) != (werr == nil) {
			t.Fatalf("inspectGzip err %v, compress/gzip err %v", err, werr)
		}
		if len(raw) == 0 && (err == nil) != complete {
			t.Fatalf("a stream cut short was taken as complete=%v (want %v)", err == nil, complete)
		}
		if err != nil {
			return
		}
		if info.size != int64(len(want)) || !bytes.Equal(info.head, want[:min(64, len(want))]) {
			t.Fatalf("size %d head %q, want %d %q", info.size, info.head, len(want), want[:min(64, len(want))])
		}
		path := filepath.Join(t.TempDir(), "x.gz")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		fh, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		g := newGzipFile(fh, info.size)
		defer g.Close()
		step := int(chunk)%4096 + 1
		start := int64(off) % (info.size + 1)
		var got []byte
		for pos := start; ; {
			buf := make([]byte, step)
			n, err := g.ReadAt(buf, pos)
			got = append(got, buf[:n]...)
			pos += int64(n)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("ReadAt(%d): %v", pos, err)
			}
			if n == 0 {
				t.Fatalf("ReadAt(%d) made no progress", pos)
			}
		}
		if !bytes.Equal(got, want[start:]) {
			t.Fatalf("chunked read from %d differs from compress/gzip's", start)
		}
		// Read again from the start (a rewind) to compare everything.
		all := make([]byte, info.size)
		n, err := g.ReadAt(all, 0)
		if int64(n) != info.size || (err != nil && err != io.EOF) {
			t.Fatalf("rewound read: %d of %d bytes, %v", n, info.size, err)
		}
		if !bytes.Equal(all, want) {
			t.Fatal("decompressed content differs from compress/gzip's")
		}
	})
}

// A rotation with more backlog than one poll reads holds back its
// container's newer files until it is read, so lines stay in order.
func TestBacklogKeepsOrderAcrossFiles(t *testing.T) {
	dir := podLogDir(t)
	path := filepath.Join(dir, "0.log")
	older := path + ".20261201-101500"
	if err := os.WriteFile(older+".gz", gzipBytes(t, []byte(lines(0, 30000))), 0o644); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path+".20261201-101600", lines(30000, 30100))
	appendFile(t, path, lines(30100, 30150))
	sink := new(consumertest.LogsSink)
	rc, _ := instance(t, filepath.Join(dir, "*.log*"), newMemClient(), sink, nil)
	rc.readBudget = 1 // one buffer (at most 1 MiB) a poll; the .gz holds ~2.5 MB
	for i := 0; i < 100 && sink.LogRecordCount() < 30150; i++ {
		pollOK(t, rc)
	}
	wantInOrder(t, seqs(sink), 0, 30150)
}

// The measured loss: a sidecar killed again and again, down each time for
// two or three kubelet rotations (rename at 64 KiB, older rotations
// gzipped), sometimes killed after a batch was delivered and before its
// checkpoint. With .gz read, nothing is lost; duplicates are bounded by one
// batch per kill before a checkpoint. Excluding *.gz (the old behaviour)
// loses what was compressed while down: the test shows both.
func TestKilledLongerThanRotations(t *testing.T) {
	for _, tc := range []struct {
		name      string
		excludeGz bool
	}{{"gz read", false}, {"gz excluded", true}} {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "var", "log", "pods")
			dir := simoperator.PodLogDir(root, "ops", "op-0", "uid-1", "manager")
			w, err := simoperator.NewCRIWriter(dir, 64<<10, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			glob := filepath.Join(root, "ops_op-0_*", "manager", "*.log*")
			edit := func(c *Config) {
				c.MaxBatchLines = 200
				if tc.excludeGz {
					c.Exclude = []string{filepath.Join(root, "ops_op-0_*", "manager", "*.gz")}
				}
			}
			client := newMemClient()
			sink := new(consumertest.LogsSink)
			rng := rand.New(rand.NewPCG(1, 2))
			n, kills, uncommitted := 0, 0, 0
			write := func(k int) {
				for end := n + k; n < end; n++ {
					if err := w.WriteLine(time.Unix(1764584100, int64(n)), "stdout", fmt.Sprintf(`{"msg":"reconciled","seq":%d}`, n)); err != nil {
						t.Fatal(err)
					}
				}
			}
			for round := 0; round < 12; round++ {
				rc, _ := instance(t, glob, client, sink, edit)
				for i := 0; i < 5; i++ {
					write(100 + rng.IntN(400))
					pollOK(t, rc)
				}
				if round%3 == 2 {
					// Killed after ConsumeLogs, before the checkpoint.
					write(300)
					client.dropSets = true
					pollOK(t, rc)
					client.dropSets = false
					uncommitted++
				}
				kills++
				// Down for two or three rotations (~650 lines each).
				write(1400 + rng.IntN(600))
			}
			rc, _ := instance(t, glob, client, sink, edit)
			for i := 0; i < 40; i++ {
				pollOK(t, rc)
			}
			c := counts(sink)
			missing, dups := 0, 0
			for i := 0; i < n; i++ {
				if c[i] == 0 {
					missing++
				}
				if c[i] > 1 {
					dups += c[i] - 1
				}
			}
			gz, _ := filepath.Glob(filepath.Join(dir, "*.gz"))
			t.Logf("%s: lines %d, rotations %d, gzipped %d, kills %d (%d before a checkpoint), missing %d, duplicates %d",
				tc.name, n, w.Rotations(), len(gz), kills, uncommitted, missing, dups)
			if tc.excludeGz {
				if missing == 0 {
					t.Error("with *.gz excluded nothing was lost: the test does not rotate past the receiver")
				}
				return
			}
			if missing > 0 {
				t.Errorf("%d of %d lines lost", missing, n)
			}
			// First deliveries are in the order written, across files.
			seen, last := map[int]bool{}, -1
			for _, q := range seqs(sink) {
				if seen[q] {
					continue
				}
				seen[q] = true
				if q < last {
					t.Fatalf("line %d first delivered after line %d", q, last)
				}
				last = q
			}
			if maxDups := uncommitted * (300 + 200); dups > maxDups {
				t.Errorf("%d duplicates, want at most %d (what the uncheckpointed polls read)", dups, maxDups)
			}
		})
	}
}
