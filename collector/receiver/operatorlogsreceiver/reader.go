package operatorlogsreceiver

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/opsight/opsight/internal/conventions"
)

// pending is one logical line being assembled from pieces, per stream: CRI
// and docker interleave stdout and stderr, each with its own partial line.
type pending struct {
	buf      []byte
	ts       uint64
	active   bool
	split    bool // pieces of this line were already emitted
	dropping bool // long_lines=truncate: the rest of this line is discarded
	bad      bool // raw line: framing could not be removed
}

// longLine describes a physical line longer than the read buffer while its
// end has not been read yet.
type longLine struct {
	active  bool
	stream  uint8
	ts      uint64
	partial bool // CRI tag P
	raw     bool // pieces are raw bytes, not a CRI message
	bad     bool
}

// reader tails one file, identified by its fingerprint.
type reader struct {
	rc   *operatorLogsReceiver
	f    *os.File
	info os.FileInfo // for os.SameFile: same inode means same file
	path string
	fp   []byte

	format string // resolved format; "" until the first line when auto

	buf    []byte // unprocessed bytes: file[offset : offset+n]
	n      int
	offset int64 // first byte not yet turned into records

	acc  [3]pending // by stream
	long longLine

	scratch []byte // docker unescaping

	gone  bool // no include path leads to this file any more
	idle  int  // polls in a row that read nothing
	close bool // drained: close after the batch is committed

	res resource
}

// resource is where records of one source go in the batch being built: one
// ResourceLogs per source and batch.
type resource struct {
	attrs pcommon.Map
	gen   uint64 // batch generation the record slice below belongs to
	recs  plog.LogRecordSlice
}

func (r *reader) readOff() int64 { return r.offset + int64(r.n) }

// setPath records where the file is found and recomputes the resource.
func (r *reader) setPath(p string) {
	r.path = p
	r.res = resource{attrs: pcommon.NewMap()}
	if r.rc.cfg.IncludeFilePath {
		r.res.attrs.PutStr(conventions.AttrLogFilePath, p)
	}
	if k, ok := k8sFromPath(p); ok {
		r.res.attrs.PutStr(conventions.AttrNamespace, k.namespace)
		r.res.attrs.PutStr(conventions.AttrPod, k.pod)
		r.res.attrs.PutStr(attrPodUID, k.uid)
		r.res.attrs.PutStr(conventions.AttrContainer, k.container)
	}
}

type k8sNames struct{ namespace, pod, uid, container string }

// k8sFromPath reads kubelet's layout:
// /var/log/pods/<namespace>_<pod>_<uid>/<container>/<n>.log (and rotated
// <n>.log.<timestamp>). Namespaces and pod names cannot contain '_'.
func k8sFromPath(p string) (k8sNames, bool) {
	cdir := filepath.Dir(p)
	pdir := filepath.Dir(cdir)
	if filepath.Base(filepath.Dir(pdir)) != "pods" {
		return k8sNames{}, false
	}
	base := filepath.Base(p)
	dot := strings.Index(base, ".log")
	if dot <= 0 || strings.Trim(base[:dot], "0123456789") != "" {
		return k8sNames{}, false
	}
	parts := strings.Split(filepath.Base(pdir), "_")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return k8sNames{}, false
	}
	c := filepath.Base(cdir)
	return k8sNames{parts[0], parts[1], parts[2], c}, true
}

// head reads up to size leading bytes of f.
func head(f *os.File, size int64, max int) []byte {
	n := int64(max)
	if size < n {
		n = size
	}
	b := make([]byte, n)
	m, _ := f.ReadAt(b, 0)
	return b[:m]
}

// checkTruncated detects copytruncate and plain truncation on the open file:
// it shrank below what was read, or its first bytes changed. It reports the
// current size.
func (r *reader) checkTruncated() (int64, error) {
	fi, err := r.f.Stat()
	if err != nil {
		return 0, err
	}
	size := fi.Size()
	h := head(r.f, size, r.rc.cfg.FingerprintSize)
	truncated := size < r.readOff() || len(h) < len(r.fp) || !bytes.Equal(h[:len(r.fp)], r.fp)
	if !truncated {
		if len(h) > len(r.fp) {
			r.fp = h
		}
		return size, nil
	}
	r.rc.metrics.TailRotations.Inc()
	r.rc.logger.Info("log file truncated (copytruncate or truncation); reading it again from the start",
		zapPath(r.path), zapInt64("read_offset", r.readOff()), zapInt64("size", size))
	oldFP := r.fp
	// The lines written after our last read and before the truncation are in
	// the copy logrotate made, when there is one: read them from there.
	if cf := findRotatedCopy(r.path, oldFP, r.readOff()); cf != nil {
		orig := r.f
		r.f = cf
		err := r.readAll(true)
		r.f = orig
		cf.Close()
		if err != nil {
			return size, err
		}
	}
	// What was left of partial lines will never be completed: ship it.
	r.finishPartials()
	r.rc.retire(fileCheckpoint{FP: oldFP, Path: r.path, Offset: r.readOff(), Format: r.format})
	r.offset, r.n = 0, 0
	r.long = longLine{}
	r.fp = h
	return size, nil
}

// findRotatedCopy looks beside path for a rotated copy (N.log.1,
// N.log.20240101-..., not .gz) whose first bytes are fp and that holds more
// than from bytes, i.e. something not read yet.
func findRotatedCopy(path string, fp []byte, from int64) *os.File {
	if len(fp) == 0 {
		return nil
	}
	dir, base := filepath.Split(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	for _, e := range entries {
		name := e.Name()
		if name == base || !strings.HasPrefix(name, base) || strings.HasSuffix(name, ".gz") || !e.Type().IsRegular() {
			continue
		}
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		if fi, err := f.Stat(); err == nil && fi.Size() > from && bytes.Equal(head(f, fi.Size(), len(fp)), fp) {
			return f
		}
		f.Close()
	}
	return nil
}

// readAll reads until EOF (or, unless all, until the per-poll budget is
// spent, which sets rc.more so the next poll follows at once), turning
// complete lines into records.
func (r *reader) readAll(all bool) error {
	var budget int64 = maxReadPerPoll
	for all || budget > 0 {
		if r.n == len(r.buf) {
			if err := r.longPiece(); err != nil {
				return err
			}
			continue
		}
		m, err := r.f.ReadAt(r.buf[r.n:], r.readOff())
		if m == 0 {
			if err != nil && err != io.EOF {
				return err
			}
			return nil
		}
		budget -= int64(m)
		r.rc.readBytes += int64(m)
		r.rc.now = nowTimestamp()
		filled := r.n+m == len(r.buf)
		r.n += m
		if filled && len(r.buf) < r.rc.largeBuf() {
			r.resizeBuf(r.rc.largeBuf()) // a backlog: read it in larger pieces
		}
		if err := r.lines(); err != nil {
			return err
		}
	}
	r.rc.more = true
	return nil
}

// resizeBuf replaces the buffer by one of size, keeping its unread bytes;
// it never shrinks below them.
func (r *reader) resizeBuf(size int) {
	if size == len(r.buf) || size < r.n {
		return
	}
	b := make([]byte, size)
	copy(b, r.buf[:r.n])
	r.buf = b
}

// lines turns every complete line in the buffer into records.
func (r *reader) lines() error {
	k := bytes.LastIndexByte(r.buf[:r.n], '\n') + 1
	if k == 0 {
		return nil
	}
	// One string for the whole chunk: every Body is a substring of it, so a
	// line costs no allocation of its own.
	s := string(r.buf[:k])
	pos := 0
	for pos < k {
		e := strings.IndexByte(s[pos:], '\n')
		line := s[pos : pos+e]
		pos += e + 1
		if r.long.active {
			r.longEnd(line)
		} else {
			r.line(line)
		}
		r.offset += int64(e + 1)
		if r.rc.batchFull() {
			if err := r.rc.flush(); err != nil {
				return err
			}
		}
	}
	r.n = copy(r.buf, r.buf[k:r.n])
	return nil
}

// line handles one complete physical line (no newline).
func (r *reader) line(line string) {
	if r.format == "" {
		r.format = detectFormat(line)
	}
	switch r.format {
	case FormatCRI:
		l, ok := parseCRI(line)
		if !ok {
			r.add(streamUnknown, 0, line, true, true)
			return
		}
		r.add(l.stream, l.ts, l.msg, !l.partial, false)
	case FormatDocker:
		l, ok := parseDocker(line, r.scratch)
		if !ok {
			r.add(streamUnknown, 0, line, true, true)
			return
		}
		r.scratch = l.msg[:0]
		r.add(l.stream, l.ts, string(l.msg), !l.partial, false)
	default:
		r.add(streamUnknown, 0, line, true, false)
	}
}

// longPiece handles a full buffer without a newline: a physical line longer
// than the buffer. Its bytes go on as pieces of one logical line.
func (r *reader) longPiece() error {
	s := string(r.buf[:r.n])
	if !r.long.active {
		if r.format == "" {
			r.format = detectFormat(s)
		}
		r.long = longLine{active: true, raw: true, bad: r.format != FormatJSON}
		if r.format == FormatCRI {
			if l, ok := parseCRI(s); ok {
				r.long = longLine{active: true, stream: l.stream, ts: l.ts, partial: l.partial}
				s = l.msg
			}
		}
	}
	r.add(r.long.stream, r.long.ts, s, false, r.long.bad)
	r.offset += int64(r.n)
	r.n = 0
	if r.rc.batchFull() {
		return r.rc.flush()
	}
	return nil
}

// longEnd handles the end of a long physical line; its CRI tag (P or F) was
// in the first piece.
func (r *reader) longEnd(tail string) {
	l := r.long
	r.long = longLine{}
	r.add(l.stream, l.ts, tail, !l.partial, l.bad)
}

// add appends content to the logical line of stream; final ends it.
func (r *reader) add(stream uint8, ts uint64, content string, final, bad bool) {
	max := r.rc.cfg.MaxLineSize
	p := &r.acc[stream]
	if !p.active {
		if final && len(content) <= max {
			r.rc.appendRecord(&r.res, content, ts, stream, false, bad)
			return
		}
		p.active, p.ts, p.bad = true, ts, bad
	}
	if !p.dropping {
		p.buf = append(p.buf, content...)
	}
	for !p.dropping && len(p.buf) > max {
		r.rc.appendRecord(&r.res, string(p.buf[:max]), p.ts, stream, true, p.bad)
		p.split = true
		if r.rc.cfg.LongLines == LongLinesTrunc {
			p.dropping = true
			p.buf = p.buf[:0]
		} else {
			p.buf = p.buf[:copy(p.buf, p.buf[max:])]
		}
	}
	if final {
		if !p.dropping && (len(p.buf) > 0 || !p.split) {
			r.rc.appendRecord(&r.res, string(p.buf), p.ts, stream, p.split, p.bad)
		}
		r.resetPending(p)
	}
}

func (r *reader) resetPending(p *pending) {
	buf := p.buf[:0]
	if cap(buf) > 64<<10 {
		buf = nil // do not keep a long line's buffer per file forever
	}
	*p = pending{buf: buf}
}

// finishPartials ships every logical line still open (the file ended or was
// truncated and its end will never come) and any unterminated last line.
func (r *reader) finishPartials() {
	if r.n > 0 {
		s := string(r.buf[:r.n])
		if r.long.active {
			r.longEnd(s)
		} else {
			r.line(s)
		}
		r.offset += int64(r.n)
		r.n = 0
	}
	for i := range r.acc {
		if p := &r.acc[i]; p.active {
			if !p.dropping && (len(p.buf) > 0 || !p.split) {
				r.rc.appendRecord(&r.res, string(p.buf), p.ts, uint8(i), p.split, p.bad)
			}
			r.resetPending(p)
		}
	}
}

// checkpoint returns the state to persist: offset plus open partial lines.
func (r *reader) checkpoint() fileCheckpoint {
	c := fileCheckpoint{FP: r.fp, Path: r.path, Offset: r.offset, Format: r.format, Active: true}
	for i := range r.acc {
		if p := &r.acc[i]; p.active {
			c.Partial = append(c.Partial, partialCheckpoint{Stream: uint8(i), TS: p.ts, Buf: p.buf, Split: p.split, Dropping: p.dropping, Bad: p.bad})
		}
	}
	if r.long.active {
		c.Long = &longCheckpoint{Stream: r.long.stream, TS: r.long.ts, Partial: r.long.partial, Raw: r.long.raw, Bad: r.long.bad}
	}
	return c
}

// restore resumes from a checkpoint.
func (r *reader) restore(c *fileCheckpoint) {
	r.offset = c.Offset
	if r.rc.cfg.Format == FormatAuto {
		r.format = c.Format
	}
	for _, p := range c.Partial {
		if int(p.Stream) < len(r.acc) {
			r.acc[p.Stream] = pending{buf: append([]byte(nil), p.Buf...), ts: p.TS, active: true, split: p.Split, dropping: p.Dropping, bad: p.Bad}
		}
	}
	if c.Long != nil {
		r.long = longLine{active: true, stream: c.Long.Stream, ts: c.Long.TS, partial: c.Long.Partial, raw: c.Long.Raw, bad: c.Long.Bad}
	}
}
