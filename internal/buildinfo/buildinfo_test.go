package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestGet(t *testing.T) {
	vcs := func(rev, modified string) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			return &debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}}, true
		}
	}
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	installed := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{Main: debug.Module{Path: "github.com/opsight/opsight", Version: "v0.2.0"}}, true
	}
	for _, tc := range []struct {
		name          string
		version, rev  string
		read          func() (*debug.BuildInfo, bool)
		wantRev, want string
	}{
		{"stamped wins over vcs", "0.2.0", "abc123", vcs("fff", "true"), "abc123", "version 0.2.0 (revision: abc123)"},
		{"vcs fallback", "dev", "", vcs("fff", "false"), "fff", "version dev (revision: fff)"},
		{"vcs fallback dirty", "dev", "", vcs("fff", "true"), "fff-dirty", "(revision: fff-dirty)"},
		{"nothing known", "dev", "", none, "", "(revision: unknown)"},
		{"go install pkg@version", "dev", "", installed, "", "version 0.2.0 (revision: unknown)"},
		{"stamped version wins over the module version", "0.3.0", "abc", installed, "abc", "version 0.3.0 (revision: abc)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i := get(tc.version, tc.rev, tc.read)
			if i.Revision != tc.wantRev {
				t.Errorf("revision %q, want %q", i.Revision, tc.wantRev)
			}
			out := i.Print("prog")
			for _, want := range []string{"prog, ", tc.want, "go version: " + runtime.Version(), runtime.GOOS + "/" + runtime.GOARCH} {
				if !strings.Contains(out, want) {
					t.Errorf("--version output %q lacks %q", out, want)
				}
			}
		})
	}
}
