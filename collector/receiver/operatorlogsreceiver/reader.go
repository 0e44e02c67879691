package operatorlogsreceiver

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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
	gz   *gzipFile   // a compressed rotation: reads go through it, in decompressed offsets
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

	gone    bool // no include path leads to this file any more
	idle    int  // polls in a row that read nothing
	close   bool // drained: close after the batch is committed
	rotated bool // its rotation was counted, or it never was the live file

	lastData time.Time // when bytes were last read: the force flush period runs from here

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

// readAt reads the file's content (decompressed for a .gz) at off.
func (r *reader) readAt(p []byte, off int64) (int, error) {
	if r.gz != nil {
		return r.gz.ReadAt(p, off)
	}
	return r.f.ReadAt(p, off)
}

// size is the content's size now (decompressed for a .gz).
func (r *reader) size() (int64, error) {
	if r.gz != nil {
		return r.gz.size, nil
	}
	fi, err := r.f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (r *reader) closeFile() {
	if r.gz != nil {
		r.gz.Close()
	}
	r.f.Close()
}

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

// liveName reports whether p is named like a file being written (kubelet's
// N.log), not like a rotation (N.log.<timestamp>, N.log.1, .gz).
func liveName(p string) bool {
	base := filepath.Base(p)
	return !isCompressed(base) && !strings.Contains(base, ".log.") && !strings.Contains(base, ".log-")
}

// isRotationOf reports whether p is named like a rotation of live:
// N.log.1, N.log-20240301, N.log.<timestamp> beside N.log.
func isRotationOf(p, live string) bool {
	dir, base := filepath.Split(p)
	ldir, lbase := filepath.Split(live)
	return dir == ldir && len(base) > len(lbase) && strings.HasPrefix(base, lbase) && (base[len(lbase)] == '.' || base[len(lbase)] == '-')
}

// fileKey places a file among its container's files.
type fileKey struct {
	group  string // directory and instance (0.log): one sequence of lines
	dir    string
	stem   string // N.log
	num    int64  // N (kubelet's restart count), -1 when not a number
	live   bool   // N.log itself, not a rotation of it
	suffix string // the rotation's suffix (timestamp), without .gz
}

func fileOrder(p string) fileKey {
	dir, base := filepath.Split(p)
	stem, suffix := base, ""
	if i := strings.Index(base, ".log"); i >= 0 {
		stem, suffix = base[:i+len(".log")], base[i+len(".log"):]
	}
	suffix = strings.TrimSuffix(suffix, ".gz")
	num := int64(-1)
	if n, err := strconv.ParseInt(strings.TrimSuffix(stem, ".log"), 10, 64); err == nil {
		num = n
	}
	return fileKey{group: dir + stem, dir: dir, stem: stem, num: num, live: suffix == "", suffix: suffix}
}

// lessPath orders files oldest first: by directory, instance (0.log before
// 1.log), then each instance's rotations by their suffix (kubelet's
// timestamps sort as text) before the live file.
func lessPath(a, b string) bool {
	ka, kb := fileOrder(a), fileOrder(b)
	switch {
	case ka.dir != kb.dir:
		return ka.dir < kb.dir
	case ka.num != kb.num && ka.num >= 0 && kb.num >= 0:
		return ka.num < kb.num
	case ka.stem != kb.stem:
		return ka.stem < kb.stem
	case ka.live != kb.live:
		return kb.live
	case ka.suffix != kb.suffix:
		return ka.suffix < kb.suffix
	}
	return a < b
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
	if r.gz != nil {
		return r.gz.size, nil // a complete .gz does not change
	}
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
	r.rc.countRotation(nil) // the same file goes on: every truncation counts
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
	if r.buf == nil {
		r.buf = make([]byte, r.rc.smallBuf())
	}
	budget := r.rc.readBudget
	var read int // this call: grow the buffer only for a real backlog
	for all || budget > 0 {
		if r.n == len(r.buf) {
			if err := r.longPiece(); err != nil {
				return err
			}
			continue
		}
		m, err := r.readAt(r.buf[r.n:], r.readOff())
		if m == 0 {
			if err != nil && err != io.EOF {
				return err
			}
			return nil
		}
		budget -= int64(m)
		read += m
		r.rc.readBytes += int64(m)
		r.rc.now = nowTimestamp()
		r.lastData = time.Now()
		filled := r.n+m == len(r.buf)
		r.n += m
		// A backlog: more than a large buffer's worth waiting at one poll
		// (not the 800 KiB a poll finds at 10,000 lines/s, which the small
		// buffer reads in four pieces: a large one would stay allocated, and
		// each piece becomes the string every line of it points into, which
		// the batches in flight keep alive). Read it in larger pieces.
		if filled && read >= r.rc.largeBuf() && len(r.buf) < r.rc.largeBuf() {
			r.resizeBuf(r.rc.largeBuf())
		}
		if err := r.lines(); err != nil {
			return err
		}
	}
	r.rc.more = true
	return nil
}

// releasable reports whether the reader's buffer can go while it idles: a
// drained rotated file, with no partial line or long-line piece buffered (a
// gzip file is closed once read to its end instead).
func (r *reader) releasable() bool {
	return r.rotated && r.idle >= goneIdlePolls && r.n == 0 && !r.long.active && r.gz == nil
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
	r.unterminatedPiece()
	if r.rc.batchFull() {
		return r.rc.flush()
	}
	return nil
}

// unterminatedPiece turns the buffered bytes of a physical line whose end is
// not read yet into a piece of its logical line and moves the offset past
// them. The framing (CRI prefix) is taken from the first piece; the bytes
// that end the line later are handled by longEnd.
func (r *reader) unterminatedPiece() {
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
}

// pendingOutput reports whether something read waits for an end: an
// unterminated last line, or a logical line (CRI P, docker split) not ended.
func (r *reader) pendingOutput() bool {
	if r.n > 0 {
		return true
	}
	for i := range r.acc {
		if r.acc[i].active && !r.acc[i].dropping {
			return true
		}
	}
	return false
}

// forceFlush ships what has waited force_flush_period for its end: the
// unterminated last line and every logical line not ended. What arrives
// later is its own record (the unterminated line's rest through longEnd, a
// late F or docker piece as a new logical line), so nothing is shipped
// twice; the offset moves past what was shipped and the state the rest
// needs (longLine) is in the checkpoint, so a restart continues exactly.
// A line being dropped (long_lines: truncate) keeps being dropped.
func (r *reader) forceFlush() {
	if r.n > 0 {
		r.unterminatedPiece()
	}
	for i := range r.acc {
		p := &r.acc[i]
		if !p.active || p.dropping {
			continue
		}
		if len(p.buf) > 0 || !p.split {
			r.rc.appendRecord(&r.res, string(p.buf), p.ts, uint8(i), p.split, p.bad)
		}
		r.resetPending(p)
	}
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
		cut := splitPoint(p.buf, max)
		r.rc.appendRecord(&r.res, string(p.buf[:cut]), p.ts, stream, true, p.bad)
		p.split = true
		if r.rc.cfg.LongLines == LongLinesTrunc {
			p.dropping = true
			p.buf = p.buf[:0]
		} else {
			p.buf = p.buf[:copy(p.buf, p.buf[cut:])]
		}
	}
	if final {
		if !p.dropping && (len(p.buf) > 0 || !p.split) {
			r.rc.appendRecord(&r.res, string(p.buf), p.ts, stream, p.split, p.bad)
		}
		r.resetPending(p)
	}
}

// splitPoint is where the first piece of b (longer than max) ends: at max,
// or up to three bytes before when a valid UTF-8 character straddles max,
// so that both pieces stay valid UTF-8. Bytes that are not valid UTF-8 there
// are cut at max: there is no character to keep whole.
func splitPoint(b []byte, max int) int {
	for k := max; k > 0 && k > max-utf8.UTFMax; k-- {
		if !utf8.RuneStart(b[k]) {
			continue
		}
		if k == max {
			return max
		}
		if c, size := utf8.DecodeRune(b[k:]); (c != utf8.RuneError || size > 1) && k+size > max {
			return k
		}
		return max
	}
	return max
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
	c := fileCheckpoint{FP: r.fp, Path: r.path, Offset: r.offset, Format: r.format, Active: true, Rotated: r.rotated}
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
	r.rotated = r.rotated || c.Rotated
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
