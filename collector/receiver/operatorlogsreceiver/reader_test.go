package operatorlogsreceiver

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/selftelemetry"
)

type rec struct {
	body      string
	ts        uint64
	stream    string
	truncated bool
	parseErr  string
}

func records(lds []plog.Logs) []rec {
	var out []rec
	for _, ld := range lds {
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			sls := ld.ResourceLogs().At(i).ScopeLogs()
			for j := 0; j < sls.Len(); j++ {
				lrs := sls.At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					lr := lrs.At(k)
					r := rec{body: lr.Body().Str(), ts: uint64(lr.Timestamp())}
					if v, ok := lr.Attributes().Get(attrIOStream); ok {
						r.stream = v.Str()
					}
					if v, ok := lr.Attributes().Get(conventions.LogTruncated); ok {
						r.truncated = v.Bool()
					}
					if v, ok := lr.Attributes().Get(conventions.LogParseError); ok {
						r.parseErr = v.Str()
					}
					out = append(out, r)
				}
			}
		}
	}
	return out
}

// feed runs physical lines through a reader's line handling, as the file
// reading does, and returns the records shipped.
func feed(t *testing.T, cfg *Config, lines []string, finish bool) []rec {
	t.Helper()
	sink := new(consumertest.LogsSink)
	rc, err := newReceiver(receivertest.NewNopSettings(componentType), cfg, sink, selftelemetry.New())
	if err != nil {
		t.Fatal(err)
	}
	rc.ctx = context.Background()
	r := rc.newReader(nil, nil, "/x/0.log", []byte("x"))
	for _, l := range lines {
		r.line(l)
	}
	if finish {
		r.finishPartials()
	}
	if err := rc.flush(); err != nil {
		t.Fatal(err)
	}
	return records(sink.AllLogs())
}

func testConfig(format string) *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.Include = []string{"/nonexistent/*.log"}
	cfg.Format = Format(format)
	return cfg
}

func TestFramingToRecords(t *testing.T) {
	const t1, t2 = "2024-03-01T10:11:12.000000001Z", "2024-03-01T12:11:12.5+02:00"
	tests := []struct {
		name   string
		format string
		lines  []string
		want   []rec
	}{
		{"cri full lines both timestamp forms", FormatCRI,
			[]string{t1 + ` stdout F {"a":1}`, t2 + ` stderr F oops`},
			[]rec{{body: `{"a":1}`, ts: 1709287872000000001, stream: "stdout"}, {body: "oops", ts: 1709287872500000000, stream: "stderr"}}},
		{"cri partial lines joined, interleaved streams", FormatCRI,
			[]string{t1 + ` stdout P {"msg":"`, t1 + ` stderr F err line`, t2 + ` stdout P long`, t2 + ` stdout F er"}`},
			[]rec{{body: "err line", ts: 1709287872000000001, stream: "stderr"}, {body: `{"msg":"longer"}`, ts: 1709287872000000001, stream: "stdout"}}},
		{"cri bad framing shipped raw", FormatCRI,
			[]string{`not a cri line`, t1 + ` stdin F x`},
			[]rec{{body: "not a cri line", parseErr: reasonBadFrame}, {body: t1 + ` stdin F x`, parseErr: reasonBadFrame}}},
		{"docker with split line", FormatDocker,
			[]string{`{"log":"{\"a\":","stream":"stdout","time":"` + t1 + `"}`, `{"log":"1}\n","stream":"stdout","time":"` + t2 + `"}`, `{"log":"e\n","stream":"stderr","time":"` + t2 + `"}`},
			[]rec{{body: `{"a":1}`, ts: 1709287872000000001, stream: "stdout"}, {body: "e", ts: 1709287872500000000, stream: "stderr"}}},
		{"docker bad framing", FormatDocker,
			[]string{`{"log":`},
			[]rec{{body: `{"log":`, parseErr: reasonBadFrame}}},
		{"json lines unchanged", FormatJSON,
			[]string{`{"level":"info"}`, ``, "  spaced \t"},
			[]rec{{body: `{"level":"info"}`}, {body: ""}, {body: "  spaced \t"}}},
		{"auto detects cri", FormatAuto,
			[]string{t1 + ` stdout F hello`},
			[]rec{{body: "hello", ts: 1709287872000000001, stream: "stdout"}}},
		{"invalid utf8 bytes kept", FormatJSON,
			[]string{"a\xff\xfeb"},
			[]rec{{body: "a\xff\xfeb"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := feed(t, testConfig(tt.format), tt.lines, false)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d records %+v, want %d %+v", len(got), got, len(tt.want), tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("record %d: got %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestLongLines(t *testing.T) {
	const ts = "2024-03-01T10:11:12Z"
	long := strings.Repeat("a", 1024) + strings.Repeat("b", 1024) + "cc"
	t.Run("split keeps every byte", func(t *testing.T) {
		cfg := testConfig(FormatJSON)
		cfg.MaxLineSize = 1024
		got := feed(t, cfg, []string{long, "short"}, false)
		want := []rec{{body: strings.Repeat("a", 1024), truncated: true}, {body: strings.Repeat("b", 1024), truncated: true}, {body: "cc", truncated: true}, {body: "short"}}
		if len(got) != len(want) {
			t.Fatalf("got %d records, want %d", len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("piece %d: got %.20q... truncated=%v", i, got[i].body, got[i].truncated)
			}
		}
	})
	t.Run("truncate keeps the first max_line_size bytes", func(t *testing.T) {
		cfg := testConfig(FormatJSON)
		cfg.MaxLineSize = 1024
		cfg.LongLines = LongLinesTrunc
		got := feed(t, cfg, []string{long, "short"}, false)
		if len(got) != 2 || got[0].body != strings.Repeat("a", 1024) || !got[0].truncated || got[1].body != "short" || got[1].truncated {
			t.Fatalf("got %+v", got)
		}
	})
	t.Run("cri partial pieces over the limit", func(t *testing.T) {
		cfg := testConfig(FormatCRI)
		cfg.MaxLineSize = 1024
		piece := strings.Repeat("x", 700)
		got := feed(t, cfg, []string{ts + " stdout P " + piece, ts + " stdout P " + piece, ts + " stdout F end"}, false)
		var joined strings.Builder
		for _, r := range got {
			if !r.truncated || r.stream != "stdout" {
				t.Errorf("piece %+v: want truncated stdout", r)
			}
			joined.WriteString(r.body)
		}
		if joined.String() != piece+piece+"end" {
			t.Errorf("pieces do not join to the line (%d bytes)", joined.Len())
		}
		if len(got) != 2 {
			t.Errorf("got %d pieces, want 2", len(got))
		}
	})
	t.Run("unfinished partial shipped at end of file", func(t *testing.T) {
		got := feed(t, testConfig(FormatCRI), []string{ts + " stdout P half"}, true)
		if len(got) != 1 || got[0].body != "half" {
			t.Fatalf("got %+v", got)
		}
	})
}

func TestK8sFromPath(t *testing.T) {
	tests := []struct {
		path string
		ok   bool
		want k8sNames
	}{
		{"/var/log/pods/opsys_manager-7d9f_0f3c-11/manager/0.log", true, k8sNames{"opsys", "manager-7d9f", "0f3c-11", "manager"}},
		{"/var/log/pods/opsys_manager-7d9f_0f3c-11/manager/12.log.20240301-101112", true, k8sNames{"opsys", "manager-7d9f", "0f3c-11", "manager"}},
		{"/var/log/pods/opsys_manager/manager/0.log", false, k8sNames{}},
		{"/var/log/containers/x_y_z/manager/0.log", false, k8sNames{}},
		{"/var/log/pods/a_b_c/manager/app.log", false, k8sNames{}},
	}
	for _, tt := range tests {
		got, ok := k8sFromPath(tt.path)
		if ok != tt.ok || got != tt.want {
			t.Errorf("%s: got %+v %v, want %+v %v", tt.path, got, ok, tt.want, tt.ok)
		}
	}
}

// Long lines are cut where a character starts when the bytes there are
// valid UTF-8, so every piece is valid UTF-8; pieces never exceed
// max_line_size and join to the line.
func TestLongLinesSplitAtRuneBoundary(t *testing.T) {
	const limit = 1024
	tests := []struct {
		name      string
		line      string
		wantLens  []int // piece lengths
		wantValid bool  // every piece valid UTF-8
	}{
		{"2-byte char straddles the limit", strings.Repeat("a", limit-1) + "é" + "tail", []int{limit - 1, 6}, true},
		{"3-byte char straddles the limit", strings.Repeat("a", limit-2) + "€" + "tail", []int{limit - 2, 7}, true},
		{"4-byte char straddles the limit", strings.Repeat("a", limit-1) + "😀" + "tail", []int{limit - 1, 8}, true},
		{"4-byte char ends at the limit", strings.Repeat("a", limit-4) + "😀" + "tail", []int{limit, 4}, true},
		{"all 3-byte chars, several pieces", strings.Repeat("€", 1000), []int{1023, 1023, 954}, true},
		{"invalid bytes are cut at the limit", strings.Repeat("a", limit-1) + "\xe2\x82" + "x", []int{limit, 2}, false},
		{"stray continuation bytes are cut at the limit", strings.Repeat("a", limit-2) + "\x82\x82\x82\x82", []int{limit, 2}, false},
	}
	for _, tt := range tests {
		for _, mode := range []string{LongLinesSplit, LongLinesTrunc} {
			t.Run(tt.name+"/"+mode, func(t *testing.T) {
				cfg := testConfig(FormatJSON)
				cfg.MaxLineSize = limit
				cfg.LongLines = LongLines(mode)
				got := feed(t, cfg, []string{tt.line}, false)
				want := tt.wantLens
				if mode == LongLinesTrunc {
					want = want[:1]
				}
				if len(got) != len(want) {
					t.Fatalf("got %d pieces, want %d", len(got), len(want))
				}
				var joined strings.Builder
				for i, r := range got {
					if len(r.body) != want[i] || !r.truncated {
						t.Errorf("piece %d: %d bytes truncated=%v, want %d bytes truncated", i, len(r.body), r.truncated, want[i])
					}
					if tt.wantValid && !utf8.ValidString(r.body) {
						t.Errorf("piece %d is not valid UTF-8: ends %q", i, r.body[max(0, len(r.body)-4):])
					}
					joined.WriteString(r.body)
				}
				if mode == LongLinesSplit && joined.String() != tt.line {
					t.Error("pieces do not join to the line")
				}
			})
		}
	}
}

// splitPoint against its definition, on arbitrary bytes: the piece is at
// most max bytes, at most 3 shorter, and shorter only to keep a valid
// character whole.
func FuzzSplitPoint(f *testing.F) {
	f.Add([]byte("aaé€😀"), uint8(3))
	f.Add([]byte("\xe2\x82\xac\xe2\x82\xac"), uint8(4))
	f.Add([]byte("\x82\x82\x82\x82\x82"), uint8(2))
	f.Fuzz(func(t *testing.T, b []byte, m uint8) {
		limit := int(m)%16 + 1
		if len(b) <= limit {
			return
		}
		k := splitPoint(b, limit)
		if k > limit || k < limit-3 || k < 1 {
			t.Fatalf("cut at %d for limit %d", k, limit)
		}
		if k < limit {
			c, size := utf8.DecodeRune(b[k:])
			if (c == utf8.RuneError && size <= 1) || k+size <= limit {
				t.Fatalf("cut at %d before limit %d without a valid character across it", k, limit)
			}
		} else if utf8.RuneStart(b[limit]) {
			return
		} else {
			// Cut inside something: no valid character may start
			// within 3 bytes before limit and reach past it.
			for j := limit - 1; j > 0 && j >= limit-3; j-- {
				if c, size := utf8.DecodeRune(b[j:]); !(c == utf8.RuneError && size <= 1) && j+size > limit {
					t.Fatalf("cut at limit %d splits the valid character at %d", limit, j)
				}
			}
		}
	})
}
