package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/x509"
	"debug/elf"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

const (
	testRevision = "0123456789abcdef0123456789abcdef01234567"
	testEpoch    = 1764547200 // 2025-12-01T00:00:00Z
)

// testRepo is the checkout to build: this one, or OPSIGHT_IMAGE_TEST_REPO
// (e.g. a `git archive` export when the working tree is mid-change).
func testRepo(t *testing.T) string {
	t.Helper()
	if r := os.Getenv("OPSIGHT_IMAGE_TEST_REPO"); r != "" {
		return r
	}
	r, err := findRepo(".")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The image as a cluster would meet it: built twice (same digest), pushed
// to a registry, pulled back by digest per platform, its config and files
// checked, and the amd64 binary run from the pulled root filesystem.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles operator-sidecar for two platforms, twice")
	}
	repo := testRepo(t)
	version, err := readVersion(repo)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := parsePlatforms("linux/amd64,linux/arm64")
	if err != nil {
		t.Fatal(err)
	}
	cfg := func() buildConfig {
		return buildConfig{Repo: repo, Package: "./operator-sidecar", Version: version, Revision: testRevision,
			Source: "https://github.com/opsight/opsight", Licenses: "NOASSERTION", Platforms: ps,
			Epoch: time.Unix(testEpoch, 0).UTC(), BinDir: t.TempDir(), Go: "go", Log: testLog{t}}
	}
	ctx := context.Background()
	res, err := build(ctx, cfg())
	if err != nil {
		t.Fatal(err)
	}
	digest, err := res.Index.Digest()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("reproducible", func(t *testing.T) {
		again, err := build(ctx, cfg()) // other binary directory, same inputs
		if err != nil {
			t.Fatal(err)
		}
		d2, err := again.Index.Digest()
		if err != nil {
			t.Fatal(err)
		}
		if d2 != digest {
			t.Errorf("two builds of the same inputs: index %s then %s", digest, d2)
		}
		for i := range res.Images {
			a, b := res.Images[i], again.Images[i]
			ba, _ := os.ReadFile(a.Binary)
			bb, _ := os.ReadFile(b.Binary)
			if !bytes.Equal(ba, bb) {
				// The packaging cannot fix this: either the Go build is not
				// reproducible or the source changed while the test ran.
				t.Errorf("%v: go build gave two different binaries (%d and %d bytes): did the working tree change during the test?", a.Platform, len(ba), len(bb))
			}
			if !bytes.Equal(a.SBOM, b.SBOM) {
				t.Errorf("%v: the SBOM differs between two builds", a.Platform)
			}
		}
	})

	dir := t.TempDir()
	layoutDir, sbomDir := filepath.Join(dir, "oci"), filepath.Join(dir, "sbom")
	if err := writeLayout(layoutDir, res.Index, version); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(sbomDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, pi := range res.Images {
		if err := os.WriteFile(filepath.Join(sbomDir, sbomName(version, pi.Platform)), pi.SBOM, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	srv := httptest.NewServer(registry.New(registry.WithReferrersSupport(true), registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	tag, err := name.NewTag(host+"/opsight/operator-sidecar:"+version, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	pushedDigest, meta, err := push(ctx, pushConfig{Layout: layoutDir, SBOMDir: sbomDir, To: tag, Tags: []string{"latest"}, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	if pushedDigest != digest {
		t.Fatalf("pushed index %s, built %s", pushedDigest, digest)
	}
	if meta.Index != tag.Context().Digest(digest.String()).String() || len(meta.Platforms) != 2 || len(meta.SBOMs) != 2 {
		t.Errorf("push metadata %+v: want the index, two platforms and two SBOMs", meta)
	}

	// Pull by digest, as a pinned deployment would.
	ref := tag.Context().Digest(digest.String())
	idx, err := remote.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if got := im.Annotations[annVersion]; got != version {
		t.Errorf("index annotation %s = %q, want %q", annVersion, got, version)
	}
	for _, tg := range []string{version, "latest"} {
		desc, err := remote.Head(tag.Context().Tag(tg))
		if err != nil || desc.Digest != digest {
			t.Errorf("tag %s: %v, digest %v, want %s", tg, err, desc, digest)
		}
	}
	var seen []string
	for _, m := range im.Manifests {
		if m.Platform == nil {
			t.Fatalf("manifest %s has no platform in the index", m.Digest)
		}
		plat := m.Platform.OS + "/" + m.Platform.Architecture
		seen = append(seen, plat)
		t.Run(plat, func(t *testing.T) {
			img, err := remote.Image(tag.Context().Digest(m.Digest.String()))
			if err != nil {
				t.Fatal(err)
			}
			checkConfig(t, img, *m.Platform, version)
			files := checkFiles(t, img, *m.Platform)
			checkSBOM(t, tag.Context().Digest(m.Digest.String()), filepath.Join(sbomDir, sbomName(version, *m.Platform)))
			if m.Platform.Architecture == "amd64" {
				runFromRootfs(t, files, version)
			}
		})
	}
	if strings.Join(seen, ",") != "linux/amd64,linux/arm64" {
		t.Errorf("index platforms %v, want linux/amd64 and linux/arm64", seen)
	}
}

func checkConfig(t *testing.T, img v1.Image, p v1.Platform, version string) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != p.OS || cf.Architecture != p.Architecture {
		t.Errorf("config platform %s/%s, index says %s/%s", cf.OS, cf.Architecture, p.OS, p.Architecture)
	}
	if cf.Config.User != "65532" {
		t.Errorf("user %q, want the numeric non-root 65532 (runAsNonRoot checks it)", cf.Config.User)
	}
	if strings.Join(cf.Config.Entrypoint, " ") != BinaryPath || len(cf.Config.Cmd) != 0 {
		t.Errorf("entrypoint %q cmd %q, want [%s] and no cmd (the chart passes args only)", cf.Config.Entrypoint, cf.Config.Cmd, BinaryPath)
	}
	for k, want := range map[string]string{annSource: "https://github.com/opsight/opsight", annRevision: testRevision,
		annVersion: version, annLicenses: "NOASSERTION", annCreated: "2025-12-01T00:00:00Z"} {
		if got := cf.Config.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}
	if !cf.Created.Time.Equal(time.Unix(testEpoch, 0)) {
		t.Errorf("created %v, want the epoch %v", cf.Created, time.Unix(testEpoch, 0).UTC())
	}
}

type entry struct {
	hdr  *tar.Header
	body []byte
}

// checkFiles reads the flattened root filesystem and checks what must and
// must not be in it.
func checkFiles(t *testing.T, img v1.Image, p v1.Platform) map[string]entry {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]entry{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		n := "/" + strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		files[n] = entry{h, b}
		if !h.ModTime.Equal(time.Unix(testEpoch, 0)) {
			t.Errorf("%s: mtime %v, want the epoch", n, h.ModTime)
		}
		if h.Uname != "" || h.Gname != "" || (h.Uid != 0 && h.Uid != nonRootUID) {
			t.Errorf("%s: owner %d/%q, want numeric 0 or %d only", n, h.Uid, h.Uname, nonRootUID)
		}
	}
	for _, shell := range []string{"/bin/sh", "/bin/bash", "/bin/busybox", "/usr/bin/sh", "/bin"} {
		if _, ok := files[shell]; ok {
			t.Errorf("%s is in the image: it must hold no shell", shell)
		}
	}
	bin, ok := files[BinaryPath]
	if !ok {
		t.Fatalf("%s missing; files: %v", BinaryPath, keys(files))
	}
	if bin.hdr.Mode&0o777 != 0o755 || bin.hdr.Uid != 0 {
		t.Errorf("%s: mode %o uid %d, want 755 owned by root (the non-root user cannot replace it)", BinaryPath, bin.hdr.Mode, bin.hdr.Uid)
	}
	ef, err := elf.NewFile(bytes.NewReader(bin.body))
	if err != nil {
		t.Fatalf("%s is not an ELF binary: %v", BinaryPath, err)
	}
	wantMachine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[p.Architecture]
	if ef.Machine != wantMachine {
		t.Errorf("%s is built for %v, the index says %s", BinaryPath, ef.Machine, p.Architecture)
	}
	for _, prog := range ef.Progs {
		if prog.Type == elf.PT_INTERP {
			t.Errorf("%s has a dynamic loader (PT_INTERP): it must be static (CGO_ENABLED=0)", BinaryPath)
		}
	}
	if ef.Section(".symtab") != nil || ef.Section(".debug_info") != nil {
		t.Errorf("%s keeps its symbol table or DWARF: it should be built with -ldflags '-s -w'", BinaryPath)
	}
	pool, n := x509.NewCertPool(), 0
	rest := files[CertFile].body
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatalf("%s: %v", CertFile, err)
		}
		pool.AddCert(c)
		n++
	}
	if n < 100 {
		t.Errorf("%s holds %d CA roots, want the Mozilla set (more than 100)", CertFile, n)
	}
	if !strings.Contains(string(files["/etc/passwd"].body), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd lacks the nonroot user: %q", files["/etc/passwd"].body)
	}
	for dir, uid := range map[string]int{"/tmp": 0, "/home/nonroot": nonRootUID, "/var/lib/opsight": nonRootUID} {
		if e, ok := files[dir]; !ok || e.hdr.Typeflag != tar.TypeDir || e.hdr.Uid != uid {
			t.Errorf("%s: want a directory owned by %d", dir, uid)
		}
	}
	return files
}

// checkSBOM finds the platform's SBOM through the referrers API and
// compares it with the file build wrote.
func checkSBOM(t *testing.T, subject name.Digest, file string) {
	t.Helper()
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	refs, err := remote.Referrers(subject)
	if err != nil {
		t.Fatal(err)
	}
	rm, err := refs.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(rm.Manifests) != 1 {
		t.Fatalf("referrers of %s: %+v, want the SBOM only", subject, rm.Manifests)
	}
	// The artifact's own manifest, not the referrers descriptor: the
	// in-process registry reports config.mediaType as artifactType where
	// the distribution spec (and ghcr.io's fallback tag) take artifactType.
	art, err := remote.Image(subject.Context().Digest(rm.Manifests[0].Digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	am, err := art.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if am.ArtifactType != cdxMediaType || am.Subject == nil || am.Subject.Digest.String() != subject.DigestStr() {
		t.Errorf("SBOM manifest: artifactType %q subject %v, want %s about %s", am.ArtifactType, am.Subject, cdxMediaType, subject.DigestStr())
	}
	ls, err := art.Layers()
	if err != nil || len(ls) != 1 {
		t.Fatalf("SBOM artifact: %d layers, %v", len(ls), err)
	}
	rc, err := ls[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the SBOM in the registry differs from %s", file)
	}
	var bom cdxBOM
	if err := json.Unmarshal(got, &bom); err != nil {
		t.Fatal(err)
	}
	mods := map[string]bool{}
	for _, c := range bom.Components {
		mods[c.Name] = true
	}
	for _, m := range []string{"go.opentelemetry.io/collector/otelcol", "stdlib"} {
		if !mods[m] {
			t.Errorf("SBOM lacks %s (%d components)", m, len(bom.Components))
		}
	}
}

// runFromRootfs writes the pulled files to disk and runs the binary from
// there: --version shows the stamped values, env-config renders the
// OPSIGHT_* pipeline, and the real process tails a log file and counts its
// line on /metrics.
func runFromRootfs(t *testing.T, files map[string]entry, version string) {
	t.Helper()
	root := t.TempDir()
	for n, e := range files {
		p := filepath.Join(root, n)
		if e.hdr.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, e.body, os.FileMode(e.hdr.Mode)&0o777); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(root, BinaryPath)
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("--version: %v\n%s", err, out)
	}
	if want := fmt.Sprintf("operator-sidecar, version %s (revision: %s)", version, testRevision); !strings.Contains(string(out), want) {
		t.Errorf("--version printed %q, want %q (VERSION and the stamp disagree?)", out, want)
	}

	work := t.TempDir()
	logFile := filepath.Join(work, "op.log")
	if err := os.WriteFile(logFile, []byte(`{"level":"info","msg":"Reconciling","controller":"demo","reconcileID":"r1"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	metricsAddr := freeAddr(t)
	env := []string{"OPSIGHT_LOG_INCLUDE=" + logFile, "OPSIGHT_STATE_DIR=" + filepath.Join(work, "state"),
		"OPSIGHT_REVISION=" + version, "OPSIGHT_METRICS_ADDR=" + metricsAddr,
		"OPSIGHT_OTLP_GRPC_ADDR=" + freeAddr(t), "OPSIGHT_OTLP_HTTP_ADDR=" + freeAddr(t),
		"SSL_CERT_FILE=" + filepath.Join(root, CertFile), "HOME=" + work, "GOMAXPROCS=1"}

	cmd := exec.Command(bin, "env-config")
	cmd.Env = env
	out, err = cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("env-config: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), logFile) {
		t.Errorf("env-config output does not tail %s:\n%s", logFile, out)
	}

	var stderr bytes.Buffer
	cmd = exec.Command(bin)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("the sidecar did not exit cleanly on SIGTERM: %v\n%s", err, stderr.String())
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("the sidecar ignored SIGTERM for 15 s")
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("the sidecar exited: %v\n%s", err, stderr.String())
		default:
		}
		if resp, err := http.Get("http://" + metricsAddr + "/metrics"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = string(b)
			if strings.Contains(last, "opsight_log_records_total{") {
				return
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Errorf("no opsight_log_records_total on /metrics within 30 s; last scrape:\n%.2000s\nsidecar output:\n%s", last, stderr.String())
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func keys(m map[string]entry) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
