package operatorlogsreceiver

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func ts(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return uint64(v.UnixNano())
}

func TestParseCRI(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		ok      bool
		ts      string
		stream  uint8
		partial bool
		msg     string
	}{
		{"containerd Z", `2024-03-01T10:11:12.123456789Z stdout F {"level":"info","msg":"hi"}`, true, "2024-03-01T10:11:12.123456789Z", streamStdout, false, `{"level":"info","msg":"hi"}`},
		{"crio offset", `2024-03-01T10:11:12.123456789+02:00 stderr F boom`, true, "2024-03-01T10:11:12.123456789+02:00", streamStderr, false, "boom"},
		{"negative offset short fraction", `2024-03-01T10:11:12.5-05:30 stdout P part`, true, "2024-03-01T10:11:12.5-05:30", streamStdout, true, "part"},
		{"no fraction", `2024-03-01T10:11:12Z stdout F x`, true, "2024-03-01T10:11:12Z", streamStdout, false, "x"},
		{"empty message with space", `2024-03-01T10:11:12Z stdout F `, true, "2024-03-01T10:11:12Z", streamStdout, false, ""},
		{"empty message without space", `2024-03-01T10:11:12Z stdout F`, true, "2024-03-01T10:11:12Z", streamStdout, false, ""},
		{"extra tags", `2024-03-01T10:11:12Z stdout F:x:y msg`, true, "2024-03-01T10:11:12Z", streamStdout, false, "msg"},
		{"message keeps spaces", `2024-03-01T10:11:12Z stdout F  two  spaces `, true, "2024-03-01T10:11:12Z", streamStdout, false, " two  spaces "},
		{"leap day", `2024-02-29T00:00:00Z stdout F x`, true, "2024-02-29T00:00:00Z", streamStdout, false, "x"},
		{"bad day", `2023-02-29T00:00:00Z stdout F x`, false, "", 0, false, ""},
		{"bad stream", `2024-03-01T10:11:12Z stdin F x`, false, "", 0, false, ""},
		{"bad tag", `2024-03-01T10:11:12Z stdout X x`, false, "", 0, false, ""},
		{"tag too long", `2024-03-01T10:11:12Z stdout FF x`, false, "", 0, false, ""},
		{"no timestamp", `stdout F x`, false, "", 0, false, ""},
		{"plain json", `{"level":"info"}`, false, "", 0, false, ""},
		{"empty", ``, false, "", 0, false, ""},
		{"ten fraction digits", `2024-03-01T10:11:12.1234567891Z stdout F x`, true, "2024-03-01T10:11:12.1234567891Z", streamStdout, false, "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, ok := parseCRI(tt.line)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			if want := ts(t, tt.ts); l.ts != want {
				t.Errorf("ts = %d, want %d", l.ts, want)
			}
			if l.stream != tt.stream || l.partial != tt.partial || l.msg != tt.msg {
				t.Errorf("got stream=%d partial=%v msg=%q, want %d %v %q", l.stream, l.partial, l.msg, tt.stream, tt.partial, tt.msg)
			}
		})
	}
}

func TestParseDocker(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		ok      bool
		stream  uint8
		partial bool
		msg     string
		ts      string
	}{
		{"typical", `{"log":"{\"level\":\"info\",\"msg\":\"hi\"}\n","stream":"stdout","time":"2024-03-01T10:11:12.123456789Z"}`, true, streamStdout, false, `{"level":"info","msg":"hi"}`, "2024-03-01T10:11:12.123456789Z"},
		{"split by docker", `{"log":"first half","stream":"stderr","time":"2024-03-01T10:11:12Z"}`, true, streamStderr, true, "first half", "2024-03-01T10:11:12Z"},
		{"key order and extra keys", `{"time":"2024-03-01T10:11:12Z","attrs":{"a":[1,2.5e3,true,null]},"stream":"stdout","log":"x\n"}`, true, streamStdout, false, "x", "2024-03-01T10:11:12Z"},
		{"escapes and surrogates", `{"log":"tab\tq\"\\ \u00e9 \ud83d\ude00 \ud800x\n","stream":"stdout","time":"2024-03-01T10:11:12Z"}`, true, streamStdout, false, "tab\tq\"\\ é 😀 \uFFFDx", "2024-03-01T10:11:12Z"},
		{"invalid utf8 kept", "{\"log\":\"a\xffb\\n\",\"stream\":\"stdout\",\"time\":\"2024-03-01T10:11:12Z\"}", true, streamStdout, false, "a\xffb", "2024-03-01T10:11:12Z"},
		{"missing stream", `{"log":"x\n","time":"2024-03-01T10:11:12Z"}`, false, 0, false, "", ""},
		{"bad escape", `{"log":"\q","stream":"stdout","time":"2024-03-01T10:11:12Z"}`, false, 0, false, "", ""},
		{"trailing garbage", `{"log":"x\n","stream":"stdout","time":"2024-03-01T10:11:12Z"} x`, false, 0, false, "", ""},
		{"truncated", `{"log":"x\n","stream":"std`, false, 0, false, "", ""},
		{"bad time", `{"log":"x\n","stream":"stdout","time":"yesterday"}`, false, 0, false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, ok := parseDocker(tt.line, nil)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			if string(l.msg) != tt.msg || l.stream != tt.stream || l.partial != tt.partial {
				t.Errorf("got msg=%q stream=%d partial=%v, want %q %d %v", l.msg, l.stream, l.partial, tt.msg, tt.stream, tt.partial)
			}
			if want := ts(t, tt.ts); l.ts != want {
				t.Errorf("ts = %d, want %d", l.ts, want)
			}
		})
	}
}

func TestDetectFormat(t *testing.T) {
	tests := []struct{ line, want string }{
		{`2024-03-01T10:11:12.1Z stdout F {"a":1}`, FormatCRI},
		{`2024-03-01T10:11:12.1+00:00 stderr P x`, FormatCRI},
		{`{"log":"x\n","stream":"stdout","time":"2024-03-01T10:11:12Z"}`, FormatDocker},
		{`{"level":"info","msg":"started"}`, FormatJSON},
		{`plain text`, FormatJSON},
	}
	for _, tt := range tests {
		if got := detectFormat(tt.line); got != tt.want {
			t.Errorf("detectFormat(%q) = %s, want %s", tt.line, got, tt.want)
		}
	}
}

// FuzzCRILine checks the parser never panics, that what it returns is a
// suffix of the line, and that its timestamp is time.Parse's whenever it
// accepts.
func FuzzCRILine(f *testing.F) {
	for _, s := range []string{
		`2024-03-01T10:11:12.123456789Z stdout F {"a":1}`,
		`2024-03-01T10:11:12.123456789+02:00 stderr P part`,
		`2024-03-01T10:11:12Z stdout F:x `,
		`2024-02-29T23:59:59.9-23:59 stdout F`,
		`1970-01-01T00:00:00Z stdout F x`,
		`0000-01-01T00:00:00Z stdout F x`,
		`garbage`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		l, ok := parseCRI(line)
		if !ok {
			return
		}
		if !strings.HasSuffix(line, l.msg) {
			t.Fatalf("msg %q is not a suffix of %q", l.msg, line)
		}
		tsText := line[:strings.IndexByte(line, ' ')]
		ref, err := time.Parse(time.RFC3339Nano, tsText)
		if err != nil {
			t.Fatalf("accepted %q, time.Parse rejects: %v", tsText, err)
		}
		want := uint64(0) // outside 1970..2261: framing valid, no Unix nanoseconds
		if y := ref.Year(); y >= 1970 && y <= 2261 && ref.UnixNano() > 0 {
			want = uint64(ref.UnixNano())
		}
		if l.ts != want {
			t.Fatalf("ts %d, time.Parse says %d for %q", l.ts, want, tsText)
		}
	})
}

// FuzzDockerLine checks the parser never panics and agrees with
// encoding/json on the message whenever it accepts valid UTF-8 input.
func FuzzDockerLine(f *testing.F) {
	for _, s := range []string{
		`{"log":"{\"level\":\"info\"}\n","stream":"stdout","time":"2024-03-01T10:11:12.123456789Z"}`,
		`{"log":"half","stream":"stderr","time":"2024-03-01T10:11:12Z"}`,
		`{"time":"2024-03-01T10:11:12Z","attrs":{"a":[1,-2.5e-3,true,null,{}]},"stream":"stdout","log":"x\n"}`,
		`{"log":"\ud83d\ude00 \ud800 \u0041\n","stream":"stdout","time":"2024-03-01T10:11:12Z"}`,
		`{"log":1}`,
		`{}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		l, ok := parseDocker(line, nil)
		if !ok || !utf8.ValidString(line) {
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("accepted %q that encoding/json rejects: %v", line, err)
		}
		var want string
		if err := json.Unmarshal(m["log"], &want); err != nil {
			t.Fatalf("log of %q: %v", line, err)
		}
		got := string(l.msg)
		if !l.partial {
			got += "\n"
		}
		if got != want {
			t.Fatalf("log = %q, encoding/json says %q", got, want)
		}
	})
}

// BenchmarkParseTimestamp: the CRI timestamp of every line, containerd's
// form (Z) and CRI-O's (numeric offset).
func BenchmarkParseTimestamp(b *testing.B) {
	for _, s := range []string{"2024-03-01T10:11:12.123456789Z", "2024-03-01T10:11:12.123456789+02:00"} {
		b.Run(s[len(s)-6:], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := parseTimestamp(s); !ok {
					b.Fatal(s)
				}
			}
		})
	}
}
