// Command gen writes opsight's Grafana dashboards as JSON.
//
//	go run ./dashboards/cmd/gen [-out dashboards/json]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/opsight/opsight/dashboards"
)

func main() {
	out := flag.String("out", "dashboards/json", "directory to write the dashboard JSON files into")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	files, err := dashboards.All()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.Name), f.JSON, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("wrote %d dashboards to %s\n", len(files), dir)
	return nil
}
