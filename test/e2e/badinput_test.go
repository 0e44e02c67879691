package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/opsight/opsight/internal/simoperator"
)

// badInputCases: the corpus files and the opsight.parse_error reason every
// line of each must get ("" = parsed as a JSON object, no reason). The 1 MiB
// line is longer than the receiver's 256 KiB max_line_size and arrives as
// four pieces, each marked too_long.
var badInputCases = []struct {
	file    string
	reasons []string // per line of the file, in order
}{
	{"truncated_json.log", []string{"truncated_json"}},
	{"deep_nesting.log.gz", []string{""}},
	{"long_line.log.gz", []string{"too_long"}},
	{"binary.log", []string{"binary"}},
	{"invalid_utf8.log", []string{"invalid_utf8"}},
	{"crlf.log", []string{""}},
	{"nul_bytes.log", []string{"binary", "binary"}},
	{"panic_dump.log", []string{"not_json", "not_json", "empty", "not_json", "not_json", "not_json", "not_json"}},
	{"timestamps.log", []string{"", "", "", "", ""}},
}

const maxLineSize = 256 << 10 // operatorlogs receiver default max_line_size

// corpusLines reads a corpus file as raw operator lines.
func corpusLines(t *testing.T, name string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "badinput", name))
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(name, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	return lines
}

// expectedRecord is one record the sidecar must write for the corpus.
type expectedRecord struct {
	file   string
	raw    []byte // the operator's line (or piece of it)
	reason string
}

// TestBadInputCorpus writes every corpus line through the whole path
// (CRI file → operatorlogs → operatorenrich → localfile NDJSON). Each line
// arrives, in order, raw where it is not a JSON object (invalid bytes as
// U+FFFD), with the expected parse-error reason; the reasons are counted on
// /metrics; the sidecar is still running afterwards.
func TestBadInputCorpus(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := podEnv(dir, "ops", "op-bad", "v1.0.0")
	sc := newSidecar(t, env)
	sc.start()
	w, err := simoperator.NewCRIWriter(simoperator.PodLogDir(filepath.Join(dir, "pods"), "ops", "op-bad", "uid-bad", "manager"), 0, 0)
	if err != nil {
		t.Fatal(err)
	}

	var want []expectedRecord
	wantReasons := map[string]int{}
	for _, c := range badInputCases {
		lines := corpusLines(t, c.file)
		if len(lines) != len(c.reasons) {
			t.Fatalf("%s has %d lines, the table names %d reasons", c.file, len(lines), len(c.reasons))
		}
		for i, l := range lines {
			if err := w.WriteLine(time.Now(), "stdout", string(l)); err != nil {
				t.Fatal(err)
			}
			pieces := [][]byte{}
			for len(l) > maxLineSize {
				pieces, l = append(pieces, l[:maxLineSize]), l[maxLineSize:]
			}
			for _, p := range append(pieces, l) {
				want = append(want, expectedRecord{c.file, p, c.reasons[i]})
				if c.reasons[i] != "" {
					wantReasons[c.reasons[i]]++ // counted per record: each piece of a long line
				}
			}
		}
	}
	// The sentinel comes last in the same file: once it is out, all is.
	if err := w.WriteLine(time.Now(), "stdout", `{"level":"info","msg":"sentinel","seq":0}`); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(env["OPSIGHT_STATE_DIR"], "out")
	if !waitFor(60*time.Second, func() bool { return seqCount(readNDJSON(t, out))[0] > 0 }) {
		t.Fatalf("the sentinel line never arrived\nsidecar log:\n%s", sc.logs())
	}
	got := readRawNDJSON(t, out)
	if len(got) > 0 {
		got = got[:len(got)-1] // the sentinel
	}
	t.Logf("corpus: %d records expected, %d written", len(want), len(got))
	if len(got) != len(want) {
		t.Errorf("%d records written, want %d (one per line, four for the 1 MiB line)", len(got), len(want))
	}
	for i := 0; i < len(want) && i < len(got); i++ {
		e, g := want[i], got[i]
		name := fmt.Sprintf("%s record %d", e.file, i)
		if r := g.fields["opsight.parse_error"]; r != e.reason {
			t.Errorf("%s: opsight.parse_error = %q, want %q", name, r, e.reason)
		}
		if e.reason == "" {
			// A JSON object is written verbatim, the added fields after it.
			obj := bytes.TrimSpace(e.raw)
			if !bytes.HasPrefix(g.raw, obj[:len(obj)-1]) {
				t.Errorf("%s: the object was not kept verbatim:\n got %.200q\nwant %.200q…", name, g.raw, obj)
			}
			continue
		}
		line, ok := g.fields["line"]
		if !ok {
			t.Errorf("%s: no raw \"line\" field in %.200q", name, g.raw)
			continue
		}
		if wantLine := replaceInvalid(e.raw); line != wantLine {
			t.Errorf("%s: raw line changed:\n got %.200q\nwant %.200q", name, line, wantLine)
		}
	}

	for reason, n := range wantReasons {
		v, err := sc.metricValue("opsight_log_parse_errors_total", fmt.Sprintf("reason=%q", reason))
		if err != nil {
			t.Fatal(err)
		}
		if int(v) != n {
			t.Errorf("opsight_log_parse_errors_total{reason=%q} = %v, want %d", reason, v, n)
		}
	}
	total, _ := sc.metricValue("opsight_log_parse_errors_total", "")
	sum := 0
	reasons := make([]string, 0, len(wantReasons))
	for r, n := range wantReasons {
		sum += n
		reasons = append(reasons, fmt.Sprintf("%s=%d", r, n))
	}
	sort.Strings(reasons)
	t.Logf("parse errors expected %v, counted %v in all", reasons, total)
	if int(total) != sum {
		t.Errorf("opsight_log_parse_errors_total sums to %v over all reasons, want %d", total, sum)
	}

	if sc.cmd == nil || sc.cmd.Process.Signal(syscall.Signal(0)) != nil {
		t.Errorf("the sidecar is not running after the corpus\n%s", sc.logs())
	}
	if strings.Contains(sc.logs(), "panic:") {
		t.Errorf("the sidecar logged a panic:\n%s", sc.logs())
	}
}

// rawRecord is one NDJSON output line: its text and its string fields.
type rawRecord struct {
	raw    []byte
	fields map[string]string
}

// readRawNDJSON reads the localfile exporter's output in file order (files
// are named by start time), keeping each line's text.
func readRawNDJSON(t *testing.T, dir string) []rawRecord {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "logs-*.ndjson"))
	sort.Strings(files)
	var out []rawRecord
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			r := rawRecord{raw: append([]byte(nil), sc.Bytes()...), fields: map[string]string{}}
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Errorf("%s: output line is not JSON: %v: %.200q", f, err, sc.Text())
			}
			for k, v := range m {
				if s, ok := v.(string); ok {
					r.fields[k] = s
				}
			}
			out = append(out, r)
		}
		fh.Close()
	}
	return out
}

// replaceInvalid is what the NDJSON (and Loki) output does with bytes that
// are not UTF-8: each becomes U+FFFD.
func replaceInvalid(b []byte) string {
	var s strings.Builder
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size == 1 {
			s.WriteRune(utf8.RuneError)
		} else {
			s.Write(b[:size])
		}
		b = b[size:]
	}
	return s.String()
}
