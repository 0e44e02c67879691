package operatorenrichprocessor

import (
	"strings"
	"testing"
)

func TestImageTag(t *testing.T) {
	tests := map[string]string{
		"ghcr.io/acme/op:v1.2.3": "v1.2.3",
		"registry:5000/acme/op:abc123@sha256:" + strings.Repeat("a", 64): "abc123",
		"registry:5000/acme/op":                                "",
		"op@sha256:0123456789abcdef" + strings.Repeat("0", 48): "0123456789ab",
		"": "",
	}
	for in, want := range tests {
		if got := imageTag(in); got != want {
			t.Errorf("imageTag(%q) = %q, want %q", in, got, want)
		}
	}
}
