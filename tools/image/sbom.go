package main

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The SBOM is CycloneDX 1.5 JSON made from the module list the go command
// embeds in every binary (debug/buildinfo): exactly the code that was linked,
// with versions and go.sum hashes, and no extra dependency or scanner to
// trust. cyclonedx-gomod would derive the same list from go.mod (plus
// licenses, at the price of a heavy tool module); scanners such as Trivy
// and Grype read the same embedded list from the binary in the image.
const cdxMediaType = "application/vnd.cyclonedx+json"

type cdxBOM struct {
	BOMFormat    string          `json:"bomFormat"`
	SpecVersion  string          `json:"specVersion"`
	SerialNumber string          `json:"serialNumber"`
	Version      int             `json:"version"`
	Metadata     cdxMetadata     `json:"metadata"`
	Components   []cdxComponent  `json:"components"`
	Dependencies []cdxDependency `json:"dependencies"`
}

type cdxMetadata struct {
	Timestamp string       `json:"timestamp"`
	Tools     cdxTools     `json:"tools"`
	Component cdxComponent `json:"component"`
}

type cdxTools struct {
	Components []cdxComponent `json:"components"`
}

type cdxComponent struct {
	Type       string        `json:"type"`
	BOMRef     string        `json:"bom-ref,omitempty"`
	Name       string        `json:"name"`
	Version    string        `json:"version,omitempty"`
	PURL       string        `json:"purl,omitempty"`
	Hashes     []cdxHash     `json:"hashes,omitempty"`
	Properties []cdxProperty `json:"properties,omitempty"`
}

type cdxHash struct {
	Alg     string `json:"alg"`
	Content string `json:"content"`
}

type cdxProperty struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type cdxDependency struct {
	Ref       string   `json:"ref"`
	DependsOn []string `json:"dependsOn"`
}

// goPURL is the package URL of a Go module (purl-spec, type golang).
func goPURL(path, version string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return "pkg:golang/" + strings.Join(segs, "/") + "@" + url.PathEscape(version) + "?type=module"
}

func cycloneDX(bi *buildinfo.BuildInfo, binary []byte, cfg buildConfig, p v1.Platform) ([]byte, error) {
	sum := sha256.Sum256(binary)
	mainRef := goPURL(bi.Main.Path, cfg.Version)
	props := []cdxProperty{{Name: "opsight:revision", Value: cfg.Revision}, {Name: "opsight:platform", Value: p.OS + "/" + p.Architecture}}
	for _, s := range bi.Settings {
		props = append(props, cdxProperty{Name: "go:build:" + s.Key, Value: s.Value})
	}
	bom := cdxBOM{
		BOMFormat: "CycloneDX", SpecVersion: "1.5", Version: 1,
		// Derived from the binary, so the same build gives the same SBOM.
		SerialNumber: "urn:uuid:" + uuidFrom(sum[:]),
		Metadata: cdxMetadata{
			Timestamp: cfg.Epoch.UTC().Format(time.RFC3339),
			Tools:     cdxTools{Components: []cdxComponent{{Type: "application", Name: "opsight tools/image (debug/buildinfo)"}}},
			Component: cdxComponent{Type: "application", BOMRef: mainRef, Name: bi.Main.Path + "/" + strings.TrimPrefix(cfg.Package, "./"),
				Version: cfg.Version, PURL: mainRef, Hashes: []cdxHash{{Alg: "SHA-256", Content: hex.EncodeToString(sum[:])}}, Properties: props},
		},
	}
	// The standard library is code in the binary too; scanners match Go
	// vulnerabilities against it by this purl.
	std := cdxComponent{Type: "library", Name: "stdlib", Version: bi.GoVersion, PURL: "pkg:golang/stdlib@" + url.PathEscape(bi.GoVersion)}
	std.BOMRef = std.PURL
	bom.Components = append(bom.Components, std)
	deps := []string{std.BOMRef}
	for _, d := range bi.Deps {
		m := d
		if d.Replace != nil {
			m = d.Replace
		}
		c := cdxComponent{Type: "library", Name: m.Path, Version: m.Version, PURL: goPURL(m.Path, m.Version)}
		c.BOMRef = c.PURL
		if m.Sum != "" {
			c.Properties = append(c.Properties, cdxProperty{Name: "go:module:sum", Value: m.Sum})
		}
		if d.Replace != nil {
			c.Properties = append(c.Properties, cdxProperty{Name: "go:module:replaces", Value: d.Path + "@" + d.Version})
		}
		bom.Components = append(bom.Components, c)
		deps = append(deps, c.BOMRef)
	}
	slices.SortFunc(bom.Components, func(a, b cdxComponent) int { return strings.Compare(a.BOMRef, b.BOMRef) })
	bom.Components = slices.CompactFunc(bom.Components, func(a, b cdxComponent) bool { return a.BOMRef == b.BOMRef })
	slices.Sort(deps)
	deps = slices.Compact(deps)
	bom.Dependencies = []cdxDependency{{Ref: mainRef, DependsOn: deps}}
	b, err := json.MarshalIndent(bom, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("SBOM: %v", err)
	}
	return append(b, '\n'), nil
}

// uuidFrom formats 16 bytes of h as a version-5-style UUID (RFC 9562 layout).
func uuidFrom(h []byte) string {
	u := make([]byte, 16)
	copy(u, h)
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	x := hex.EncodeToString(u)
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}
