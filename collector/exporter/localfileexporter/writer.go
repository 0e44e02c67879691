package localfileexporter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.uber.org/zap"
)

// nameTime is the <start> of a file name: UTC, sortable, nanoseconds so two
// rotations in the same second get distinct names.
const nameTime = "20060102T150405.000000000Z"

// fileWriter is one exporter instance's handle on a rotating file set.
type fileWriter struct {
	cfg            *Config
	prefix, suffix string
	logger         *zap.Logger
	r              *rotator
	failed         prometheus.Counter // opsight_export_failed_total{reason="write"}
}

func newFileWriter(cfg *Config, prefix, suffix string, logger *zap.Logger, failed prometheus.Counter) *fileWriter {
	return &fileWriter{cfg: cfg, prefix: prefix, suffix: suffix, logger: logger, failed: failed}
}

func (w *fileWriter) start(context.Context, component.Host) error {
	r, err := acquire(w.cfg, w.prefix, w.suffix, w.logger)
	if err != nil {
		return err
	}
	w.r = r
	return nil
}

func (w *fileWriter) shutdown(context.Context) error {
	if w.r == nil {
		return nil
	}
	err := release(w.r)
	w.r = nil
	return err
}

// write appends buf, whose lines end at the offsets in ends, and fsyncs.
func (w *fileWriter) write(buf []byte, ends []int) error {
	if w.r == nil {
		return errors.New("localfile exporter: not started")
	}
	err := w.r.write(buf, ends)
	if err != nil && w.failed != nil {
		w.failed.Inc()
	}
	return err
}

// rotators are shared by path+prefix: two pipelines using the same
// component (or two components on the same directory) must not interleave
// partial lines or race on rotation.
var (
	rotatorsMu sync.Mutex
	rotators   = map[string]*rotator{}
)

func acquire(cfg *Config, prefix, suffix string, logger *zap.Logger) (*rotator, error) {
	dir, err := filepath.Abs(cfg.Directory)
	if err != nil {
		return nil, fmt.Errorf("directory %q: %w", cfg.Directory, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("directory %q cannot be created: %w; make it writable or choose another", dir, err)
	}
	key := filepath.Join(dir, prefix)
	rotatorsMu.Lock()
	defer rotatorsMu.Unlock()
	if r, ok := rotators[key]; ok {
		r.refs++
		return r, nil
	}
	r := &rotator{key: key, dir: dir, prefix: prefix, suffix: suffix, maxBytes: cfg.MaxFileBytes, maxFiles: cfg.MaxFiles, logger: logger, refs: 1}
	rotators[key] = r
	return r, nil
}

func release(r *rotator) error {
	rotatorsMu.Lock()
	defer rotatorsMu.Unlock()
	r.refs--
	if r.refs > 0 {
		return nil
	}
	delete(rotators, r.key)
	return r.close()
}

type rotator struct {
	key, dir, prefix, suffix string
	maxBytes                 int64
	maxFiles                 int
	logger                   *zap.Logger
	refs                     int // guarded by rotatorsMu

	mu       sync.Mutex
	f        *os.File
	size     int64
	lastName string
}

func (r *rotator) write(buf []byte, ends []int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	chunkStart, lineStart := 0, 0
	for _, end := range ends {
		if r.f != nil && r.size+int64(end-chunkStart) > r.maxBytes && r.size+int64(lineStart-chunkStart) > 0 {
			// This line would overflow the file: write what precedes it,
			// then continue in a new file. A line is never split.
			if err := r.append(buf[chunkStart:lineStart]); err != nil {
				return err
			}
			if err := r.closeFile(); err != nil {
				return err
			}
			chunkStart = lineStart
		}
		if r.f == nil {
			if err := r.open(); err != nil {
				return err
			}
		}
		lineStart = end
	}
	if err := r.append(buf[chunkStart:lineStart]); err != nil {
		return err
	}
	if r.f == nil {
		return nil
	}
	if err := r.f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", r.f.Name(), err)
	}
	return nil
}

// append writes b whole or, on error, cuts the file back so it never ends
// with a partial line.
func (r *rotator) append(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	n, err := r.f.Write(b)
	if err == nil {
		r.size += int64(n)
		return nil
	}
	name := r.f.Name()
	if terr := r.f.Truncate(r.size); terr != nil {
		// The file may end in a partial line; start a fresh one next time.
		r.logger.Error("cannot cut a failed write back; the file may end with a partial line", zap.String("file", name), zap.Error(terr))
		_ = r.f.Close()
		r.f = nil
	}
	return fmt.Errorf("writing %s: %w (check free space and permissions of the directory)", name, err)
}

func (r *rotator) open() error {
	entries, err := r.list()
	if err != nil {
		return err
	}
	if r.lastName == "" && len(entries) > 0 {
		// First file since start: continue the newest one if it has room,
		// so restarts do not add a file each (and max_files never prunes
		// what a few restarts wrote).
		if ok, err := r.reopen(entries[len(entries)-1]); err != nil || ok {
			return err
		}
	}
	t := time.Now().UTC()
	newest := r.lastName
	if len(entries) > 0 && entries[len(entries)-1] > newest {
		newest = entries[len(entries)-1]
	}
	var f *os.File
	var name string
	for range 1000 {
		name = r.prefix + t.Format(nameTime) + r.suffix
		if name <= newest {
			// Clock behind an existing file: keep names sorting by age so
			// max_files removes the oldest.
			if prev, perr := time.Parse(nameTime, strings.TrimSuffix(strings.TrimPrefix(newest, r.prefix), r.suffix)); perr == nil {
				t = prev.Add(time.Nanosecond)
				continue
			}
		}
		f, err = os.OpenFile(filepath.Join(r.dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o644)
		if errors.Is(err, fs.ErrExist) {
			t = t.Add(time.Nanosecond)
			continue
		}
		break
	}
	if err != nil {
		return fmt.Errorf("creating %s in %s: %w", name, r.dir, err)
	}
	if f == nil {
		return fmt.Errorf("creating a file in %s: no free name", r.dir)
	}
	r.f, r.size, r.lastName = f, 0, name
	r.prune(append(entries, name))
	syncDir(r.dir)
	return nil
}

// reopen appends to name when it is below max_file_bytes. A partial last
// line (the process died mid-write, before the batch was acknowledged, so
// the receiver sends it again) is cut off first.
func (r *rotator) reopen(name string) (bool, error) {
	path := filepath.Join(r.dir, name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0o644)
	if err != nil {
		return false, nil // not usable: start a new file
	}
	size, err := completeSize(f)
	if err != nil || size >= r.maxBytes {
		_ = f.Close()
		return false, nil
	}
	if err := f.Truncate(size); err != nil {
		_ = f.Close()
		return false, nil
	}
	r.f, r.size, r.lastName = f, size, name
	return true, nil
}

// completeSize is the length of f up to and including its last newline.
func completeSize(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	end := st.Size()
	buf := make([]byte, 64<<10)
	for end > 0 {
		n := int64(len(buf))
		if n > end {
			n = end
		}
		if _, err := f.ReadAt(buf[:n], end-n); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return end - n + int64(i) + 1, nil
		}
		end -= n
	}
	return 0, nil
}

// list returns this signal's files in the directory, oldest first.
func (r *rotator) list() ([]string, error) {
	des, err := os.ReadDir(r.dir)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", r.dir, err)
	}
	var names []string
	for _, de := range des {
		n := de.Name()
		if de.Type().IsRegular() && strings.HasPrefix(n, r.prefix) && strings.HasSuffix(n, r.suffix) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}

// prune removes the oldest files beyond max_files; names includes the new
// current file (last), which is never removed.
func (r *rotator) prune(names []string) {
	if r.maxFiles <= 0 || len(names) <= r.maxFiles {
		return
	}
	sort.Strings(names)
	for _, n := range names[:len(names)-r.maxFiles] {
		if n == r.lastName {
			continue
		}
		if err := os.Remove(filepath.Join(r.dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			r.logger.Warn("cannot remove an old file beyond max_files", zap.String("file", n), zap.Error(err))
		}
	}
}

func (r *rotator) closeFile() error {
	if r.f == nil {
		return nil
	}
	f := r.f
	r.f = nil
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("fsync %s: %w", f.Name(), err)
	}
	return f.Close()
}

func (r *rotator) close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closeFile()
}

// syncDir makes a new file's directory entry durable (best effort: some
// filesystems refuse fsync on directories).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
