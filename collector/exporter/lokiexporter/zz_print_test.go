package lokiexporter

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPrintErrors(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad_*.yaml")
	for _, f := range files {
		_, err := loadConfig(t, filepath.Base(f), "loki")
		os.Stdout.WriteString(filepath.Base(f) + ": " + err.Error() + "\n")
	}
}
