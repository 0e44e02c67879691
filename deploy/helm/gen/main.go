// Command gen refreshes the generated parts of the opsight chart (copies of
// dashboards, data sources and rules; the README values table). Run it from
// the repository root: go run ./deploy/helm/gen
package main

import (
	"fmt"
	"os"

	"github.com/opsight/opsight/deploy/helm/chartgen"
)

func main() {
	drift, err := chartgen.Check(".")
	if err == nil {
		err = chartgen.Write(".", drift)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	for _, d := range drift {
		fmt.Printf("updated %s (%s)\n", d.Path, d.Reason)
	}
}
