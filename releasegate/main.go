// Command releasegate blocks a release when the candidate revision's span
// latency moved past a threshold against the baseline revision. It is thin,
// like promtool: the logic lives in releasegate/cli, source, stats, gate and
// report. See docs/releasegate.md.
package main

import (
	"io"
	"os"

	"github.com/opsight/opsight/releasegate/cli"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run is main without the process: tests call it in-process.
func run(args []string, stdout, stderr io.Writer) int {
	if cli.VersionRequested(args) {
		return cli.PrintVersion(stdout)
	}
	return cli.Run(args, stdout, stderr)
}
