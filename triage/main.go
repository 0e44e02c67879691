// Command triage walks from "it got slower" (or "it fails more") to the
// span that moved, the revision, zone and pod it moved in, the child spans
// that took the added time, the log lines of those traces and Grafana links
// to go on by hand. See docs/triage.md.
package main

import (
	"os"

	"github.com/opsight/opsight/triage/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
