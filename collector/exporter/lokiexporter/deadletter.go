package lokiexporter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grafana/loki/pkg/push"
)

// deadRecord is one line of a dead-letter file. stream/ts/line/
// structured_metadata are the fields of Loki's JSON push, so a record can be
// replayed as it is (README: "Replaying the dead-letter files").
type deadRecord struct {
	Time               string            `json:"time"` // when it was written
	Exporter           string            `json:"exporter"`
	Stream             map[string]string `json:"stream"`
	TS                 string            `json:"ts"` // Unix ns, as a string like Loki's JSON push
	Line               string            `json:"line"`
	StructuredMetadata map[string]string `json:"structured_metadata,omitempty"`
	Reason             string            `json:"reason"`
	Status             int               `json:"status"`
	Message            string            `json:"message"`
	// LokiAccepted is set when Loki refused only some entries of the stream
	// and did not say which: "<M-N> of <M>"; this entry may be a duplicate.
	LokiAccepted string `json:"loki_accepted,omitempty"`
}

const (
	deadLetterExt     = ".ndjson"
	maxDeadMessage    = 4096
	deadFileFraction  = 8 // one file is at most max_bytes/8, so finished files can be replayed and removed
	minDeadLetterFile = 1 << 20
)

var errDeadLetterFull = errors.New("dead-letter files reached dead_letter.max_bytes")

// deadLetter appends records to NDJSON files under one directory, fsynced
// before write returns, rotated by size, bounded in total.
type deadLetter struct {
	dir, prefix string
	max         int64
	fileMax     int64

	mu      sync.Mutex
	f       *os.File
	curSize int64
	total   int64
}

func openDeadLetter(dir, exporterID string, maxBytes int64) (*deadLetter, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("dead_letter.directory: creating %s: %w; point it at a writable directory on the state volume", dir, err)
	}
	d := &deadLetter{
		dir:     dir,
		prefix:  "loki-" + strings.NewReplacer("/", "_", string(os.PathSeparator), "_").Replace(exporterID) + "-",
		max:     maxBytes,
		fileMax: max(maxBytes/deadFileFraction, minDeadLetterFile),
	}
	// What earlier runs left counts towards the bound.
	files, _ := filepath.Glob(filepath.Join(dir, d.prefix+"*"+deadLetterExt))
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			d.total += st.Size()
		}
	}
	return d, nil
}

// write appends recs and fsyncs. It returns how many were written; on error
// the rest are not on disk.
func (d *deadLetter) write(recs []deadRecord) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now().UTC().Format(time.RFC3339Nano)
	var buf bytes.Buffer
	written, inBuf := 0, 0
	flush := func() error {
		if buf.Len() == 0 {
			return nil
		}
		if _, err := d.f.Write(buf.Bytes()); err != nil {
			return err
		}
		if err := d.f.Sync(); err != nil {
			return err
		}
		d.curSize += int64(buf.Len())
		d.total += int64(buf.Len())
		buf.Reset()
		written += inBuf
		inBuf = 0
		return nil
	}
	for i := range recs {
		r := recs[i]
		r.Time = now
		if len(r.Message) > maxDeadMessage {
			r.Message = truncateRunes(r.Message, maxDeadMessage) + "…"
		}
		b, err := json.Marshal(r)
		if err != nil {
			return written, err
		}
		b = append(b, '\n')
		if d.total+int64(buf.Len()+len(b)) > d.max {
			if err := flush(); err != nil {
				return written, err
			}
			return written, fmt.Errorf("%w (%d bytes in %s)", errDeadLetterFull, d.total, d.dir)
		}
		if d.f == nil || d.curSize+int64(buf.Len()+len(b)) > d.fileMax {
			if err := flush(); err != nil {
				return written, err
			}
			if err := d.rotate(); err != nil {
				return written, err
			}
		}
		buf.Write(b)
		inBuf++
	}
	err := flush()
	return written, err
}

// rotate closes the current file and starts a new one named by its UTC
// start time, so names sort in write order.
func (d *deadLetter) rotate() error {
	if d.f != nil {
		_ = d.f.Close()
		d.f = nil
	}
	name := filepath.Join(d.dir, d.prefix+time.Now().UTC().Format("20060102T150405.000000000Z")+deadLetterExt)
	f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	// The new name must survive a crash too.
	if dir, err := os.Open(d.dir); err == nil {
		_ = dir.Sync()
		_ = dir.Close()
	}
	d.f, d.curSize = f, 0
	return nil
}

func (d *deadLetter) close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return nil
	}
	err := d.f.Close()
	d.f = nil
	return err
}

func labelMap(pairs push.LabelsAdapter) map[string]string {
	m := make(map[string]string, len(pairs))
	for _, p := range pairs {
		m[p.Name] = p.Value
	}
	return m
}

func deadRecordOf(exporterID string, s *stream, en push.Entry, reason string, status int, message, accepted string) deadRecord {
	var md map[string]string
	if len(en.StructuredMetadata) > 0 {
		md = labelMap(en.StructuredMetadata)
	}
	return deadRecord{
		Exporter:           exporterID,
		Stream:             labelMap(s.pairs),
		TS:                 strconv.FormatInt(en.Timestamp.UnixNano(), 10),
		Line:               en.Line,
		StructuredMetadata: md,
		Reason:             reason,
		Status:             status,
		Message:            message,
		LokiAccepted:       accepted,
	}
}
