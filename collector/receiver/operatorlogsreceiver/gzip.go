package operatorlogsreceiver

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
)

// gzipMagic starts every gzip member (RFC 1952). A log file in any of the
// framings this receiver reads starts with a digit or '{', never with it.
var gzipMagic = [2]byte{0x1f, 0x8b}

func isGzipHead(h []byte) bool { return len(h) >= 2 && h[0] == gzipMagic[0] && h[1] == gzipMagic[1] }

// errGzipIncomplete means the compressed stream ends before its trailer: a
// .gz still being written (or cut short). It is looked at again once it
// changes.
var errGzipIncomplete = errors.New("gzip stream ends before its trailer")

// gzipInfo is what one pass over a complete .gz tells: the fingerprint of
// its decompressed start and its decompressed size.
type gzipInfo struct {
	head []byte
	size int64
}

// inspectGzip decompresses r from its start to its end, in bounded memory,
// and reports the decompressed head (up to fpSize bytes) and size. It fails
// unless the stream ends cleanly: every member's trailer (CRC-32 and length)
// present and correct, nothing after the last member. So a .gz still being
// written is never taken for a complete file.
func inspectGzip(r io.Reader, fpSize int) (gzipInfo, error) {
	zr, err := gzip.NewReader(bufio.NewReaderSize(r, 64<<10))
	if err != nil {
		return gzipInfo{}, gzipErr(err)
	}
	defer zr.Close()
	head := make([]byte, fpSize)
	n, err := io.ReadFull(zr, head)
	info := gzipInfo{head: head[:n], size: int64(n)}
	switch {
	case err == nil:
		m, err := io.Copy(io.Discard, zr)
		info.size += m
		if err != nil {
			return gzipInfo{}, gzipErr(err)
		}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		// ReadFull's short read: the stream ended inside the head. Whether
		// it ended cleanly is what one more read says.
		if _, err := zr.Read(make([]byte, 1)); err != io.EOF {
			return gzipInfo{}, gzipErr(err)
		}
	default:
		return gzipInfo{}, gzipErr(err)
	}
	return info, nil
}

func gzipErr(err error) error {
	if err == nil {
		// Data where the stream had ended: it is still changing.
		return fmt.Errorf("%w: it grew while being read", errGzipIncomplete)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return errGzipIncomplete
	}
	return err
}

// gzipFile reads a complete .gz as the plain file it was: offsets are
// decompressed bytes, so a checkpoint taken on the plain rotated file
// applies to its compressed copy. Reads are expected in order (the reader
// reads at its offset, which only grows); an earlier offset starts the
// stream over, a later one skips forward. Memory stays bounded: gzip's
// window plus one bufio buffer.
type gzipFile struct {
	f    *os.File
	br   *bufio.Reader
	zr   *gzip.Reader
	pos  int64 // decompressed offset zr is at
	size int64 // decompressed size, from inspectGzip
}

func newGzipFile(f *os.File, size int64) *gzipFile { return &gzipFile{f: f, size: size} }

func (g *gzipFile) rewind() error {
	sr := io.NewSectionReader(g.f, 0, 1<<62)
	if g.br == nil {
		g.br = bufio.NewReaderSize(sr, 64<<10)
	} else {
		g.br.Reset(sr)
	}
	if g.zr == nil {
		zr, err := gzip.NewReader(g.br)
		if err != nil {
			return err
		}
		g.zr = zr
	} else if err := g.zr.Reset(g.br); err != nil {
		return err
	}
	g.pos = 0
	return nil
}

// ReadAt fills p from decompressed offset off. At the end it returns what
// there is and io.EOF. The file was checked complete before it was opened,
// so a stream that now ends early is an error (the file was replaced).
func (g *gzipFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= g.size {
		return 0, io.EOF
	}
	if g.zr == nil || off < g.pos {
		if err := g.rewind(); err != nil {
			return 0, fmt.Errorf("reopening the gzip stream: %w", err)
		}
	}
	if off > g.pos {
		m, err := io.CopyN(io.Discard, g.zr, off-g.pos)
		g.pos += m
		if err != nil {
			return 0, fmt.Errorf("skipping to decompressed offset %d: %w", off, err)
		}
	}
	if rest := g.size - off; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := io.ReadFull(g.zr, p)
	g.pos += int64(n)
	if err != nil {
		return n, fmt.Errorf("reading decompressed offset %d: %w", off, err)
	}
	if g.pos == g.size {
		return n, io.EOF
	}
	return n, nil
}

func (g *gzipFile) Close() {
	if g.zr != nil {
		g.zr.Close()
	}
}
