package lokiexporter

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDeadLetterRotationAndBound: files rotate at max_bytes/8 (at least
// 1 MiB), all of them together stay under max_bytes, a new writer counts
// what is on disk, and a write that does not fit says how many it kept.
func TestDeadLetterRotationAndBound(t *testing.T) {
	dir := t.TempDir()
	const maxBytes = 3 << 20
	d, err := openDeadLetter(dir, "loki/x", maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	rec := deadRecord{Stream: map[string]string{"pod": "p"}, TS: "1", Line: strings.Repeat("x", 100<<10), Reason: reasonUnknown}
	batch := make([]deadRecord, 25) // ~2.5 MiB
	for i := range batch {
		batch[i] = rec
	}
	if n, err := d.write(batch); err != nil || n != 25 {
		t.Fatalf("write: %d, %v", n, err)
	}
	_ = d.close()
	files, _ := filepath.Glob(filepath.Join(dir, "loki-loki_x-*.ndjson"))
	if len(files) != 3 {
		t.Errorf("%d files, want 3 (1 MiB each)", len(files))
	}
	var total int64
	for _, f := range files {
		st, _ := os.Stat(f)
		if st.Size() > 1<<20 {
			t.Errorf("%s: %d bytes, over the 1 MiB file size", f, st.Size())
		}
		total += st.Size()
	}

	d2, err := openDeadLetter(dir, "loki/x", maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.close()
	if d2.total != total {
		t.Errorf("reopened: total %d, want %d on disk", d2.total, total)
	}
	n, err := d2.write(batch)
	if !errors.Is(err, errDeadLetterFull) || n == 0 || n >= 25 {
		t.Errorf("write past the bound: %d kept, %v; want some kept and errDeadLetterFull", n, err)
	}
	if d2.total > maxBytes {
		t.Errorf("total %d over max_bytes %d", d2.total, maxBytes)
	}
	if got := len(readDeadLetters(t, dir)); got != 25+n {
		t.Errorf("%d records on disk, want %d", got, 25+n)
	}
}
