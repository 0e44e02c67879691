package lokiexporter

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opsight/opsight/internal/testservers"
)

// TestREADMEReplay runs the replay commands of README.md ("Replaying")
// against the strict Loki stand-in: every record of a finished file is
// accepted (an old one at the time of replay, with original_ts), the file
// is removed, and the newest file is left alone.
func TestREADMEReplay(t *testing.T) {
	for _, tool := range []string{"bash", "jq", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: the README's replay commands need it", tool)
		}
	}
	readme := readFixture(t, "../README.md")
	i := strings.Index(readme, "### Replaying")
	start := strings.Index(readme[i:], "```sh\n")
	end := strings.Index(readme[i+start+6:], "```")
	if i < 0 || start < 0 || end < 0 {
		t.Fatal("README.md has no sh block under ### Replaying")
	}
	script := readme[i+start+6 : i+start+6+end]

	loki := testservers.StartStrictLoki(t)
	dir := t.TempDir()
	now := time.Now()
	recs := []deadRecord{
		{Stream: map[string]string{"pod": "pod-a", "service_name": "x"}, TS: strconv.FormatInt(now.Add(-3*time.Hour).UnixNano(), 10), Line: "old line",
			StructuredMetadata: map[string]string{"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}, Reason: reasonTooFarBehind},
		{Stream: map[string]string{"pod": "pod-a", "service_name": "x"}, TS: strconv.FormatInt(now.UnixNano(), 10), Line: "recent \"quoted\" line", Reason: reasonUnknown},
	}
	var b strings.Builder
	for _, r := range recs {
		j, _ := json.Marshal(r)
		b.Write(j)
		b.WriteByte('\n')
	}
	first := filepath.Join(dir, "loki-loki-20261201T000000.000000000Z.ndjson")
	newest := filepath.Join(dir, "loki-loki-20261201T010000.000000000Z.ndjson")
	for _, f := range []string{first, newest} {
		if err := os.WriteFile(f, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	script = strings.Replace(script, "LOKI=http://loki.monitoring:3100/loki/api/v1/push", "LOKI="+loki.PushURL, 1)
	script = strings.Replace(script, "cd /var/lib/opsight/dead-letter", "cd "+dir, 1)
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	if _, err := os.Stat(first); !os.IsNotExist(err) {
		t.Errorf("the replayed file is still there (%v); output:\n%s", err, out)
	}
	if _, err := os.Stat(newest); err != nil {
		t.Errorf("the newest file was touched: %v", err)
	}
	got := loki.Entries()
	if len(got) != 2 || got[0].Line != "old line" || got[1].Line != recs[1].Line {
		t.Fatalf("Loki stored %+v", got)
	}
	if got[0].StructuredMetadata["original_ts"] != recs[0].TS || got[0].StructuredMetadata["trace_id"] == "" || got[0].Timestamp.Before(now) {
		t.Errorf("old record: %+v; want restamped with original_ts and its metadata", got[0])
	}
	if strconv.FormatInt(got[1].Timestamp.UnixNano(), 10) != recs[1].TS {
		t.Errorf("recent record restamped: %v", got[1].Timestamp)
	}
}
