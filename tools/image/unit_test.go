package main

import (
	"archive/tar"
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

func TestLayerTar(t *testing.T) {
	epoch := time.Unix(testEpoch, 0)
	files := []file{
		{path: "/b", dir: true, mode: 0o755},
		{path: "/b/x", mode: 0o600, uid: nonRootUID, body: []byte("x")},
		{path: "/a", dir: true, mode: 0o1777},
	}
	one, err := layerTar(files, epoch)
	if err != nil {
		t.Fatal(err)
	}
	// Input order does not matter: entries are sorted.
	two, err := layerTar([]file{files[2], files[1], files[0]}, epoch)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(one, two) {
		t.Error("the same files in another order gave another tar")
	}
	var names []string
	tr := tar.NewReader(bytes.NewReader(one))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if !h.ModTime.Equal(epoch) || h.Uname != "" || h.Gname != "" || h.Uid != h.Gid {
			t.Errorf("%s: mtime %v owner %d:%d %q:%q, want the epoch and numeric equal ids", h.Name, h.ModTime, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		if h.Name == "a/" && h.Mode != 0o1777 {
			t.Errorf("a/: mode %o, want 1777 (sticky)", h.Mode)
		}
	}
	if got := strings.Join(names, " "); got != "a/ b/ b/x" {
		t.Errorf("entries %q, want a/ b/ b/x", got)
	}
	if _, err := layerTar([]file{{path: "/c/x", body: nil}}, epoch); err == nil || !strings.Contains(err.Error(), "before its directory") {
		t.Errorf("a file without its directory: %v, want an error", err)
	}
}

func TestCABundle(t *testing.T) {
	pem, n, skipped, err := caBundle()
	if err != nil {
		t.Fatal(err)
	}
	if n < 100 || strings.Count(string(pem), "-----BEGIN CERTIFICATE-----") != n {
		t.Errorf("%d roots, %d PEM blocks", n, strings.Count(string(pem), "-----BEGIN CERTIFICATE-----"))
	}
	t.Logf("%d roots, %d left out (distrust-after)", n, skipped)
}

func TestGoPURL(t *testing.T) {
	for _, tc := range []struct{ path, version, want string }{
		{"github.com/opsight/opsight", "0.1.0", "pkg:golang/github.com/opsight/opsight@0.1.0?type=module"},
		{"go.opentelemetry.io/collector", "v1.2.3", "pkg:golang/go.opentelemetry.io/collector@v1.2.3?type=module"},
		{"github.com/Azure/go-ansiterm", "v0.0.0-20250102033503-faa5f7b0171c", "pkg:golang/github.com/Azure/go-ansiterm@v0.0.0-20250102033503-faa5f7b0171c?type=module"},
		{"example.com/a b", "v1.0.0+incompatible", "pkg:golang/example.com/a%20b@v1.0.0+incompatible?type=module"},
	} {
		if got := goPURL(tc.path, tc.version); got != tc.want {
			t.Errorf("goPURL(%q, %q) = %q, want %q", tc.path, tc.version, got, tc.want)
		}
	}
}

func TestParsePlatforms(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // os/arch list, "" for an error
	}{
		{"linux/amd64,linux/arm64", "linux/amd64 linux/arm64"},
		{"linux/arm64", "linux/arm64"},
		{"windows/amd64", ""},
		{"amd64", ""},
		{"", ""},
	} {
		ps, err := parsePlatforms(tc.in)
		var got []string
		for _, p := range ps {
			got = append(got, p.OS+"/"+p.Architecture)
		}
		if (err != nil) != (tc.want == "") || strings.Join(got, " ") != tc.want {
			t.Errorf("parsePlatforms(%q) = %v, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// Usage errors exit 2 and say what to do; nothing is built or pushed.
func TestCLIUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Usage:"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"build", "extra"}, 2, "every input is a flag"},
		{[]string{"build", "--epoch", "yesterday", "--revision", "x", "--version", "1.0.0"}, 1, "expected unix seconds"},
		{[]string{"build", "--platforms", "darwin/arm64", "--revision", "x", "--version", "1.0.0", "--epoch", "1"}, 1, "linux/amd64,linux/arm64"},
		{[]string{"push"}, 2, "--to is required"},
		{[]string{"push", "--to", "Not A Ref"}, 2, "expected REGISTRY/REPOSITORY:TAG"},
		{[]string{"push", "--to", "ghcr.io/o/i:1", "--username", "u"}, 2, "go together"},
		{[]string{"push", "--to", "ghcr.io/o/i:1", "--layout", "/nonexistent", "--sbom-dir", ""}, 1, "not an OCI image layout"},
		{[]string{"bump"}, 2, "--version X"},
		{[]string{"bump", "--version", "v1.0.0"}, 1, "without a leading v"},
	} {
		var out, errOut bytes.Buffer
		code := run(tc.args, strings.NewReader(""), &out, &errOut)
		if code != tc.code || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("image %q: exit %d, stderr %q; want exit %d and %q", tc.args, code, errOut.String(), tc.code, tc.want)
		}
	}
}
