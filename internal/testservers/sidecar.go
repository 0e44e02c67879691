package testservers

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	sidecarOnce sync.Once
	sidecarPath string
	sidecarErr  error
)

// BuildSidecar builds ./operator-sidecar from the working tree (never a
// cached .bin copy, so tests always run the code under test) once per test
// binary and returns its path.
func BuildSidecar(t testing.TB) string {
	t.Helper()
	sidecarOnce.Do(func() {
		root, err := RepoRoot()
		if err != nil {
			sidecarErr = err
			return
		}
		dir, err := os.MkdirTemp("", "opsight-sidecar-bin-")
		if err != nil {
			sidecarErr = err
			return
		}
		sidecarPath = filepath.Join(dir, "operator-sidecar")
		cmd := exec.Command("go", "build", "-o", sidecarPath, "./operator-sidecar")
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			sidecarErr = &buildError{err: err, out: string(b)}
		}
	})
	if sidecarErr != nil {
		t.Fatalf("building operator-sidecar: %v", sidecarErr)
	}
	return sidecarPath
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }
