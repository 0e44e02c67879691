package cli

import (
	"strings"
	"testing"
)

func TestVersionRequested(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{[]string{"--version"}, true},
		{[]string{"-version"}, true},
		{[]string{"version"}, true},
		{nil, false},
		{[]string{"--baseline", "v1"}, false},
		// A revision that happens to be called "version" is not a request.
		{[]string{"--baseline", "version"}, false},
		{[]string{"--version", "--baseline", "v1"}, false},
	} {
		if got := VersionRequested(tc.args); got != tc.want {
			t.Errorf("VersionRequested(%q) = %v, want %v", tc.args, got, tc.want)
		}
	}
}

func TestPrintVersion(t *testing.T) {
	var out strings.Builder
	if code := PrintVersion(&out); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	for _, want := range []string{"releasegate, version dev (revision: ", "go version: go1."} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printed %q, want it to contain %q", out.String(), want)
		}
	}
}
