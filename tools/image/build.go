package main

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// rootModule is the module whose binary the image carries.
const rootModule = "github.com/opsight/opsight"

// OCI annotation and label keys (image-spec annotations.md).
const (
	annSource   = "org.opencontainers.image.source"
	annRevision = "org.opencontainers.image.revision"
	annVersion  = "org.opencontainers.image.version"
	annLicenses = "org.opencontainers.image.licenses"
	annCreated  = "org.opencontainers.image.created"
	annTitle    = "org.opencontainers.image.title"
	annDesc     = "org.opencontainers.image.description"
	annRefName  = "org.opencontainers.image.ref.name"
)

type buildConfig struct {
	Repo      string // root of the opsight checkout (holds go.mod and VERSION)
	Package   string // package to build, relative to Repo
	Version   string
	Revision  string
	Source    string
	Licenses  string
	Platforms []v1.Platform
	Epoch     time.Time // every timestamp in the image
	BinDir    string    // where the per-platform binaries are kept
	Go        string    // go command
	Log       io.Writer
}

type platformImage struct {
	Platform v1.Platform
	Binary   string // path of the compiled binary
	Image    v1.Image
	SBOM     []byte // CycloneDX JSON of the binary
}

type buildResult struct {
	Index        v1.ImageIndex
	Images       []platformImage
	Roots        int // CA roots in the image
	SkippedRoots int // distrusted-after roots left out
}

// ldflags stamps internal/buildinfo; -s -w drop the symbol table and DWARF
// (panics still print file:line from the pclntab).
func ldflags(version, revision string) string {
	return fmt.Sprintf("-s -w -X %[1]s/internal/buildinfo.version=%[2]s -X %[1]s/internal/buildinfo.revision=%[3]s",
		rootModule, version, revision)
}

// compile builds one static binary. Everything that could differ between
// two machines is pinned: no cgo, no paths (-trimpath), no VCS stamping (the
// revision comes from -X), the baseline CPU level. time/tzdata is embedded
// (-tags timetzdata, ~450 KB) so the binary behaves the same inside and
// outside the image and the image needs no /usr/share/zoneinfo.
func compile(ctx context.Context, cfg buildConfig, p v1.Platform, out string) error {
	cmd := exec.CommandContext(ctx, cfg.Go, "build", "-trimpath", "-buildvcs=false", "-tags", "timetzdata",
		"-ldflags", ldflags(cfg.Version, cfg.Revision), "-o", out, cfg.Package)
	cmd.Dir = cfg.Repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture,
		"GOAMD64=v1", "GOARM64=v8.0", "GOFLAGS=", "GOEXPERIMENT=")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s for %s/%s in %s: %v\n%s", cfg.Package, p.OS, p.Architecture, cfg.Repo, err, stderr.Bytes())
	}
	return nil
}

func build(ctx context.Context, cfg buildConfig) (*buildResult, error) {
	roots, n, skipped, err := caBundle()
	if err != nil {
		return nil, err
	}
	baseTar, err := layerTar(baseFiles(roots), cfg.Epoch)
	if err != nil {
		return nil, err
	}
	base, err := gzipLayer(baseTar)
	if err != nil {
		return nil, err
	}
	res := &buildResult{Roots: n, SkippedRoots: skipped}
	labels := map[string]string{
		annSource: cfg.Source, annRevision: cfg.Revision, annVersion: cfg.Version, annLicenses: cfg.Licenses,
		annCreated: cfg.Epoch.UTC().Format(time.RFC3339), annTitle: "operator-sidecar",
		annDesc: "opsight sidecar, admission webhook and gateway: an OpenTelemetry Collector distribution for Kubernetes operators",
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	if err := os.MkdirAll(cfg.BinDir, 0o755); err != nil {
		return nil, err
	}
	for _, p := range cfg.Platforms {
		bin := filepath.Join(cfg.BinDir, fmt.Sprintf("operator-sidecar_%s_%s", p.OS, p.Architecture))
		start := time.Now()
		if err := compile(ctx, cfg, p, bin); err != nil {
			return nil, err
		}
		body, err := os.ReadFile(bin)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(cfg.Log, "compiled %s/%s: %s, %d bytes, %v\n", p.OS, p.Architecture, bin, len(body), time.Since(start).Round(time.Second))
		img, err := platformImg(cfg, p, base, body, labels)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %v", p.OS, p.Architecture, err)
		}
		bi, err := buildinfo.Read(bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("%s: reading the module list the go command embedded: %v", bin, err)
		}
		sbom, err := cycloneDX(bi, body, cfg, p)
		if err != nil {
			return nil, err
		}
		p := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
		res.Images = append(res.Images, platformImage{Platform: p, Binary: bin, Image: img, SBOM: sbom})
	}
	anns, ok := mutate.Annotations(idx, labels).(v1.ImageIndex)
	if !ok {
		return nil, errors.New("annotating the index: go-containerregistry returned no index")
	}
	res.Index = anns
	return res, nil
}

// platformImg is one platform's image: the shared base layer (same digest
// for every platform and release, so registries and nodes keep one copy) and
// the binary's layer.
func platformImg(cfg buildConfig, p v1.Platform, base v1.Layer, binary []byte, labels map[string]string) (v1.Image, error) {
	binTar, err := layerTar(binaryFiles(binary), cfg.Epoch)
	if err != nil {
		return nil, err
	}
	app, err := gzipLayer(binTar)
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: cfg.Epoch.UTC()}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: v1.History{Created: created,
			CreatedBy: "tools/image: CA roots (x509roots/fallback), passwd/group (nonroot 65532), /tmp, /var/lib/opsight", Comment: "base"}},
		mutate.Addendum{Layer: app, MediaType: types.OCILayer, History: v1.History{Created: created,
			CreatedBy: "go build -trimpath -tags timetzdata -ldflags '" + ldflags(cfg.Version, cfg.Revision) + "' " + cfg.Package, Comment: "operator-sidecar"}},
	)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Created = created
	cf.Author = cfg.Source
	cf.Config = v1.Config{
		User:       strconv.Itoa(nonRootUID),
		Entrypoint: []string{BinaryPath},
		WorkingDir: "/",
		Env: []string{
			"PATH=/usr/local/bin",
			"SSL_CERT_FILE=" + CertFile,
		},
		Labels: labels,
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	annotated, ok := mutate.Annotations(img, labels).(v1.Image)
	if !ok {
		return nil, errors.New("annotating the image: go-containerregistry returned no image")
	}
	return annotated, nil
}

// writeLayout replaces dir with an OCI image layout whose index.json names
// the image index under the version (ref.name), as crane, skopeo and oras
// read it. dir is removed first only when it is an OCI layout already.
func writeLayout(dir string, idx v1.ImageIndex, version string) error {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
			return fmt.Errorf("--out %s exists and is not an OCI image layout: refusing to replace it; pick an empty or new directory", dir)
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendIndex(idx, layout.WithAnnotations(map[string]string{annRefName: version}))
}

func sbomName(version string, p v1.Platform) string {
	return fmt.Sprintf("operator-sidecar_%s_%s_%s.cdx.json", version, p.OS, p.Architecture)
}

func parsePlatforms(s string) ([]v1.Platform, error) {
	var ps []v1.Platform
	for f := range strings.SplitSeq(s, ",") {
		p, err := v1.ParsePlatform(strings.TrimSpace(f))
		if err != nil || p.OS != "linux" || p.Architecture == "" {
			return nil, fmt.Errorf("--platforms %q: expected a comma-separated list such as linux/amd64,linux/arm64", s)
		}
		ps = append(ps, *p)
	}
	return ps, nil
}

// findRepo walks up from dir to the checkout of the root module.
func findRepo(dir string) (string, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for range 20 {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.HasPrefix(string(b), "module "+rootModule+"\n") {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	return "", fmt.Errorf("no checkout of %s above %s: pass --repo DIR", rootModule, dir)
}

func readVersion(repo string) (string, error) {
	b, err := os.ReadFile(filepath.Join(repo, "VERSION"))
	if err != nil {
		return "", fmt.Errorf("reading the release version: %v (or pass --version)", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func gitOutput(repo string, args ...string) (string, error) {
	cmd := exec.Command("git", append([]string{"-C", repo}, args...)...)
	out, err := cmd.Output()
	return strings.TrimSpace(string(out)), err
}

func runBuild(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("image build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	repo := fs.String("repo", "", "opsight checkout to build (default: the one above the working directory)")
	version := fs.String("version", "", "release version stamped into the binary and naming the image (default: the VERSION file)")
	revision := fs.String("revision", "", "git commit stamped into the binary and the labels (default: git rev-parse HEAD)")
	epoch := fs.String("epoch", os.Getenv("SOURCE_DATE_EPOCH"), "unix seconds for every timestamp in the image (default: $SOURCE_DATE_EPOCH, else the commit time)")
	source := fs.String("source", "https://github.com/opsight/opsight", "org.opencontainers.image.source label")
	licenses := fs.String("licenses", "NOASSERTION", "org.opencontainers.image.licenses label, an SPDX expression (NOASSERTION: the repository has no LICENSE file yet)")
	platforms := fs.String("platforms", "linux/amd64,linux/arm64", "platforms of the image index")
	pkg := fs.String("package", "./operator-sidecar", "package to build, relative to --repo")
	out := fs.String("out", "", "OCI image layout directory to write (default: REPO/dist/oci)")
	sbomDir := fs.String("sbom-dir", "", "where the CycloneDX SBOMs go (default: REPO/dist/sbom)")
	binDir := fs.String("bin-dir", "", "where the compiled binaries go (default: REPO/dist/bin)")
	goCmd := fs.String("go", "go", "go command")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "image build: unexpected argument %q: every input is a flag\n", fs.Arg(0))
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "image build: "+format+"\n", a...)
		return 1
	}
	var err error
	if *repo == "" {
		if *repo, err = findRepo("."); err != nil {
			return fail("%v", err)
		}
	}
	if *version == "" {
		if *version, err = readVersion(*repo); err != nil {
			return fail("%v", err)
		}
	}
	if *revision == "" {
		if *revision, err = gitOutput(*repo, "rev-parse", "HEAD"); err != nil || *revision == "" {
			return fail("no --revision and `git rev-parse HEAD` in %s failed (%v): pass --revision SHA", *repo, err)
		}
	}
	if *epoch == "" {
		if *epoch, err = gitOutput(*repo, "log", "-1", "--format=%ct"); err != nil {
			return fail("no --epoch, no SOURCE_DATE_EPOCH and no commit time from git (%v): pass --epoch UNIX_SECONDS", err)
		}
	}
	sec, err := strconv.ParseInt(*epoch, 10, 64)
	if err != nil || sec < 0 {
		return fail("--epoch %q: expected unix seconds (e.g. $(git log -1 --format=%%ct))", *epoch)
	}
	ps, err := parsePlatforms(*platforms)
	if err != nil {
		return fail("%v", err)
	}
	if *out == "" {
		*out = filepath.Join(*repo, "dist", "oci")
	}
	if *sbomDir == "" {
		*sbomDir = filepath.Join(*repo, "dist", "sbom")
	}
	if *binDir == "" {
		*binDir = filepath.Join(*repo, "dist", "bin")
	}
	cfg := buildConfig{Repo: *repo, Package: *pkg, Version: *version, Revision: *revision, Source: *source,
		Licenses: *licenses, Platforms: ps, Epoch: time.Unix(sec, 0).UTC(), BinDir: *binDir, Go: *goCmd, Log: stdout}
	start := time.Now()
	res, err := build(context.Background(), cfg)
	if err != nil {
		return fail("%v", err)
	}
	if err := writeLayout(*out, res.Index, *version); err != nil {
		return fail("writing the layout: %v", err)
	}
	if err := os.MkdirAll(*sbomDir, 0o755); err != nil {
		return fail("%v", err)
	}
	for _, pi := range res.Images {
		if err := os.WriteFile(filepath.Join(*sbomDir, sbomName(*version, pi.Platform)), pi.SBOM, 0o644); err != nil {
			return fail("writing the SBOM: %v", err)
		}
	}
	d, err := res.Index.Digest()
	if err != nil {
		return fail("%v", err)
	}
	fmt.Fprintf(stdout, "CA roots: %d (%d with a distrust-after date left out)\n", res.Roots, res.SkippedRoots)
	for _, pi := range res.Images {
		md, _ := pi.Image.Digest()
		fmt.Fprintf(stdout, "  %s/%s  %s\n", pi.Platform.OS, pi.Platform.Architecture, md)
	}
	fmt.Fprintf(stdout, "image index %s (version %s, revision %s) in %s, SBOMs in %s, %v\n",
		d, *version, *revision, *out, *sbomDir, time.Since(start).Round(time.Second))
	return 0
}
