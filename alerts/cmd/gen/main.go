// Command gen writes opsight's rule files and the generated risk-pattern runbook.
//
//	go run ./alerts/cmd/gen [-rules alerts/rules] [-runbooks docs/runbooks]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/opsight/opsight/alerts"
)

func main() {
	rules := flag.String("rules", "alerts/rules", "directory to write the rule files into")
	runbooks := flag.String("runbooks", "docs/runbooks", "directory holding the runbooks (risk-patterns.md is generated)")
	flag.Parse()
	if err := run(*rules, *runbooks); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(rulesDir, runbookDir string) error {
	if err := os.MkdirAll(rulesDir, 0o755); err != nil {
		return err
	}
	files := alerts.Files()
	for _, f := range files {
		if err := f.Validate(); err != nil {
			return err
		}
		b, err := f.YAML()
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(rulesDir, f.Name), b, 0o644); err != nil {
			return err
		}
	}
	rb, err := alerts.RiskRunbook()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(runbookDir, alerts.RunbookRisk), rb, 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote %d rule files to %s and %s\n", len(files), rulesDir, filepath.Join(runbookDir, alerts.RunbookRisk))
	return nil
}
