package webhook

import (
	"strings"
	"testing"
)

func TestRevisionFromImage(t *testing.T) {
	for _, tc := range []struct{ image, want string }{
		{"ghcr.io/acme/widget-operator:v1.4.2", "v1.4.2"},
		{"widget-operator:1.0", "1.0"},
		{"widget-operator", "latest"},
		{"docker.io/library/busybox", "latest"},
		{"registry.local:5000/team/widget-operator", "latest"},
		{"registry.local:5000/team/widget-operator:v2", "v2"},
		{"registry.local:5000/widget-operator:v2@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "v2"},
		{"registry.local:5000/team/widget-operator@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "sha256:0123456789ab"},
		{"ghcr.io/acme/op@sha512:abc", "sha512:abc"},
		{"[fd00::1]:5000/team/op:v3", "v3"},
		{"[fd00::1]:5000/team/op", "latest"},
		{"localhost:5000/op:", "latest"},
		{" ghcr.io/acme/op:v1 ", "v1"},
	} {
		if got := RevisionFromImage(tc.image); got != tc.want {
			t.Errorf("RevisionFromImage(%q) = %q, want %q", tc.image, got, tc.want)
		}
	}
}

func FuzzRevisionFromImage(f *testing.F) {
	f.Add("registry.local:5000/team/op", "v1.2.3")
	f.Add("op", "latest")
	f.Fuzz(func(t *testing.T, repo, tag string) {
		got := RevisionFromImage(repo)
		if got == "" {
			t.Fatalf("empty revision for %q", repo)
		}
		// A well-formed tag appended to a repository without one is always what comes back.
		if tag == "" || strings.ContainsAny(tag, ":/@ \t\n\r\v\f") || strings.ContainsAny(repo, "@") ||
			strings.TrimSpace(repo) != repo {
			return
		}
		name := repo[strings.LastIndexByte(repo, '/')+1:]
		if strings.Contains(name, ":") {
			return
		}
		if got := RevisionFromImage(repo + ":" + tag); got != tag {
			t.Fatalf("RevisionFromImage(%q) = %q, want %q", repo+":"+tag, got, tag)
		}
	})
}
