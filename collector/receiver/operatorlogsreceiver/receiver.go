package operatorlogsreceiver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.uber.org/zap"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/selftelemetry"
)

// Names this receiver writes that internal/conventions does not hold yet.
const (
	attrIOStream   = conventions.AttrLogIOStream
	attrPodUID     = conventions.AttrPodUID
	reasonBadFrame = conventions.ParseErrorBadFraming
	scopeName      = "github.com/opsight/opsight/collector/receiver/operatorlogsreceiver"
)

const (
	// maxReadPerPoll keeps one file with a large backlog from starving the
	// others: after this many bytes the next file gets its turn.
	maxReadPerPoll = 8 << 20
	// A reader's buffer: small while it keeps up (a steady sidecar holds
	// less), grown for a backlog (fewer, larger reads), at least
	// max_line_size + 64 KiB either way.
	smallBufSize = 256 << 10
	largeBufSize = 1 << 20
	// Retry of a batch refused by the pipeline (memory_limiter, a full queue).
	retryInitial = 100 * time.Millisecond
	retryMax     = 5 * time.Second
	// A file no include path leads to is closed after this many polls in a
	// row that read nothing: the runtime may still write to the renamed file
	// briefly after kubelet's rename.
	goneIdlePolls = 2
)

func zapPath(p string) zap.Field               { return zap.String("path", p) }
func zapInt64(k string, v int64) zap.Field     { return zap.Int64(k, v) }
func nowTimestamp() pcommon.Timestamp          { return pcommon.NewTimestampFromTime(time.Now()) }
func isCompressed(p string) bool               { return strings.HasSuffix(p, ".gz") }
func sameFile(a, b os.FileInfo) bool           { return a != nil && b != nil && os.SameFile(a, b) }
func (rc *operatorLogsReceiver) storing() bool { return rc.client != nil }

type operatorLogsReceiver struct {
	cfg     *Config
	set     receiver.Settings
	next    consumer.Logs
	metrics *selftelemetry.Metrics
	obs     *receiverhelper.ObsReport
	logger  *zap.Logger

	client storage.Client // nil: checkpoints only in memory

	cancel context.CancelFunc
	done   chan struct{}
	ctx    context.Context
	drain  chan struct{} // closed by Shutdown: read to the end of the files, then stop

	api    *apiSource // source api; nil for files
	stored *apiPosition

	readers   []*reader
	byPath    map[string]*reader
	known     []fileCheckpoint // checkpoints of files not open: restored or retired
	gzSeen    map[string]*gzEntry
	firstPoll bool
	freshRun  bool // no checkpoint was ever stored: start_at applies
	lagFiles  map[string]bool

	// batch being built
	ld       plog.Logs
	gen      uint64
	lines    int
	bytes    int
	now      pcommon.Timestamp
	more     bool // a reader stopped at its per-poll budget
	setDirty bool // the set of files changed since the last commit

	readBytes  int64 // total, for tests and the benchmark
	readBudget int64 // bytes per file and poll: maxReadPerPoll, lowered in tests

	warnedRetired bool

	// droppedRecords counts records of batches refused with a permanent
	// error (also reported as refused through the receiver's obsreport).
	droppedRecords atomic.Int64

	shutdownOnce sync.Once
}

func newReceiver(set receiver.Settings, cfg *Config, next consumer.Logs, m *selftelemetry.Metrics) (*operatorLogsReceiver, error) {
	obs, err := receiverhelper.NewObsReport(receiverhelper.ObsReportSettings{
		ReceiverID: set.ID, Transport: string(cfg.Source), ReceiverCreateSettings: set,
	})
	if err != nil {
		return nil, err
	}
	return &operatorLogsReceiver{
		cfg: cfg, set: set, next: next, metrics: m, obs: obs, logger: set.Logger,
		byPath: map[string]*reader{}, lagFiles: map[string]bool{}, gzSeen: map[string]*gzEntry{},
		firstPoll: true, freshRun: true, ld: plog.NewLogs(), gen: 1, readBudget: maxReadPerPoll,
	}, nil
}

// Start loads the checkpoints and starts tailing.
func (rc *operatorLogsReceiver) Start(ctx context.Context, host component.Host) error {
	if rc.cfg.Storage == nil {
		rc.logger.Warn("operatorlogs: no storage extension configured; checkpoints are kept in memory only, so a restart reads files again per start_at. Set storage: file_storage to resume where it stopped.")
	} else {
		ext, ok := host.GetExtensions()[*rc.cfg.Storage]
		if !ok {
			return fmt.Errorf("storage: extension %q is not configured; add it under extensions and service.extensions", rc.cfg.Storage)
		}
		se, ok := ext.(storage.Extension)
		if !ok {
			return fmt.Errorf("storage: extension %q is not a storage extension (use e.g. file_storage)", rc.cfg.Storage)
		}
		client, err := se.GetClient(ctx, component.KindReceiver, rc.set.ID, "")
		if err != nil {
			return fmt.Errorf("storage: cannot open a client of %q: %w", rc.cfg.Storage, err)
		}
		if err := rc.useClient(ctx, client); err != nil {
			_ = client.Close(ctx)
			return err
		}
	}
	run := rc.run
	if rc.cfg.Source == SourceAPI {
		a, err := rc.newAPISource()
		if err != nil {
			if rc.client != nil {
				_ = rc.client.Close(ctx)
			}
			return err
		}
		a.restore(rc.stored, rc.freshRun)
		rc.api = a
		run = func() {
			defer close(rc.done)
			a.run()
		}
	}
	runCtx, cancel := context.WithCancel(context.Background())
	rc.ctx, rc.cancel, rc.done, rc.drain = runCtx, cancel, make(chan struct{}), make(chan struct{})
	go run()
	return nil
}

// useClient loads the stored checkpoints from client and keeps it for
// commits.
func (rc *operatorLogsReceiver) useClient(ctx context.Context, client storage.Client) error {
	data, err := client.Get(ctx, checkpointKey)
	if err != nil {
		return fmt.Errorf("storage: reading checkpoints from %q: %w", rc.cfg.Storage, err)
	}
	if data != nil {
		doc, err := decodeCheckpoints(data)
		if err != nil {
			return err
		}
		rc.known, rc.stored = doc.Files, doc.API
		rc.freshRun = false
	}
	rc.client = client
	return nil
}

// drainTimeout bounds the final read on shutdown.
const drainTimeout = 5 * time.Second

// Shutdown first reads the files to their end (source file, at most
// drainTimeout): when a pod ends, the kubelet stops a native sidecar after
// the operator has exited, so its last lines were written just before, and
// the pod's log directory goes with the pod; there may be no next start to
// read them. Then it stops; a batch still in flight (the backend not
// answering) is abandoned uncommitted, so it is read again on the next
// start.
func (rc *operatorLogsReceiver) Shutdown(ctx context.Context) error {
	var err error
	rc.shutdownOnce.Do(func() {
		if rc.cancel == nil {
			return
		}
		if rc.api == nil {
			// At most half of what ctx leaves: the rest is for stopping.
			wait := drainTimeout
			if dl, ok := ctx.Deadline(); ok {
				wait = min(wait, time.Until(dl)/2)
			}
			close(rc.drain)
			t := time.NewTimer(wait)
			select {
			case <-rc.done:
			case <-t.C:
			}
			t.Stop()
		}
		rc.cancel()
		select {
		case <-rc.done:
		case <-ctx.Done():
			err = fmt.Errorf("operatorlogs: shutdown timed out waiting for the in-flight batch: %w", ctx.Err())
			return
		}
		for _, r := range rc.readers {
			r.closeFile()
		}
		for p := range rc.lagFiles {
			rc.metrics.TailLagBytes.DeleteLabelValues(p)
		}
		if rc.client != nil {
			err = rc.client.Close(ctx)
		}
	})
	return err
}

func (rc *operatorLogsReceiver) run() {
	defer close(rc.done)
	t := time.NewTicker(rc.cfg.PollInterval)
	defer t.Stop()
	draining := false
	for {
		rc.more = false
		if err := rc.poll(); err != nil {
			return // only shutdown makes a poll fail
		}
		if rc.more {
			select {
			case <-rc.ctx.Done():
				return
			default:
				continue
			}
		}
		if draining {
			return // read to the end of every file
		}
		select {
		case <-rc.ctx.Done():
			return
		case <-rc.drain:
			draining = true // one more poll sees what was written since the last
		case <-t.C:
		}
	}
}

// paths lists what include matches, minus exclude and kubelet's .tmp files
// (a .gz being written; the plain original exists until it is complete).
func (rc *operatorLogsReceiver) paths() []string {
	seen := map[string]bool{}
	var out []string
	for _, g := range rc.cfg.Include {
		matches, _ := filepath.Glob(g)
		for _, m := range matches {
			if seen[m] || strings.HasSuffix(m, ".tmp") || rc.excluded(m) {
				continue
			}
			seen[m] = true
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return lessPath(out[i], out[j]) })
	return out
}

func (rc *operatorLogsReceiver) excluded(p string) bool {
	for _, x := range rc.cfg.Exclude {
		if ok, _ := filepath.Match(x, p); ok {
			return true
		}
	}
	return false
}

// poll finds files, reads what is new, and ships it.
func (rc *operatorLogsReceiver) poll() error {
	rc.now = nowTimestamp()
	rc.discover()
	var closing []*reader
	// A file whose backlog is left for the next poll holds back the newer
	// files of its container, so lines are shipped in the order written.
	var behind map[string]bool
	for _, r := range rc.readers {
		if err := rc.ctx.Err(); err != nil {
			return err
		}
		group := fileOrder(r.path).group
		if behind[group] {
			continue
		}
		size, err := r.checkTruncated()
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return err
			}
			rc.logger.Warn("operatorlogs: cannot stat tailed file", zapPath(r.path), zap.Error(err))
			continue
		}
		before := r.readOff()
		more := rc.more
		rc.more = false
		if r.buf != nil || size > before {
			if err := r.readAll(false); err != nil {
				if rc.ctx.Err() != nil {
					return rc.ctx.Err()
				}
				rc.logger.Warn("operatorlogs: reading failed; will retry", zapPath(r.path), zap.Error(err))
			}
		}
		if rc.more {
			if behind == nil {
				behind = map[string]bool{}
			}
			behind[group] = true
		}
		rc.more = rc.more || more
		if r.readOff() == before && r.readOff() >= size {
			r.idle++
			if r.releasable() {
				// Kept open until it is gone (the runtime keeps the last few
				// rotations, each a reader here), it is written no more.
				r.buf = nil
			} else {
				r.resizeBuf(rc.smallBuf()) // caught up: give the backlog's buffer back
			}
		} else {
			r.idle = 0
		}
		switch {
		case (r.gone && r.idle >= goneIdlePolls) || (r.gz != nil && r.readOff() >= size):
			// Drained (a .gz is complete once read to its end): what never
			// got its newline is shipped now.
			r.finishPartials()
			r.close = true
			closing = append(closing, r)
		case rc.cfg.ForceFlushPeriod > 0 && r.pendingOutput() && r.readOff() >= size && time.Since(r.lastData) >= rc.cfg.ForceFlushPeriod:
			// Only at the end of what was written: a reader that did not get
			// to its file this poll (blocked by backpressure, yielding to
			// another file, held behind an older rotation) holds a line cut
			// by its buffer, not one whose writer stopped.
			r.forceFlush()
		}
	}
	if err := rc.flush(); err != nil {
		return err
	}
	if len(closing) > 0 {
		kept := rc.readers[:0]
		for _, r := range rc.readers {
			if r.close {
				r.closeFile()
				if e := rc.gzSeen[r.path]; e != nil && sameFile(e.fi, r.info) {
					e.done = true
				}
				rc.retire(r.checkpoint())
				continue
			}
			kept = append(kept, r)
		}
		rc.readers = kept
	}
	if rc.setDirty {
		rc.commit()
	}
	rc.updateLag()
	return nil
}

// discover matches the include paths to open readers by inode and to known
// checkpoints by fingerprint, and opens new files.
func (rc *operatorLogsReceiver) discover() {
	paths := rc.paths()
	// Live files being tailed when the last run stopped: if one is not found
	// under its name again, it was rotated meanwhile.
	var wasLive []fileCheckpoint
	if rc.firstPoll {
		for _, c := range rc.known {
			if c.Active && !c.Rotated && liveName(c.Path) {
				wasLive = append(wasLive, c)
			}
		}
	}
	present := make(map[*reader]bool, len(rc.readers))
	seenGz := make(map[string]bool)
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if r := rc.byPath[p]; r != nil {
			if sameFile(r.info, fi) {
				present[r] = true
				if r.gz != nil {
					seenGz[p] = true
				}
				continue
			}
			// A new file under the old name: kubelet renamed the old one.
			delete(rc.byPath, p)
			rc.countRotation(r)
		}
		// A file we already tail under another name (include covers the
		// rotated name too): follow it, by inode.
		var moved *reader
		for _, r := range rc.readers {
			if sameFile(r.info, fi) {
				moved = r
				break
			}
		}
		if moved != nil && present[moved] {
			continue // another path to a file already seen (symlink, hard link)
		}
		if moved != nil {
			if rc.byPath[moved.path] == moved {
				delete(rc.byPath, moved.path)
			}
			if moved.path != p && liveName(moved.path) {
				rc.countRotation(moved) // renamed, found again by inode
			}
			moved.setPath(p)
			moved.gone = false
			rc.byPath[p] = moved
			present[moved] = true
			rc.setDirty = true
			continue
		}
		if fi.Size() == 0 {
			continue // nothing to fingerprint yet; look again next poll
		}
		if isCompressed(p) {
			seenGz[p] = true
			if r := rc.openGzip(p, fi); r != nil {
				present[r] = true
			}
			continue
		}
		if r := rc.open(p, fi, seenGz); r != nil {
			present[r] = true
		}
	}
	for p := range rc.gzSeen {
		if !seenGz[p] {
			delete(rc.gzSeen, p) // gone: a file appearing there later is inspected anew
		}
	}
	for _, r := range rc.readers {
		if !present[r] && !r.gone {
			// Renamed away (kubelet: N.log -> N.log.<ts>) or deleted: read it
			// to its end through the open descriptor before letting it go.
			r.gone = true
			r.idle = 0
			if rc.byPath[r.path] == r {
				delete(rc.byPath, r.path)
			}
			rc.countRotation(r)
			rc.setDirty = true
		}
	}
	if rc.firstPoll {
		rc.firstPoll = false
		rc.resumeRotatedWhileDown()
		for _, c := range wasLive {
			if r := rc.byPath[c.Path]; r == nil || !bytes.HasPrefix(r.fp, c.FP) {
				rc.countRotation(nil) // rotated (or deleted) while stopped
			}
		}
		// Store a document even if no file exists yet: the next start is then
		// not a first start, and start_at no longer applies.
		rc.setDirty = true
	}
	rc.forgetAbsent()
	// Oldest first: within a poll a container's rotations are read before
	// its live file, so lines are shipped in order.
	sort.SliceStable(rc.readers, func(i, j int) bool { return lessPath(rc.readers[i].path, rc.readers[j].path) })
}

// countRotation counts one rotation of r's file, once per file; r nil counts
// an event with no reader of its own (truncation, rotation while stopped).
func (rc *operatorLogsReceiver) countRotation(r *reader) {
	if r != nil {
		if r.rotated {
			return
		}
		r.rotated = true
	}
	rc.metrics.TailRotations.Inc()
}

// open starts tailing a file not seen before (in this run). A file that
// turns out to be gzip (kubelet's compressed rotation under another name)
// is handed to openGzip.
func (rc *operatorLogsReceiver) open(p string, fi os.FileInfo, seenGz map[string]bool) *reader {
	f, err := os.Open(p)
	if err != nil {
		rc.logger.Warn("operatorlogs: cannot open log file", zapPath(p), zap.Error(err))
		return nil
	}
	ofi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil
	}
	h := head(f, ofi.Size(), rc.cfg.FingerprintSize)
	if isGzipHead(h) {
		f.Close()
		seenGz[p] = true
		return rc.openGzip(p, fi)
	}
	if len(h) == 0 {
		f.Close()
		return nil
	}
	for _, o := range rc.readers {
		if o.gz == nil && len(o.fp) > 0 && bytes.HasPrefix(h, o.fp) && isRotationOf(p, o.path) {
			// logrotate's copy of a file being tailed: the truncation
			// check reads what is new from it, then it is known.
			f.Close()
			return nil
		}
	}
	r := rc.newReader(f, ofi, p, h)
	if i := rc.findKnown(h); i >= 0 {
		r.restore(&rc.known[i])
		rc.known = append(rc.known[:i], rc.known[i+1:]...)
	} else if rc.firstPoll && rc.freshRun && rc.cfg.StartAt == StartAtEnd {
		r.offset = ofi.Size()
	} else if !rc.firstPoll && !liveName(p) {
		rc.countRotation(nil) // rotated before a poll saw it live
	}
	rc.readers = append(rc.readers, r)
	rc.byPath[p] = r
	rc.setDirty = true
	return r
}

// gzEntry is what is known of a .gz path, so that an unchanged file is
// decompressed once per run to be identified, not on every poll.
type gzEntry struct {
	fi   os.FileInfo
	info gzipInfo
	err  error // incomplete or unreadable: looked at again once it changes
	done bool  // read to its end (or known read before it was compressed)
}

// inspectGzipPath identifies the .gz at p by its decompressed start,
// reusing what an earlier poll found while the file is unchanged.
func (rc *operatorLogsReceiver) inspectGzipPath(p string, fi os.FileInfo) *gzEntry {
	if e := rc.gzSeen[p]; e != nil && sameFile(e.fi, fi) && e.fi.Size() == fi.Size() && e.fi.ModTime().Equal(fi.ModTime()) {
		return e
	}
	e := &gzEntry{fi: fi}
	f, err := os.Open(p)
	if err == nil {
		e.info, e.err = inspectGzip(f, rc.cfg.FingerprintSize)
		f.Close()
	} else {
		e.err = err
	}
	switch {
	case errors.Is(e.err, errGzipIncomplete):
		rc.logger.Debug("operatorlogs: compressed file is not complete yet; looked at again once it changes", zapPath(p))
	case e.err != nil:
		rc.logger.Warn("operatorlogs: compressed file is not readable gzip; skipped until it changes", zapPath(p), zap.Error(e.err))
	}
	rc.gzSeen[p] = e
	return e
}

// openGzip reads a compressed rotation unless it was read already: as the
// plain file it was before kubelet compressed it (an open reader or a
// checkpoint with the same fingerprint) or as this .gz. A checkpoint's
// offset counts decompressed bytes, so reading resumes where the plain file
// was left.
func (rc *operatorLogsReceiver) openGzip(p string, fi os.FileInfo) *reader {
	e := rc.inspectGzipPath(p, fi)
	if e.err != nil || e.done {
		return nil
	}
	h := e.info.head
	if len(h) == 0 {
		e.done = true // an empty stream: nothing to read
		return nil
	}
	for _, r := range rc.readers {
		if r.gz == nil && len(r.fp) > 0 && bytes.HasPrefix(h, r.fp) {
			return nil // its plain original is still open: that reader reads the rest
		}
	}
	i := rc.findKnown(h)
	if i >= 0 {
		if c := &rc.known[i]; c.Offset >= e.info.size && len(c.Partial) == 0 && c.Long == nil {
			e.done = true
			return nil
		}
	}
	f, err := os.Open(p)
	if err != nil {
		rc.logger.Warn("operatorlogs: cannot open log file", zapPath(p), zap.Error(err))
		return nil
	}
	ofi, err := f.Stat()
	if err != nil || !sameFile(ofi, fi) {
		f.Close()
		delete(rc.gzSeen, p) // replaced since it was inspected
		return nil
	}
	r := rc.newReader(f, ofi, p, h)
	r.gz = newGzipFile(f, e.info.size)
	r.rotated = true // a compressed file is never the live one
	if i >= 0 {
		r.restore(&rc.known[i])
		rc.known = append(rc.known[:i], rc.known[i+1:]...)
	} else if rc.firstPoll && rc.freshRun && rc.cfg.StartAt == StartAtEnd {
		r.offset = e.info.size
	} else if !rc.firstPoll {
		rc.countRotation(nil) // rotated and compressed before a poll saw it
	}
	rc.readers = append(rc.readers, r)
	rc.byPath[p] = r
	rc.setDirty = true
	return r
}

func (rc *operatorLogsReceiver) newReader(f *os.File, fi os.FileInfo, p string, fp []byte) *reader {
	r := &reader{rc: rc, f: f, info: fi, fp: fp, buf: make([]byte, rc.smallBuf()), rotated: !liveName(p), lastData: time.Now()}
	if rc.cfg.Format != FormatAuto {
		r.format = string(rc.cfg.Format)
	}
	r.setPath(p)
	return r
}

func (rc *operatorLogsReceiver) smallBuf() int { return max(smallBufSize, rc.cfg.MaxLineSize+64<<10) }
func (rc *operatorLogsReceiver) largeBuf() int { return max(largeBufSize, rc.smallBuf()) }

// findKnown returns the index of the checkpoint whose fingerprint the file
// starts with, preferring the longest (most specific) fingerprint.
func (rc *operatorLogsReceiver) findKnown(h []byte) int {
	best := -1
	for i := range rc.known {
		if rc.known[i].matches(h) && (best < 0 || len(rc.known[i].FP) > len(rc.known[best].FP)) {
			best = i
		}
	}
	return best
}

// resumeRotatedWhileDown handles files that were being tailed when the last
// run stopped, that kubelet renamed (and maybe compressed) meanwhile and
// that include does not cover under their new name: the rest is read from
// the rotated file beside the old path.
func (rc *operatorLogsReceiver) resumeRotatedWhileDown() {
	kept := rc.known[:0]
	for _, c := range rc.known {
		if !c.Active {
			kept = append(kept, c)
			continue
		}
		r := rc.openRotatedCopy(&c)
		if r == nil {
			c.Active = false
			kept = append(kept, c)
			continue
		}
		rc.logger.Info("operatorlogs: file rotated while stopped; reading the rest from the rotated file", zapPath(r.path), zapInt64("offset", c.Offset))
	}
	rc.known = kept
}

// openRotatedCopy opens, beside c.Path, the rotated file (plain or .gz)
// that starts with c's fingerprint and holds more than c.Offset bytes.
func (rc *operatorLogsReceiver) openRotatedCopy(c *fileCheckpoint) *reader {
	if f := findRotatedCopy(c.Path, c.FP, c.Offset); f != nil {
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil
		}
		r := rc.newReader(f, fi, f.Name(), c.FP)
		r.restore(c)
		r.gone = true // no include path leads to it: drained, then let go
		rc.readers = append(rc.readers, r)
		return r
	}
	dir, base := filepath.Split(c.Path)
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		name := e.Name()
		p := filepath.Join(dir, name)
		if !strings.HasPrefix(name, base+".") || !isCompressed(name) || !e.Type().IsRegular() || rc.excluded(p) {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		g := rc.inspectGzipPath(p, fi)
		if g.err != nil || !c.matches(g.info.head) || g.info.size <= c.Offset {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		ofi, err := f.Stat()
		if err != nil || !sameFile(ofi, fi) {
			f.Close()
			continue
		}
		r := rc.newReader(f, ofi, p, g.info.head)
		r.gz = newGzipFile(f, g.info.size)
		r.restore(c)
		rc.readers = append(rc.readers, r)
		return r
	}
	return nil
}

// retire remembers a closed file's checkpoint.
func (rc *operatorLogsReceiver) retire(c fileCheckpoint) {
	if len(c.FP) == 0 {
		return
	}
	c.Active, c.Partial, c.Long = false, nil, nil
	if len(rc.known) >= maxRetired {
		if !rc.warnedRetired {
			rc.warnedRetired = true
			rc.logger.Warn("operatorlogs: more rotated files are found than are remembered; after a restart the oldest may be read again. Narrow include or keep fewer rotations (kubelet containerLogMaxFiles).",
				zap.Int("remembered", maxRetired), zapPath(rc.known[0].Path))
		}
		rc.known = append(rc.known[:0], rc.known[1:]...)
	}
	rc.known = append(rc.known, c)
	rc.setDirty = true
}

// forgetAbsent drops retired checkpoints of files no include path has led
// to for a while: they keep a file that is matched again (a rotated name
// the glob covers, its .gz) from being read twice, and a file that is
// neither open nor present needs none. The grace covers a rename seen
// half-way by one poll.
func (rc *operatorLogsReceiver) forgetAbsent() {
	kept := rc.known[:0]
	for _, c := range rc.known {
		found := false
		for _, r := range rc.readers {
			if bytes.HasPrefix(r.fp, c.FP) {
				found = true
				break
			}
		}
		for _, e := range rc.gzSeen {
			if found {
				break
			}
			found = e.err == nil && c.matches(e.info.head)
		}
		if found {
			c.absent = 0
		} else if c.absent++; c.absent > forgetAfterPolls && !c.Active {
			rc.setDirty = true
			continue
		}
		kept = append(kept, c)
	}
	rc.known = kept
}

func (rc *operatorLogsReceiver) batchFull() bool {
	return rc.lines >= rc.cfg.MaxBatchLines || rc.bytes >= rc.cfg.MaxBatchBytes
}

// appendRecord adds one record to the batch under resource r.
func (rc *operatorLogsReceiver) appendRecord(r *resource, body string, ts uint64, stream uint8, truncated, bad bool) {
	if r.gen != rc.gen {
		rl := rc.ld.ResourceLogs().AppendEmpty()
		r.attrs.CopyTo(rl.Resource().Attributes())
		sl := rl.ScopeLogs().AppendEmpty()
		sl.Scope().SetName(scopeName)
		r.recs = sl.LogRecords()
		r.recs.EnsureCapacity(min(rc.cfg.MaxBatchLines, 1024))
		r.gen = rc.gen
	}
	lr := r.recs.AppendEmpty()
	lr.SetObservedTimestamp(rc.now)
	lr.SetTimestamp(pcommon.Timestamp(ts))
	lr.Body().SetStr(body)
	if stream != streamUnknown || truncated || bad {
		attrs := lr.Attributes()
		if stream != streamUnknown {
			attrs.PutStr(attrIOStream, streamNames[stream])
		}
		if truncated {
			attrs.PutBool(conventions.LogTruncated, true)
		}
		if bad {
			attrs.PutStr(conventions.LogParseError, reasonBadFrame)
		}
	}
	rc.lines++
	rc.bytes += len(body)
}

// flush hands the batch to the pipeline, retrying until it is accepted, and
// then advances the checkpoints. It fails only on shutdown, when the batch is
// abandoned without a checkpoint past it.
func (rc *operatorLogsReceiver) flush() error {
	if rc.lines == 0 {
		return nil
	}
	ld, n := rc.ld, rc.lines
	// A new Logs per batch: after ConsumeLogs the pipeline may still hold
	// the old one (queues), so it must never be reused.
	rc.ld, rc.lines, rc.bytes = plog.NewLogs(), 0, 0
	rc.gen++
	wait := retryInitial
	for {
		octx := rc.obs.StartLogsOp(rc.ctx)
		err := rc.next.ConsumeLogs(octx, ld)
		rc.obs.EndLogsOp(octx, typeStr, n, err)
		if err == nil {
			break
		}
		if consumererror.IsPermanent(err) {
			rc.droppedRecords.Add(int64(n))
			rc.logger.Error("operatorlogs: the pipeline refused a batch permanently; it is skipped",
				zap.Int("records", n), zap.Int64("dropped_records_total", rc.droppedRecords.Load()), zap.Error(err))
			break
		}
		if rc.ctx.Err() != nil {
			return rc.ctx.Err()
		}
		rc.updateLag() // lag grows while the pipeline pushes back: show it
		rc.logger.Warn("operatorlogs: the pipeline refused a batch; retrying the same batch",
			zap.Int("records", n), zap.Duration("backoff", wait), zap.Error(err))
		select {
		case <-rc.ctx.Done():
			return rc.ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, retryMax)
	}
	rc.commit()
	return nil
}

// commit persists every file's checkpoint (one document, so atomically).
func (rc *operatorLogsReceiver) commit() {
	rc.setDirty = false
	if !rc.storing() {
		return
	}
	doc := checkpointDoc{Files: make([]fileCheckpoint, 0, len(rc.readers)+len(rc.known))}
	for _, r := range rc.readers {
		if len(r.fp) > 0 {
			doc.Files = append(doc.Files, r.checkpoint())
		}
	}
	doc.Files = append(doc.Files, rc.known...)
	if rc.api != nil {
		doc.API = &rc.api.pos
	}
	data, err := json.Marshal(&doc)
	if err == nil {
		// Not the run context: a batch delivered during shutdown must
		// still be recorded as delivered.
		err = rc.client.Set(context.WithoutCancel(rc.ctx), checkpointKey, data)
	}
	if err != nil {
		rc.logger.Warn("operatorlogs: saving checkpoints failed; after a restart some lines may be read twice", zap.Error(err))
	}
}

// updateLag sets opsight_tail_lag_bytes per path: size minus read offset.
func (rc *operatorLogsReceiver) updateLag() {
	lag := make(map[string]int64, len(rc.readers))
	for _, r := range rc.readers {
		size, err := r.size()
		if err != nil {
			continue
		}
		if d := size - r.offset; d > 0 {
			lag[r.path] += d
		} else {
			lag[r.path] += 0
		}
	}
	for p, v := range lag {
		rc.metrics.TailLagBytes.WithLabelValues(p).Set(float64(v))
		rc.lagFiles[p] = true
	}
	for p := range rc.lagFiles {
		if _, ok := lag[p]; !ok {
			rc.metrics.TailLagBytes.DeleteLabelValues(p)
			delete(rc.lagFiles, p)
		}
	}
}
