package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opsight/opsight/internal/simoperator"
	"github.com/opsight/opsight/internal/testservers"
)

var (
	gateOnce sync.Once
	gateBin  string
	gateErr  error
)

// buildReleaseGate builds ./releasegate from the working tree once.
func buildReleaseGate(t testing.TB) string {
	t.Helper()
	gateOnce.Do(func() {
		root, err := testservers.RepoRoot()
		if err != nil {
			gateErr = err
			return
		}
		dir, err := os.MkdirTemp("", "opsight-releasegate-")
		if err != nil {
			gateErr = err
			return
		}
		gateBin = filepath.Join(dir, "releasegate")
		cmd := exec.Command("go", "build", "-o", gateBin, "./releasegate")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			gateErr = errors.New(err.Error() + "\n" + string(out))
		}
	})
	if gateErr != nil {
		t.Fatalf("building releasegate: %v", gateErr)
	}
	return gateBin
}

// checkReleaseGate runs the releasegate binary and wants exit code want
// (0 pass, 1 fail per CONVENTIONS.md).
func checkReleaseGate(t *testing.T, what string, args []string, want int) {
	t.Helper()
	bin := buildReleaseGate(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(args, "--format", "text")...)
	out, err := cmd.CombinedOutput()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s: running releasegate: %v", what, err)
	}
	t.Logf("%s: releasegate exit %d\n%s", what, code, strings.TrimSpace(string(out)))
	if code != want {
		t.Errorf("%s: releasegate exited %d, want %d (args %q)", what, code, want, args)
	}
}

// TestReleaseGateOTLPFile feeds the release gate the sidecars' own trace
// output (env mode without OPSIGHT_TRACES_URL: OTLP JSON lines under
// $OPSIGHT_STATE_DIR/out). Three pods: the baseline, the same code under a
// rebuilt tag (A/A: must pass) and a candidate with a slow tail (must fail).
func TestReleaseGateOTLPFile(t *testing.T) {
	t.Parallel()
	const ns = "ops"
	dir := t.TempDir()
	type pod struct {
		name, rev string
		slow      float64
		seed      uint64
	}
	pods := []pod{
		{"gate-base-0", "v2.0.0", 0, 101},
		{"gate-twin-0", "v2.0.0-rebuild", 0, 202},
		{"gate-cand-0", "v2.1.0", 0.08, 303},
	}
	var globs []string
	var ops []*simoperator.Operator
	for _, p := range pods {
		env := podEnv(dir, ns, p.name, p.rev)
		env["OPSIGHT_OTLP_HTTP_ADDR"] = testservers.FreeAddr(t)
		env["OPSIGHT_SERVICE_NAME"] = "etcd-operator"
		sc := newSidecar(t, env)
		sc.start()
		waitOTLP(t, sc, env["OPSIGHT_OTLP_HTTP_ADDR"])
		globs = append(globs, "--otlp-file", filepath.Join(env["OPSIGHT_STATE_DIR"], "out", "traces-*.jsonl"))
		op, err := simoperator.New(simoperator.Config{
			LogRoot: filepath.Join(dir, "pods"), Namespace: ns, Pod: p.name, Revision: p.rev, Cluster: "e2e",
			ReconcilesPerSecond: 100, SlowTailShare: p.slow, SlowTailFactor: 8,
			OTLPEndpoint: "http://" + env["OPSIGHT_OTLP_HTTP_ADDR"], Seed: p.seed,
		})
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, op)
	}
	// The load starts once every sidecar is up: starting them takes seconds on a busy machine.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(pods))
	for _, op := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := op.Run(ctx)
			if err == nil && (st.SpanErrors > 0 || st.Spans == 0) {
				err = fmt.Errorf("%s: the sidecar took %d spans and refused %d batches (stats %+v)", st.LogDir, st.Spans, st.SpanErrors, st)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// The localfile exporter has written every span once the files stop growing.
	time.Sleep(3 * time.Second)
	// p99 of ~2000 reconciles is known to about ±10 %: the allowed rise is
	// +25 % so an A/A passes; the candidate's slow tail is a rise of ~5x.
	common := append([]string{"--service", "etcd-operator", "--span-name", "Reconcile", "--threshold", "p99:+25%"}, globs...)
	checkReleaseGate(t, "otlp-file A/A", append([]string{"--baseline", "v2.0.0", "--candidate", "v2.0.0-rebuild"}, common...), 0)
	checkReleaseGate(t, "otlp-file regression", append([]string{"--baseline", "v2.0.0", "--candidate", "v2.1.0"}, common...), 1)
}
