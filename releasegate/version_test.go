package main

import (
	"strings"
	"testing"
)

// `releasegate --version` reaches the version, not the gate's flag parser
// (which would reject --version and exit 3).
func TestVersionFlag(t *testing.T) {
	var out, errOut strings.Builder
	if code := run([]string{"--version"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	if !strings.HasPrefix(out.String(), "releasegate, version ") {
		t.Errorf("printed %q", out.String())
	}
}
