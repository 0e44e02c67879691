package e2e

import (
	"math/rand/v2"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/opsight/opsight/internal/simoperator"
)

// TestKill9Restarts kills the sidecar process with SIGKILL several times
// while an operator writes 600k lines, and checks every line arrives.
// Duplicates (a batch re-read after a kill between queueing and
// checkpointing) are reported and must stay bounded.
func TestKill9Restarts(t *testing.T) {
	const lines = 600_000
	dir := t.TempDir()
	logRoot := filepath.Join(dir, "pods")
	logDir := simoperator.PodLogDir(logRoot, "ops", "op-0", "uid-0", "manager")
	state := filepath.Join(dir, "state")
	// 4 MiB rotation: kubelet gzips a rotated file at the next rotation; the
	// sidecar reads .gz rotations too (TestInjectedKillOutageGzippedRotations
	// covers falling behind by many of them).
	w, err := simoperator.NewCRIWriter(logDir, 4<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	sc := newSidecar(t, map[string]string{
		"OPSIGHT_LOG_INCLUDE": filepath.Join(logRoot, "*", "*", "*.log*"),
		"OPSIGHT_STATE_DIR":   state,
		"OPSIGHT_REVISION":    "v1.0.0",
		"POD_NAMESPACE":       "ops",
		"POD_NAME":            "op-0",
	})
	sc.start()

	written := make(chan error, 1)
	go func() {
		_, err := writeReconcileLines(w, 0, lines, 40*time.Millisecond) // ~25k lines/s
		if err == nil {
			err = w.Close()
		}
		written <- err
	}()
	kills := killWhile(t, sc, written, rand.New(rand.NewPCG(1, 2)), 1500*time.Millisecond, 1500*time.Millisecond)
	out := filepath.Join(state, "out")
	complete := waitFor(120*time.Second, func() bool { return len(seqCount(readNDJSON(t, out))) >= lines })
	sc.stop(syscall.SIGTERM)
	seen := seqCount(readNDJSON(t, out))
	missing, dups, gaps := tally(seen, lines)
	t.Logf("kill -9 restarts: %d, lines %d, rotations %d, missing %d, duplicates %d (%.3f%%)", kills, lines, w.Rotations(), missing, dups, 100*float64(dups)/lines)
	if kills < 3 {
		t.Errorf("only %d kills happened; the test needs at least 3", kills)
	}
	if missing > 0 || !complete {
		t.Fatalf("%d of %d lines never arrived after %d kill -9 restarts (missing seq ranges %v)\nsidecar log tail:\n%s", missing, lines, kills, gaps, sc.logs())
	}
	// Bounded: at most one batch per kill can be re-read.
	if maxDup := kills * 20_000; dups > maxDup {
		t.Errorf("%d duplicates after %d kills, want ≤ %d", dups, kills, maxDup)
	}
}
