// Package buildinfo is the version of opsight's binaries (operator-sidecar,
// releasegate), stamped at build time so `--version`, the image tag and the
// chart's appVersion can be compared:
//
//	go build -ldflags "-X github.com/opsight/opsight/internal/buildinfo.version=0.1.0 \
//	  -X github.com/opsight/opsight/internal/buildinfo.revision=$(git rev-parse HEAD)"
//
// The repository's VERSION file is the single source of the version; the
// image builder (tools/image) and the release workflow pass it here.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Set by the linker (-X); a plain `go build` or `go run` leaves the defaults.
var (
	version  = "dev"
	revision = ""
)

// Info is what a binary knows about its own build.
type Info struct {
	Version   string // VERSION file content at release, "dev" otherwise
	Revision  string // git commit, "" when neither stamped nor recorded by the go command
	GoVersion string // toolchain that built the binary
	Platform  string // GOOS/GOARCH
}

// Get returns the stamped version. Without a stamped version it falls back
// to the module version `go install github.com/opsight/opsight/releasegate@v0.2.0`
// records (0.2.0); without a stamped revision, to the vcs.revision the go
// command records when it builds inside a git checkout (not with
// -buildvcs=false or `go run`), marked -dirty when the tree had local changes.
func Get() Info {
	return get(version, revision, debug.ReadBuildInfo)
}

func get(v, rev string, read func() (*debug.BuildInfo, bool)) Info {
	i := Info{Version: v, Revision: rev, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := read()
	if !ok {
		return i
	}
	if i.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		i.Version = strings.TrimPrefix(bi.Main.Version, "v")
	}
	if i.Revision != "" {
		return i
	}
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			i.Revision = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if i.Revision != "" && modified {
		i.Revision += "-dirty"
	}
	return i
}

// Print is the text of `--version`, in promtool's form:
//
//	operator-sidecar, version 0.1.0 (revision: 5f3c…)
//	  go version: go1.26.8
//	  platform:   linux/amd64
func (i Info) Print(program string) string {
	rev := i.Revision
	if rev == "" {
		rev = "unknown"
	}
	return fmt.Sprintf("%s, version %s (revision: %s)\n  go version: %s\n  platform:   %s\n",
		program, i.Version, rev, i.GoVersion, i.Platform)
}
