package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestFaultQueueDiskFull: the backend is down and the persistent queue's
// disk is small (a 6 MiB tmpfs) against what the operator writes. The
// collector's persistent queue loses items when its storage hits ENOSPC, so
// the sidecar bounds the queue by bytes below the free space and blocks when
// it is full: it must stop reading (backpressure) rather than fill the disk
// or drop, and once the backend is back every line arrives exactly once.
// Needs root for the tmpfs mount, as CI and the dev machines have.
func TestFaultQueueDiskFull(t *testing.T) { eachLogStore(t, testFaultQueueDiskFull) }

func testFaultQueueDiskFull(t *testing.T, store string) {
	r := newFaultRig(t, store, "op-diskfull", 0, nil)
	state := r.sc.stateDir()
	if err := os.MkdirAll(state, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", state).CombinedOutput(); err != nil {
		t.Fatalf("mounting a 6 MiB tmpfs for the queue (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", state).Run() })

	r.proxy.set(modeRefuse)
	r.sc.start()
	const rate, n = 2000, 40_000 // ~14 MiB of lines: more than the queue's disk holds
	done := r.writeAsync(0, n, rate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	read := r.metric(t, "opsight_log_records_total", "")
	queued := r.metric(t, "opsight_export_queue_size", "")
	if r.sc.cmd == nil || r.sc.cmd.ProcessState != nil {
		t.Fatalf("the sidecar exited with its queue full\n%s", r.sc.logs())
	}
	t.Logf("backend down, queue full: read %.0f of %d lines, queue size %.0f", read, n, queued)
	if read >= n {
		t.Errorf("the sidecar read all %d lines with the backend down and a queue that cannot hold them: no backpressure", n)
	}
	if strings.Contains(r.sc.logs(), "no space left on device") {
		t.Errorf("the queue's disk filled up (ENOSPC): the queue bound did not keep it below the free space\n%s", r.sc.logs())
	}
	r.proxy.set(modePass)
	r.verifyExactlyOnce(t, n, "queue disk full")
}
