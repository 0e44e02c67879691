package simoperator

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// CRIWriter writes container log lines in the CRI format kubelet's runtime
// uses (`<RFC3339Nano> <stream> <P|F> <line>`), rotating like kubelet does:
// rename 0.log to 0.log.<timestamp>, start a new 0.log, gzip older ones and
// delete beyond maxFiles.
type CRIWriter struct {
	mu          sync.Mutex
	dir         string
	path        string
	f           *os.File
	size        int64
	rotateBytes int64
	maxFiles    int
	lines       int64
	rotations   int
	buf         []byte
}

// NewCRIWriter writes the first instance of a container: <dir>/0.log.
func NewCRIWriter(dir string, rotateBytes int64, maxFiles int) (*CRIWriter, error) {
	return NewCRIWriterInstance(dir, 0, rotateBytes, maxFiles)
}

// NewCRIWriterInstance writes the container after restart restarts:
// kubelet names its log <dir>/<restart>.log.
func NewCRIWriterInstance(dir string, restart int, rotateBytes int64, maxFiles int) (*CRIWriter, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	w := &CRIWriter{dir: dir, path: filepath.Join(dir, fmt.Sprintf("%d.log", restart)), rotateBytes: rotateBytes, maxFiles: maxFiles}
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	st, _ := f.Stat()
	w.f, w.size = f, st.Size()
	return w, nil
}

// WriteLine writes one operator line (without newline) to stream.
func (w *CRIWriter) WriteLine(now time.Time, stream, line string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = now.UTC().AppendFormat(w.buf[:0], time.RFC3339Nano)
	w.buf = append(w.buf, ' ')
	w.buf = append(w.buf, stream...)
	w.buf = append(w.buf, " F "...)
	w.buf = append(w.buf, line...)
	w.buf = append(w.buf, '\n')
	n, err := w.f.Write(w.buf)
	if err != nil {
		return err
	}
	w.size += int64(n)
	w.lines++
	if w.rotateBytes > 0 && w.size >= w.rotateBytes {
		return w.rotate(now)
	}
	return nil
}

func (w *CRIWriter) rotate(now time.Time) error {
	if err := w.f.Close(); err != nil {
		return err
	}
	rotated := w.path + "." + now.UTC().Format("20060102-150405.000000000")
	if err := os.Rename(w.path, rotated); err != nil {
		return err
	}
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	w.f, w.size = f, 0
	w.rotations++
	// kubelet compresses all but the most recent rotated file, then prunes.
	matches, _ := filepath.Glob(w.path + ".*")
	sort.Strings(matches)
	var plain []string
	for _, m := range matches {
		if !strings.HasSuffix(m, ".gz") && !strings.HasSuffix(m, ".tmp") {
			plain = append(plain, m)
		}
	}
	for i := 0; i < len(plain)-1; i++ {
		if err := gzipFile(plain[i]); err != nil {
			return err
		}
	}
	if w.maxFiles > 0 {
		matches, _ = filepath.Glob(w.path + ".*")
		sort.Strings(matches)
		for len(matches) > w.maxFiles-1 {
			_ = os.Remove(matches[0])
			matches = matches[1:]
		}
	}
	return nil
}

func gzipFile(path string) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := path + ".gz.tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(out)
	if _, err := io.Copy(zw, in); err != nil {
		out.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path+".gz"); err != nil {
		return err
	}
	return os.Remove(path)
}

// Rotations is how many times the file was rotated.
func (w *CRIWriter) Rotations() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rotations
}

// Close closes the current file.
func (w *CRIWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.f.Close()
}

// PodLogDir is kubelet's log directory for a container of a pod.
func PodLogDir(root, namespace, pod, uid, container string) string {
	return filepath.Join(root, fmt.Sprintf("%s_%s_%s", namespace, pod, uid), container)
}
