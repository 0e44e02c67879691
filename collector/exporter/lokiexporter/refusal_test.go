package lokiexporter

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/grafana/loki/pkg/push"
)

// lokiMessages reads testdata/loki_messages.txt: Loki's message formats by
// reason (sources cited in the file).
func lokiMessages(t testing.TB) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "loki_messages.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "\t")
		if !ok {
			t.Fatalf("loki_messages.txt: no tab in %q", line)
		}
		out[k] = v
	}
	return out
}

// groupedErrors joins messages as Loki's util.GroupedErrors does.
func groupedErrors(msgs []string) string {
	counts := map[string]int{}
	var order []string
	for _, m := range msgs {
		if counts[m] == 0 {
			order = append(order, m)
		}
		counts[m]++
	}
	var b strings.Builder
	for i, m := range order {
		if i > 0 {
			b.WriteString("; ")
		}
		if len(order) > 1 || counts[m] > 1 {
			fmt.Fprintf(&b, "%d errors like: ", counts[m])
		}
		b.WriteString(m)
	}
	return b.String()
}

func readFixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseRefusals(t *testing.T) {
	sec := func(s string) int64 {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm.UnixNano()
	}
	tests := []struct {
		name    string
		body    string
		want    []refusal // message not compared
		unknown int
	}{
		{
			name: "docs form (lower case, no quotes)", body: readFixture(t, "refusal_docs_form.txt"),
			want: []refusal{{reason: reasonLineTooLong, labels: `{container="manager", namespace="operators", pod="pod-a", service_name="cert-manager"}`, count: 1, limit: 262144, length: 262146}},
		},
		{
			name: "grouped distributor errors, '; ' inside a label value", body: readFixture(t, "refusal_grouped.txt"),
			want: []refusal{
				{reason: reasonTooOld, labels: `{namespace="operators", pod="pod-a"}`, count: 3, entrySec: sec("2026-11-20T10:00:00Z"), bound: sec("2026-11-24T14:00:00Z")},
				{reason: reasonLineTooLong, labels: `{namespace="operators", pod="pod-a"}`, count: 1, limit: 262144, length: 262146},
				{reason: reasonLabelValueTooLong, labels: `{namespace="operators", pod="pod;b"}`, count: 1, stream: true},
			},
		},
		{
			name: "ingester per-stream form", body: readFixture(t, "refusal_ingester.txt"),
			want: []refusal{{reason: reasonTooFarBehind, labels: `{foo="bar"}`, count: 2, total: 3, ingester: true, bound: sec("1970-01-01T00:00:10Z"),
				listedTS: []int64{0, int64(time.Second)}}},
		},
		{name: "not Loki's", body: "<html><body>403 Forbidden</body></html>", unknown: 1},
		{name: "too new, source form", body: fmt.Sprintf(lokiMessages(t)[reasonTooNew], `{a="b"}`, "2030-01-01T00:00:00Z"),
			want: []refusal{{reason: reasonTooNew, labels: `{a="b"}`, count: 1, entrySec: sec("2030-01-01T00:00:00Z")}}},
		{name: "structured metadata too large", body: fmt.Sprintf(lokiMessages(t)[reasonMetadataTooLarge], `{a="b"}`, 70000, 65536),
			want: []refusal{{reason: reasonMetadataTooLarge, labels: `{a="b"}`, count: 1, length: 70000, limit: 65536}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			refs, unknown := parseRefusals(tt.body)
			if len(unknown) != tt.unknown {
				t.Errorf("unknown segments %q, want %d", unknown, tt.unknown)
			}
			for i := range refs {
				refs[i].message = ""
				refs[i].listedWhy = nil
			}
			if !reflect.DeepEqual(refs, tt.want) && !(len(refs) == 0 && len(tt.want) == 0) {
				t.Errorf("got  %+v\nwant %+v", refs, tt.want)
			}
		})
	}
}

func TestParseLabels(t *testing.T) {
	got, ok := parseLabels(`{a="x, y=\"z\"", b="\u00e9\n"}`)
	want := push.LabelsAdapter{{Name: "a", Value: `x, y="z"`}, {Name: "b", Value: "é\n"}}
	if !ok || !reflect.DeepEqual(got, want) {
		t.Errorf("got %v %v, want %v", got, ok, want)
	}
	for _, bad := range []string{"", "{}", `{a=b}`, `{="x"}`, `a="b"`} {
		if _, ok := parseLabels(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

// fuzzBatch is a small batch for the mapping fuzz test.
func fuzzBatch() *batch {
	b := &batch{byKey: map[string]*stream{}}
	for _, key := range []string{`{namespace="operators", pod="pod-a"}`, `{foo="bar"}`} {
		pairs, _ := parseLabels(key)
		s := &stream{key: key, pairs: pairs}
		for i := 0; i < 5; i++ {
			s.add(push.Entry{Timestamp: time.Unix(int64(i), 0), Line: strings.Repeat("x", i*100)})
		}
		b.byKey[key] = s
		b.streams = append(b.streams, s)
	}
	return b
}

// FuzzParseRefusals: any body parses without panic; each refusal stands for
// at least one entry; mapping never marks more entries than the push has,
// nor any that is not in it.
func FuzzParseRefusals(f *testing.F) {
	for _, name := range []string{"refusal_docs_form.txt", "refusal_grouped.txt", "refusal_ingester.txt"} {
		f.Add(readFixture(f, name))
	}
	f.Add("400 Bad Request")
	f.Add("2 errors like: ; ; 0 errors like: stream '{' has label name too long: ")
	f.Add("user 'x', total ignored: 99 out of 1 for stream: {foo=\"bar\"}")
	f.Fuzz(func(t *testing.T, body string) {
		refs, unknown := parseRefusals(body)
		if strings.TrimSpace(body) != "" && len(refs) == 0 && len(unknown) == 0 {
			t.Fatal("a non-empty body gave neither refusals nor unknown segments")
		}
		for _, r := range refs {
			if r.count < 1 || r.reason == "" {
				t.Fatalf("refusal %+v", r)
			}
		}
		b := fuzzBatch()
		m := mapRefusals(b, refs, unknown)
		total := 0
		for s, marks := range m.marks {
			if b.byKey[s.key] != s {
				t.Fatal("marked a stream not in the push")
			}
			for i := range marks {
				if i < 0 || i >= len(s.entries) {
					t.Fatalf("marked entry %d of %d", i, len(s.entries))
				}
			}
			total += len(marks)
		}
		if total > b.entryCount() {
			t.Fatalf("%d marked of %d entries", total, b.entryCount())
		}
	})
}

func TestSplitLine(t *testing.T) {
	tests := []struct {
		name string
		line string
		max  int
		want []string
	}{
		{"short", "abc", 4, []string{"abc"}},
		{"exact", "abcd", 4, []string{"abcd"}},
		{"ascii", "abcdefghij", 4, []string{"abcd", "efgh", "ij"}},
		{"multi-byte at the cut", "aé€😀b", 4, []string{"aé", "€", "😀", "b"}},
		{"4-byte runes", "😀😀", 4, []string{"😀", "😀"}},
		{"repaired bytes", validUTF8("ab\xffcd"), 4, []string{"ab", "\uFFFDc", "d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := splitLine(tt.line, tt.max); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzSplitLine: after repair, every piece is within the limit and valid
// UTF-8, and the pieces concatenate to the repaired line.
func FuzzSplitLine(f *testing.F) {
	f.Add("hello", 4)
	f.Add("aé€😀b\xff\xfe", 5)
	f.Add(strings.Repeat("€", 100), 7)
	f.Fuzz(func(t *testing.T, line string, max int) {
		if max < minLineSize || max > 1<<16 {
			max = minLineSize + (max&0xff+0xff)%64
		}
		fixed := validUTF8(line)
		pieces := splitLine(fixed, max)
		var b strings.Builder
		for _, p := range pieces {
			if len(p) > max || (len(p) == 0 && fixed != "") || !utf8.ValidString(p) {
				t.Fatalf("piece %q (len %d, max %d)", p, len(p), max)
			}
			b.WriteString(p)
		}
		if b.String() != fixed {
			t.Fatalf("pieces %q do not concatenate to %q", pieces, fixed)
		}
	})
}
