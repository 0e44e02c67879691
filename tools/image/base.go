package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// The image's user: the distroless "nonroot" ids, numeric so Kubernetes'
// runAsNonRoot can verify it without reading /etc/passwd.
const (
	nonRootUID = 65532
	nonRootGID = 65532

	// BinaryPath is where the binary lives; the chart only passes args.
	BinaryPath = "/usr/local/bin/operator-sidecar"
	// CertFile is where Go (and OpenSSL-based tools) look for CA roots first.
	CertFile = "/etc/ssl/certs/ca-certificates.crt"
)

// file is one entry of a layer. Every field of the tar header comes from
// here or is fixed, so the layer's bytes depend on nothing else.
type file struct {
	path string // absolute, no trailing slash
	dir  bool
	mode int64
	uid  int
	body []byte
}

// baseFiles is everything the image holds besides the binary: no shell, no
// package manager, no libc (the binary is static).
func baseFiles(roots []byte) []file {
	return []file{
		{path: "/etc", dir: true, mode: 0o755},
		{path: "/etc/group", mode: 0o644, body: []byte("root:x:0:\nnonroot:x:65532:\n")},
		// Go's os/user and the collector's host detection read these; the
		// shell field names no existing program on purpose.
		{path: "/etc/passwd", mode: 0o644, body: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{path: "/etc/nsswitch.conf", mode: 0o644, body: []byte("hosts: files dns\n")},
		{path: "/etc/ssl", dir: true, mode: 0o755},
		{path: "/etc/ssl/certs", dir: true, mode: 0o755},
		{path: CertFile, mode: 0o644, body: roots},
		{path: "/home", dir: true, mode: 0o755},
		{path: "/home/nonroot", dir: true, mode: 0o700, uid: nonRootUID},
		{path: "/tmp", dir: true, mode: 0o1777},
		{path: "/var", dir: true, mode: 0o755},
		{path: "/var/lib", dir: true, mode: 0o755},
		// OPSIGHT_STATE_DIR's default; the chart mounts a volume over it,
		// a bare `docker run` still starts.
		{path: "/var/lib/opsight", dir: true, mode: 0o700, uid: nonRootUID},
	}
}

func binaryFiles(binary []byte) []file {
	return []file{
		{path: "/usr", dir: true, mode: 0o755},
		{path: "/usr/local", dir: true, mode: 0o755},
		{path: "/usr/local/bin", dir: true, mode: 0o755},
		{path: BinaryPath, mode: 0o755, body: binary},
	}
}

// caBundle is the PEM file of the Mozilla NSS roots from the Go module
// golang.org/x/crypto/x509roots/fallback/bundle (pinned by go.sum, so the
// same everywhere and fetched from the module proxy like any dependency).
// Roots Mozilla distrusts after a date are left out: a PEM file cannot carry
// that constraint, and trusting them for new certificates would be wrong.
func caBundle() (pemBytes []byte, n, skipped int, err error) {
	var buf bytes.Buffer
	for r := range bundle.Roots() {
		if r.Constraint != nil {
			skipped++
			continue
		}
		c, err := x509.ParseCertificate(r.Certificate)
		if err != nil {
			return nil, 0, 0, fmt.Errorf("CA bundle: %v", err)
		}
		fmt.Fprintf(&buf, "# %s\n", c.Subject)
		if err := pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate}); err != nil {
			return nil, 0, 0, err
		}
		n++
	}
	if n < 100 {
		return nil, 0, 0, fmt.Errorf("CA bundle: only %d roots in golang.org/x/crypto/x509roots/fallback/bundle, expected more than 100", n)
	}
	return buf.Bytes(), n, skipped, nil
}

// layerTar writes files as a tar stream in a fixed form: sorted by path,
// parents before children, ustar headers with the given time, numeric
// owners and no user or group names.
func layerTar(files []file, mtime time.Time) ([]byte, error) {
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b file) int { return strings.Compare(a.path, b.path) })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	seen := map[string]bool{}
	for _, f := range files {
		name := strings.TrimPrefix(f.path, "/")
		if parent := name[:max(0, strings.LastIndex(name, "/"))]; parent != "" && !seen[parent] {
			return nil, fmt.Errorf("layer: %s comes before its directory %s", f.path, parent)
		}
		seen[name] = true
		h := &tar.Header{Name: name, Mode: f.mode, Uid: f.uid, Gid: f.uid, ModTime: mtime.UTC().Truncate(time.Second), Format: tar.FormatUSTAR}
		if f.dir {
			h.Typeflag, h.Name = tar.TypeDir, name+"/"
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("layer: %s: %v", f.path, err)
		}
		if _, err := tw.Write(f.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// gzipLayer compresses the tar itself (zero gzip header: no name, no time)
// so the layer digest depends on the bytes and the Go version only;
// go-containerregistry keeps already-compressed input as it is.
func gzipLayer(tarBytes []byte) (v1.Layer, error) {
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(tarBytes); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	b := gz.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer))
}
