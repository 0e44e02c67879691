package e2e

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opsight/opsight/internal/simoperator"
	"github.com/opsight/opsight/internal/testservers"
)

// TestAPISourceKill9AndContainerRestart runs the sidecar with
// OPSIGHT_LOG_SOURCE=api against pods/log served by the kubelet's own log
// reader (tools/podlogs). The sidecar is killed with SIGKILL again and again
// while the operator writes; then, while the sidecar is down, the operator
// writes more, crashes and restarts (0.log → 1.log), which only previous=true
// can still reach; then the new instance is rotated while followed. Every
// line must arrive.
//
// The API serves only the live file, so a rotation must not happen while
// the stream is down; rotation is at 8 MiB here (kubelet's default: 10 MiB)
// at ~15k lines/s, so a rotated file is never unread at a reconnect.
func TestAPISourceKill9AndContainerRestart(t *testing.T) {
	const firstRun, whileDown, secondRun = 150_000, 2_000, 100_000
	dir := t.TempDir()
	podsDir := filepath.Join(dir, "pods")
	logDir := simoperator.PodLogDir(podsDir, "ops", "op-0", "uid-0", "manager")
	w0, err := simoperator.NewCRIWriter(logDir, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	api := testservers.StartPodLogs(t, podsDir, "ops")
	state := filepath.Join(dir, "state")
	sc := newSidecar(t, map[string]string{
		"OPSIGHT_LOG_SOURCE":          "api",
		"KUBERNETES_SERVICE_HOST":     api.Host,
		"KUBERNETES_SERVICE_PORT":     api.Port,
		"OPSIGHT_SERVICE_ACCOUNT_DIR": api.SADir,
		"OPSIGHT_STATE_DIR":           state,
		"OPSIGHT_REVISION":            "v1.0.0",
		"POD_NAMESPACE":               "ops",
		"POD_NAME":                    "op-0",
		"CONTAINER_NAME":              "manager",
	})
	seq := 0
	write := func(w *simoperator.CRIWriter, n int, pause time.Duration) (err error) {
		seq, err = writeReconcileLines(w, seq, n, pause)
		return err
	}
	sc.start()

	// 1. kill -9 while instance 0 writes (~15k lines/s).
	written := make(chan error, 1)
	go func() { written <- write(w0, firstRun, 60*time.Millisecond) }()
	kills := killWhile(t, sc, written, rand.New(rand.NewPCG(3, 4)), time.Second, 1500*time.Millisecond)

	// 2. Down: instance 0 writes on, ends, and instance 1 starts.
	sc.stop(syscall.SIGKILL)
	kills++
	if err := write(w0, whileDown, 0); err != nil {
		t.Fatal(err)
	}
	if err := w0.Close(); err != nil {
		t.Fatal(err)
	}
	w1, err := simoperator.NewCRIWriterInstance(logDir, 1, 8<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := write(w1, 1000, 0); err != nil {
		t.Fatal(err)
	}
	sc.start()

	// 3. Instance 1 rotates while it is followed.
	if err := write(w1, secondRun, 60*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	total := seq
	out := filepath.Join(state, "out")
	complete := waitFor(120*time.Second, func() bool { return len(seqCount(readNDJSON(t, out))) >= total })
	sc.stop(syscall.SIGTERM)
	seen := seqCount(readNDJSON(t, out))
	missing, dups, gaps := tally(seen, total)
	previous := strings.Count(api.Logs(), "previous=true")
	t.Logf("api source: kill -9 restarts %d, lines %d, container restarts 1, rotations while followed %d, pods/log requests with previous=true %d, missing %d, duplicates %d (%.3f%%)",
		kills, total, w1.Rotations(), previous, missing, dups, 100*float64(dups)/float64(total))
	if kills < 4 {
		t.Errorf("only %d kills happened; the test needs at least 4", kills)
	}
	if w1.Rotations() < 2 {
		t.Errorf("instance 1 rotated %d times; the test needs at least 2", w1.Rotations())
	}
	if missing > 0 || !complete {
		t.Fatalf("%d of %d lines never arrived (missing seq ranges %v)\nsidecar log tail:\n%s\npodlogs log tail:\n%s",
			missing, total, gaps, sc.logs(), lastLines(api.Logs(), 30))
	}
	if full, _ := os.ReadFile(sc.logPath); strings.Contains(string(full), "no longer served") {
		t.Errorf("the sidecar reported a rotated-away gap, but every rotation happened while it streamed")
	}
	if maxDup := kills * 2_000; dups > maxDup {
		t.Errorf("%d duplicates after %d kills, want ≤ %d (one in-flight batch per kill)", dups, kills, maxDup)
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
