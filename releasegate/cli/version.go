package cli

import (
	"fmt"
	"io"

	"github.com/opsight/opsight/internal/buildinfo"
	"github.com/opsight/opsight/internal/conventions"
)

// VersionRequested reports whether the command line asks for the version
// only: `releasegate --version` (or -version, or version). main checks it
// before Run so the gate's flag set stays as it is.
func VersionRequested(args []string) bool {
	if len(args) != 1 {
		return false
	}
	switch args[0] {
	case "--version", "-version", "version":
		return true
	}
	return false
}

// PrintVersion writes the version, revision and Go version (stamped at
// build time, see internal/buildinfo) and returns the exit code.
func PrintVersion(stdout io.Writer) int {
	fmt.Fprint(stdout, buildinfo.Get().Print("releasegate"))
	return conventions.ExitPass
}
