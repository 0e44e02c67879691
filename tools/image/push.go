package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The empty config of an OCI 1.1 artifact (image-spec manifest.md).
const (
	emptyConfigType = "application/vnd.oci.empty.v1+json"
	emptyConfig     = "{}"
)

// layoutIndex is the image index a layout written by build names.
func layoutIndex(dir string) (v1.ImageIndex, string, error) {
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, "", fmt.Errorf("--layout %s: not an OCI image layout (run `image build` first): %v", dir, err)
	}
	im, err := top.IndexManifest()
	if err != nil {
		return nil, "", err
	}
	if len(im.Manifests) != 1 || im.Manifests[0].MediaType != types.OCIImageIndex {
		return nil, "", fmt.Errorf("--layout %s: expected index.json to name exactly one image index (as `image build` writes), found %d entries", dir, len(im.Manifests))
	}
	idx, err := top.ImageIndex(im.Manifests[0].Digest)
	return idx, im.Manifests[0].Annotations[annRefName], err
}

// artifact is an OCI 1.1 artifact manifest: one blob, an empty config, and
// a subject, so `oras discover`, `cosign tree` and the referrers API list it
// under the image it describes.
type artifact struct {
	raw []byte
}

func (a artifact) RawManifest() ([]byte, error)        { return a.raw, nil }
func (a artifact) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

func sbomArtifact(sbom []byte, subject v1.Descriptor) (artifact, []v1.Layer, error) {
	cfg := static.NewLayer([]byte(emptyConfig), emptyConfigType)
	blob := static.NewLayer(sbom, cdxMediaType)
	desc := func(l v1.Layer, mt string) (v1.Descriptor, error) {
		d, err := l.Digest()
		if err != nil {
			return v1.Descriptor{}, err
		}
		s, err := l.Size()
		return v1.Descriptor{MediaType: types.MediaType(mt), Digest: d, Size: s}, err
	}
	cd, err := desc(cfg, emptyConfigType)
	if err != nil {
		return artifact{}, nil, err
	}
	bd, err := desc(blob, cdxMediaType)
	if err != nil {
		return artifact{}, nil, err
	}
	subject = v1.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	raw, err := json.Marshal(v1.Manifest{
		SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: cdxMediaType,
		Config: cd, Layers: []v1.Descriptor{bd}, Subject: &subject,
	})
	return artifact{raw}, []v1.Layer{cfg, blob}, err
}

type pushConfig struct {
	Layout  string
	SBOMDir string
	To      name.Tag
	Tags    []string
	Options []remote.Option
	Log     io.Writer
}

// pushed names what push wrote, by digest: what signing and deploying
// should refer to (`image push --metadata-file` writes it as JSON).
type pushed struct {
	Index     string            `json:"index"`     // REPO@sha256:… of the image index
	Platforms map[string]string `json:"platforms"` // "linux/amd64" → REPO@sha256:… of its manifest
	SBOMs     map[string]string `json:"sboms"`     // "linux/amd64" → REPO@sha256:… of its SBOM artifact
}

// push writes the index under To and every extra tag, then each platform's
// SBOM as a referrer of that platform's manifest. It returns the index digest.
func push(ctx context.Context, cfg pushConfig) (v1.Hash, *pushed, error) {
	idx, version, err := layoutIndex(cfg.Layout)
	if err != nil {
		return v1.Hash{}, nil, err
	}
	d, err := idx.Digest()
	if err != nil {
		return v1.Hash{}, nil, err
	}
	opts := append([]remote.Option{remote.WithContext(ctx)}, cfg.Options...)
	if err := remote.WriteIndex(cfg.To, idx, opts...); err != nil {
		return v1.Hash{}, nil, fmt.Errorf("pushing the index to %s: %v", cfg.To, err)
	}
	fmt.Fprintf(cfg.Log, "pushed %s@%s\n", cfg.To, d)
	repo := cfg.To.Context()
	out := &pushed{Index: repo.Digest(d.String()).String(), Platforms: map[string]string{}, SBOMs: map[string]string{}}
	for _, t := range cfg.Tags {
		tag := cfg.To.Context().Tag(t)
		if err := remote.Tag(tag, idx, opts...); err != nil {
			return v1.Hash{}, nil, fmt.Errorf("tagging %s: %v", tag, err)
		}
		fmt.Fprintf(cfg.Log, "tagged %s\n", tag)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Hash{}, nil, err
	}
	for _, m := range im.Manifests {
		if m.Platform == nil {
			continue
		}
		plat := m.Platform.OS + "/" + m.Platform.Architecture
		out.Platforms[plat] = repo.Digest(m.Digest.String()).String()
		if cfg.SBOMDir == "" {
			continue
		}
		file := filepath.Join(cfg.SBOMDir, sbomName(version, *m.Platform))
		sbom, err := os.ReadFile(file)
		if err != nil {
			return v1.Hash{}, nil, fmt.Errorf("SBOM of %s/%s: %v (build writes it next to the layout; pass --sbom-dir \"\" to push without)", m.Platform.OS, m.Platform.Architecture, err)
		}
		art, blobs, err := sbomArtifact(sbom, m)
		if err != nil {
			return v1.Hash{}, nil, err
		}
		for _, b := range blobs {
			if err := remote.WriteLayer(cfg.To.Context(), b, opts...); err != nil {
				return v1.Hash{}, nil, fmt.Errorf("uploading the SBOM of %s/%s: %v", m.Platform.OS, m.Platform.Architecture, err)
			}
		}
		ad, _, err := v1.SHA256(strings.NewReader(string(art.raw)))
		if err != nil {
			return v1.Hash{}, nil, err
		}
		// By digest, untagged: the referrers API (or its sha256-… fallback
		// tag, which go-containerregistry maintains) is how it is found.
		if err := remote.Put(cfg.To.Context().Digest(ad.String()), art, opts...); err != nil {
			return v1.Hash{}, nil, fmt.Errorf("pushing the SBOM of %s/%s: %v", m.Platform.OS, m.Platform.Architecture, err)
		}
		fmt.Fprintf(cfg.Log, "attached SBOM %s to %s %s\n", ad, plat, m.Digest)
		out.SBOMs[plat] = repo.Digest(ad.String()).String()
	}
	return d, out, nil
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

func runPush(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("image push", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var tags multi
	lay := fs.String("layout", "", "OCI image layout written by `image build` (default: REPO/dist/oci)")
	sbomDir := fs.String("sbom-dir", "-", "SBOMs written by `image build`, attached as referrers (default: REPO/dist/sbom; empty: none)")
	to := fs.String("to", "", "where to push, REGISTRY/REPOSITORY:TAG, e.g. ghcr.io/opsight/operator-sidecar:0.1.0 (required)")
	fs.Var(&tags, "tag", "another tag for the same index, e.g. latest (repeatable)")
	user := fs.String("username", "", "registry user (default: credentials of ~/.docker/config.json, e.g. from `crane auth login`)")
	passStdin := fs.Bool("password-stdin", false, "read the registry password or token from stdin (with --username)")
	insecure := fs.Bool("insecure", false, "plain HTTP registry (a local test registry)")
	metaFile := fs.String("metadata-file", "", "also write the pushed digests (index, per-platform manifests, SBOMs) to this JSON file, for signing")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "image push: "+format+"\n", a...)
		return code
	}
	if fs.NArg() > 0 {
		return fail(2, "unexpected argument %q: give the destination with --to", fs.Arg(0))
	}
	if *to == "" {
		return fail(2, "--to is required: REGISTRY/REPOSITORY:TAG, e.g. ghcr.io/opsight/operator-sidecar:0.1.0")
	}
	var nopts []name.Option
	if *insecure {
		nopts = append(nopts, name.Insecure)
	}
	tag, err := name.NewTag(*to, append(nopts, name.StrictValidation)...)
	if err != nil {
		return fail(2, "--to %q: %v (expected REGISTRY/REPOSITORY:TAG)", *to, err)
	}
	auth := remote.WithAuthFromKeychain(authn.DefaultKeychain)
	if *user != "" || *passStdin {
		if *user == "" || !*passStdin {
			return fail(2, "--username and --password-stdin go together")
		}
		b, err := io.ReadAll(io.LimitReader(stdin, 64<<10))
		if err != nil {
			return fail(1, "reading the password from stdin: %v", err)
		}
		pass := strings.TrimSpace(string(b))
		if pass == "" {
			return fail(2, "--password-stdin: stdin was empty")
		}
		auth = remote.WithAuth(&authn.Basic{Username: *user, Password: pass})
	}
	if *lay == "" || *sbomDir == "-" {
		repo, err := findRepo(".")
		if err != nil {
			return fail(2, "%v", err)
		}
		if *lay == "" {
			*lay = filepath.Join(repo, "dist", "oci")
		}
		if *sbomDir == "-" {
			*sbomDir = filepath.Join(repo, "dist", "sbom")
		}
	}
	d, res, err := push(context.Background(), pushConfig{Layout: *lay, SBOMDir: *sbomDir, To: tag, Tags: tags,
		Options: []remote.Option{auth, remote.WithTransport(http.DefaultTransport), remote.WithUserAgent("opsight-tools-image")}, Log: stdout})
	if err != nil {
		return fail(1, "%v", err)
	}
	if *metaFile != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return fail(1, "%v", err)
		}
		if err := os.WriteFile(*metaFile, append(b, '\n'), 0o644); err != nil {
			return fail(1, "--metadata-file: %v", err)
		}
	}
	// Last line: the index by digest, what signing and deploying should name.
	fmt.Fprintln(stdout, tag.Context().Digest(d.String()).String())
	return 0
}
