// Package testservers builds and starts the real third-party servers that
// opsight's tests talk to (Prometheus, promtool, ...). The programs come
// from tool modules under tools/ so the product's go.mod stays lean; they
// are built on first use into .bin/ at the repository root, so `go test
// ./...` works on a fresh clone without a separate install step.
package testservers

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
)

// Tool names a program of a tool module.
type Tool struct {
	Name   string // binary name under .bin/
	Module string // tool module directory, relative to the repo root
	Pkg    string // package path to build
	// LDFlags, when set, returns -ldflags for the build from the tool
	// module's directory (e.g. a version stamp read from its go.mod).
	LDFlags func(moduleDir string) (string, error)
}

var (
	Prometheus = Tool{Name: "prometheus", Module: "tools/prometheus", Pkg: "github.com/prometheus/prometheus/cmd/prometheus"}
	Promtool   = Tool{Name: "promtool", Module: "tools/prometheus", Pkg: "github.com/prometheus/prometheus/cmd/promtool"}
)

// RepoRoot is the directory holding the root go.mod.
func RepoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot locate source file")
	}
	return filepath.Abs(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Path builds the tool if .bin/ does not have it yet and returns its path.
// Concurrent test packages serialise on a lock file so it is built once.
func (tl Tool) Path() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(root, ".bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(bin, tl.Name)
	lock, err := os.OpenFile(filepath.Join(bin, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	dir := filepath.Join(root, tl.Module)
	args := []string{"build", "-o", out}
	if tl.LDFlags != nil {
		ld, err := tl.LDFlags(dir)
		if err != nil {
			return "", fmt.Errorf("building %s: %v", tl.Name, err)
		}
		args = append(args, "-ldflags", ld)
	}
	cmd := exec.Command("go", append(args, tl.Pkg)...)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s in %s: %v\n%s", tl.Pkg, tl.Module, err, b)
	}
	return out, nil
}

// MustPath is Path for tests: it fails the test when the tool cannot be built.
// Under -short (make unit) the test is left out instead: building and
// starting a real third-party program takes seconds to minutes; make test
// (CI) runs it.
func (tl Tool) MustPath(t testing.TB) string {
	t.Helper()
	SkipShort(t, tl.Name)
	p, err := tl.Path()
	if err != nil {
		t.Fatalf("tool %s unavailable (run .ci/run, or `go build` it in %s): %v", tl.Name, tl.Module, err)
	}
	return p
}

// SkipShort leaves a test that drives a real third-party program (what)
// out of `go test -short`, the fast inner loop; make test runs every one.
func SkipShort(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("drives a real %s: left out under -short (make unit); make test runs it", what)
	}
}
