package testservers

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
)

// t0 is "now" for every test: the stand-in reads the fake clock.
var lokiT0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

type lokiClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *lokiClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *lokiClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func startTestLoki(t *testing.T, opts ...LokiOption) (*StrictLoki, *lokiClock) {
	t.Helper()
	c := &lokiClock{t: lokiT0}
	return StartStrictLoki(t, append([]LokiOption{WithLokiClock(c.Now)}, opts...)...), c
}

const lokiAPIStream = `{app="api", service_name="api"}`

func lokiEnt(ts time.Time, line string, sm ...string) push.Entry {
	e := push.Entry{Timestamp: ts, Line: line}
	for i := 0; i+1 < len(sm); i += 2 {
		e.StructuredMetadata = append(e.StructuredMetadata, push.LabelAdapter{Name: sm[i], Value: sm[i+1]})
	}
	return e
}

func lokiStreamOf(labels string, entries ...push.Entry) push.Stream {
	return push.Stream{Labels: labels, Entries: entries}
}

func lokiReq(streams ...push.Stream) *push.PushRequest { return &push.PushRequest{Streams: streams} }

func lokiPost(t *testing.T, url string, body []byte, ctype, cenc string, hdr ...string) (int, string) {
	t.Helper()
	r, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		r.Header.Set("Content-Type", ctype)
	}
	if cenc != "" {
		r.Header.Set("Content-Encoding", cenc)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusNoContent {
		if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
			t.Errorf("status %d Content-Type %q, want Loki's http.Error text/plain", resp.StatusCode, ct)
		}
	}
	return resp.StatusCode, string(b)
}

func lokiPushProto(t *testing.T, s *StrictLoki, r *push.PushRequest, hdr ...string) (int, string) {
	t.Helper()
	b, err := EncodeLokiProto(r)
	if err != nil {
		t.Fatal(err)
	}
	return lokiPost(t, s.PushURL, b, "application/x-protobuf", "", hdr...)
}

func lokiLines(es []LokiEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Line)
	}
	return out
}

func lokiLabelsN(n int) string {
	var parts []string
	for i := 0; i < n; i++ {
		parts = append(parts, fmt.Sprintf(`l%02d="v"`, i))
	}
	return "{" + strings.Join(parts, ", ") + `, service_name="s"}`
}

// One case per rule: status, exact body, what the metric counts, what is kept.
func TestStrictLokiRules(t *testing.T) {
	long := strings.Repeat("x", 256<<10+1)
	cases := []struct {
		name    string
		limits  func(*LokiLimits)
		req     *push.PushRequest
		status  int
		body    string // exact, without the trailing newline http.Error adds
		discard map[string]int
		kept    []string
	}{
		{name: "accepted", req: lokiReq(lokiStreamOf(`{service_name="api", app="api"}`, lokiEnt(lokiT0, "ok"))),
			status: 204, kept: []string{"ok"}},
		{name: "line exactly max_line_size", req: lokiReq(lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0, long[1:]))),
			status: 204, kept: []string{long[1:]}},
		{name: "line_too_long", req: lokiReq(lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0, long))),
			status:  400,
			body:    fmt.Sprintf("Max entry size '262144' bytes exceeded for stream '%s' while adding an entry with length '262145' bytes", lokiAPIStream),
			discard: map[string]int{LokiReasonLineTooLong: 1}},
		{name: "greater_than_max_sample_age", req: lokiReq(lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0.Add(-168*time.Hour-time.Second), "old"))),
			status:  400,
			body:    "entry for stream '" + lokiAPIStream + "' has timestamp too old: 2025-05-25T11:59:59Z, oldest acceptable timestamp is: 2025-05-25T12:00:00Z",
			discard: map[string]int{LokiReasonGreaterThanMaxSampleAge: 1}},
		{name: "oldest acceptable timestamp is accepted", req: lokiReq(lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0.Add(-168*time.Hour), "edge"))),
			status: 204, kept: []string{"edge"}},
		{name: "reject_old_samples false", limits: func(l *LokiLimits) { l.RejectOldSamples = false },
			req:    lokiReq(lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0.Add(-1000*time.Hour), "ancient"))),
			status: 204, kept: []string{"ancient"}},
		{name: "too_far_in_future", req: lokiReq(lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0.Add(10*time.Minute+time.Second), "new"))),
			status:  400,
			body:    "entry for stream '" + lokiAPIStream + "' has timestamp too new: 2025-06-01T12:10:01Z",
			discard: map[string]int{LokiReasonTooFarInFuture: 1}},
		{name: "creation_grace_period edge is accepted", req: lokiReq(lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0.Add(10*time.Minute), "edge"))),
			status: 204, kept: []string{"edge"}},
		{name: "max_label_names_per_series", req: lokiReq(lokiStreamOf(lokiLabelsN(16), lokiEnt(lokiT0, "a"), lokiEnt(lokiT0, "b"))),
			status: 400,
			body:   "entry for stream '" + lokiLabelsN(16) + "' has 16 label names; limit 15",
			// Loki counts a label failure under its own reason and under invalid_labels.
			discard: map[string]int{LokiReasonMaxLabelNamesPerSeries: 2, LokiReasonInvalidLabels: 2}},
		{name: "15 labels plus service_name", req: lokiReq(lokiStreamOf(lokiLabelsN(15), lokiEnt(lokiT0, "a"))),
			status: 204, kept: []string{"a"}},
		{name: "label_name_too_long", limits: func(l *LokiLimits) { l.MaxLabelNameLength = 5 },
			req:     lokiReq(lokiStreamOf(`{abcdef="x", service_name="s"}`, lokiEnt(lokiT0, "a"))),
			status:  400,
			body:    `stream '{abcdef="x", service_name="s"}' has label name too long: 'abcdef'`,
			discard: map[string]int{LokiReasonLabelNameTooLong: 1, LokiReasonInvalidLabels: 1}},
		{name: "label_value_too_long", limits: func(l *LokiLimits) { l.MaxLabelValueLength = 3 },
			req:     lokiReq(lokiStreamOf(`{app="abcd", service_name="s"}`, lokiEnt(lokiT0, "a"))),
			status:  400,
			body:    `stream '{app="abcd", service_name="s"}' has label value too long: 'abcd'`,
			discard: map[string]int{LokiReasonLabelValueTooLong: 1, LokiReasonInvalidLabels: 1}},
		{name: "label_value_too_long default 2048", req: lokiReq(lokiStreamOf(`{app="`+strings.Repeat("v", 2049)+`"}`, lokiEnt(lokiT0, "a"))),
			status:  400,
			body:    `stream '{app="` + strings.Repeat("v", 2049) + `", service_name="` + strings.Repeat("v", 2049) + `"}' has label value too long: '` + strings.Repeat("v", 2049) + `'`,
			discard: map[string]int{LokiReasonLabelValueTooLong: 1, LokiReasonInvalidLabels: 1}},
		{name: "duplicate_label_names", req: lokiReq(lokiStreamOf(`{app="b", app="a", service_name="s"}`, lokiEnt(lokiT0, "a"))),
			status:  400,
			body:    `stream '{app="a", app="b", service_name="s"}' has duplicate label name: 'app'`,
			discard: map[string]int{LokiReasonDuplicateLabelNames: 1, LokiReasonInvalidLabels: 1}},
		{name: "missing_labels", limits: func(l *LokiLimits) { l.DiscoverServiceName = nil },
			req:    lokiReq(lokiStreamOf(`{}`, lokiEnt(lokiT0, "a"), lokiEnt(lokiT0, "b"))),
			status: 400, body: "error at least one label pair is required per stream",
			// missing_labels is incremented once per stream, invalid_labels per entry.
			discard: map[string]int{LokiReasonMissingLabels: 1, LokiReasonInvalidLabels: 2}},
		{name: "empty values are absent labels", limits: func(l *LokiLimits) { l.DiscoverServiceName = nil },
			req:    lokiReq(lokiStreamOf(`{app=""}`, lokiEnt(lokiT0, "a"))),
			status: 400, body: "error at least one label pair is required per stream",
			discard: map[string]int{LokiReasonMissingLabels: 1, LokiReasonInvalidLabels: 1}},
		{name: "no labels get service_name unknown_service", req: lokiReq(lokiStreamOf(`{}`, lokiEnt(lokiT0, "a"))),
			status: 204, kept: []string{"a"}},
		{name: "label syntax refuses the whole push", req: lokiReq(lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0, "fine")), lokiStreamOf(`{app=api}`, lokiEnt(lokiT0, "a"))),
			status: 400, body: `couldn't parse labels: 1:6: parse error: unexpected identifier "api" in label set, expected string`},
		{name: "invalid label name", req: lokiReq(lokiStreamOf(`{app-name="x"}`, lokiEnt(lokiT0, "a"))),
			status: 400, body: `couldn't parse labels: 1:5: parse error: unexpected character inside braces: '-'`},
		{name: "disallowed_structured_metadata", limits: func(l *LokiLimits) { l.AllowStructuredMetadata = false },
			req:     lokiReq(lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0, "a", "trace_id", "abc"))),
			status:  400,
			body:    "stream '" + lokiAPIStream + "' includes structured metadata, but this feature is disallowed. Please see `limits_config.allow_structured_metadata` or contact your Loki administrator to enable it.",
			discard: map[string]int{LokiReasonDisallowedStructuredMetadata: 1}},
		{name: "structured_metadata_too_large", limits: func(l *LokiLimits) { l.MaxStructuredMetadataSize = 10 },
			req:     lokiReq(lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0, "a", "k", "0123456789"))),
			status:  400,
			body:    "stream '" + lokiAPIStream + "' has structured metadata too large: '11' bytes, limit: '10' bytes. Please see `limits_config.max_structured_metadata_size` or contact your Loki administrator to increase it.",
			discard: map[string]int{LokiReasonStructuredMetadataTooLarge: 1}},
		{name: "structured_metadata_too_large default 64KB", req: lokiReq(lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0, "a", "k", strings.Repeat("v", 64<<10)))),
			status:  400,
			body:    "stream '" + lokiAPIStream + "' has structured metadata too large: '65537' bytes, limit: '65536' bytes. Please see `limits_config.max_structured_metadata_size` or contact your Loki administrator to increase it.",
			discard: map[string]int{LokiReasonStructuredMetadataTooLarge: 1}},
		{name: "structured_metadata_too_many", limits: func(l *LokiLimits) { l.MaxStructuredMetadataEntriesCount = 2 },
			req:     lokiReq(lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0, "a", "a", "1", "b", "2", "c", "3"))),
			status:  400,
			body:    "stream '" + lokiAPIStream + "' has too many structured metadata labels: '3', limit: '2'. Please see `limits_config.max_structured_metadata_entries_count` or contact your Loki administrator to increase it.",
			discard: map[string]int{LokiReasonStructuredMetadataTooMany: 1}},
		{name: "no streams", req: lokiReq(), status: 422, body: "error at least one valid stream is required for ingestion"},
		{name: "streams without entries", req: lokiReq(lokiStreamOf(lokiAPIStream)), status: 204},
		{name: "max_line_size_truncate", limits: func(l *LokiLimits) { l.MaxLineSize = 4; l.MaxLineSizeTruncate = true },
			req: lokiReq(lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0, "abcdefgh"))), status: 204, kept: []string{"abcd"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var opts []LokiOption
			if tc.limits != nil {
				opts = append(opts, WithLokiLimits(tc.limits))
			}
			s, _ := startTestLoki(t, opts...)
			status, body := lokiPushProto(t, s, tc.req)
			if status != tc.status {
				t.Fatalf("status %d, want %d (body %q)", status, tc.status, body)
			}
			if tc.status != 204 && body != tc.body+"\n" {
				t.Errorf("body\n got %q\nwant %q", body, tc.body+"\n")
			}
			got := s.Discarded()
			if tc.discard == nil {
				tc.discard = map[string]int{}
			}
			if !reflect.DeepEqual(got, tc.discard) {
				t.Errorf("discarded %v, want %v", got, tc.discard)
			}
			if g := lokiLines(s.Entries()); !reflect.DeepEqual(g, tc.kept) {
				t.Errorf("kept %d lines %.80q, want %d", len(g), g, len(tc.kept))
			}
			p := s.Pushes()[0]
			if p.Sent != p.Accepted+p.Refused+p.Duplicates {
				t.Errorf("push counts %+v: sent != accepted+refused+duplicates", p)
			}
		})
	}
}

func TestStrictLokiServiceNameDiscovery(t *testing.T) {
	s, _ := startTestLoki(t)
	lokiPushProto(t, s, lokiReq(
		lokiStreamOf(`{}`, lokiEnt(lokiT0, "a")),
		lokiStreamOf(`{job="batch", container="c"}`, lokiEnt(lokiT0, "b")),
		lokiStreamOf(`{service_name="own", app="x"}`, lokiEnt(lokiT0, "c")),
	))
	want := []string{`{service_name="unknown_service"}`, `{container="c", job="batch", service_name="c"}`, `{app="x", service_name="own"}`}
	var got []string
	for _, e := range s.Entries() {
		got = append(got, e.Stream)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("streams %q, want %q", got, want)
	}
}

func TestStrictLokiStructuredMetadataNames(t *testing.T) {
	s, _ := startTestLoki(t)
	js := []byte(`{"streams":[{"stream":{"app":"api"},"values":[["1748779200000000000","x",{"k8s.pod.name":"p","1st":"a","_x":"b","__y":"c"}]]}]}`)
	if status, body := lokiPost(t, s.PushURL, js, "application/json", ""); status != 204 {
		t.Fatal(status, body)
	}
	want := map[string]string{"k8s_pod_name": "p", "key_1st": "a", "key_x": "b", "__y": "c"}
	if got := s.Entries()[0].StructuredMetadata; !reflect.DeepEqual(got, want) {
		t.Errorf("metadata %v, want %v", got, want)
	}
}

func TestStrictLokiBodies(t *testing.T) {
	s, _ := startTestLoki(t)
	good, _ := EncodeLokiProto(lokiReq(lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0, "x"))))
	cases := []struct {
		name, ctype, cenc string
		body              []byte
		status            int
		want              string
	}{
		{"unsupported encoding", "application/x-protobuf", "br", good, 400, `Content-Encoding "br" not supported` + "\n"},
		{"no content type", "", "", good, 400, "mime: no media type\n"},
		{"corrupt snappy", "application/x-protobuf", "", []byte("not snappy"), 400, "snappy: corrupt input\n"},
		{"bad gzip", "application/json", "gzip", []byte("this is not a gzip stream"), 400, "gzip: invalid header\n"},
		{"malformed json", "application/json", "", []byte(`{"streams":[`), 400, ""},
		{"bad json timestamp", "application/json", "", []byte(`{"streams":[{"stream":{"a":"b"},"values":[["abc","x"]]}]}`), 400, ""},
		{"json entry of 4 values", "application/json", "", []byte(`{"streams":[{"stream":{"a":"b"},"values":[["1","x",{},"y"]]}]}`), 400, "error reading entry: array must contains 2 values\n"},
		{"any other type is protobuf", "text/plain", "", good, 204, ""},
		{"snappy bomb", "application/x-protobuf", "", []byte{0xff, 0xff, 0xff, 0xff, 0x0f}, 400, "message size too large than max (4294967295 vs 104857600)\n"},
		{"snappy content encoding is the default", "application/x-protobuf", "snappy", good, 204, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := lokiPost(t, s.PushURL, tc.body, tc.ctype, tc.cenc)
			if status != tc.status || (tc.want != "" && body != tc.want) {
				t.Errorf("got %d %q, want %d %q", status, body, tc.status, tc.want)
			}
		})
	}
	resp, err := http.Get(s.URL + "/ready")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/ready: %v %v", resp, err)
	}
	resp.Body.Close()
}

// The same entries as protobuf, JSON and gzip/deflate bodies are stored the same.
func TestStrictLokiFormatsAgree(t *testing.T) {
	r := lokiReq(
		lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0, "one", "trace_id", "0af7651916cd43dd8448eb211c80319c", "level", "info"), lokiEnt(lokiT0.Add(time.Millisecond), `two "quoted" ü`)),
		lokiStreamOf(`{app="worker", pod="w-1"}`, lokiEnt(lokiT0.Add(-time.Minute), "three")),
	)
	pb, err := EncodeLokiProto(r)
	if err != nil {
		t.Fatal(err)
	}
	js, err := EncodeLokiJSON(r)
	if err != nil {
		t.Fatal(err)
	}
	compress := func(b []byte, enc string) []byte {
		var buf bytes.Buffer
		var w io.WriteCloser
		if enc == "gzip" {
			w = gzip.NewWriter(&buf)
		} else {
			w, _ = flate.NewWriter(&buf, flate.DefaultCompression)
		}
		w.Write(b)
		w.Close()
		return buf.Bytes()
	}
	bodies := []struct {
		name, ctype, cenc string
		body              []byte
	}{
		{"protobuf", "application/x-protobuf", "", pb},
		{"json", "application/json", "", js},
		{"json charset", "application/json; charset=utf-8", "", js},
		{"gzip json", "application/json", "gzip", compress(js, "gzip")},
		{"deflate json", "application/json", "deflate", compress(js, "deflate")},
		{"gzip protobuf", "application/x-protobuf", "gzip", compress(pb, "gzip")},
	}
	var first []LokiEntry
	for _, b := range bodies {
		s, _ := startTestLoki(t)
		if status, body := lokiPost(t, s.PushURL, b.body, b.ctype, b.cenc); status != 204 {
			t.Fatalf("%s: %d %s", b.name, status, body)
		}
		got := s.Entries()
		if len(got) != 3 {
			t.Fatalf("%s: %d entries", b.name, len(got))
		}
		if first == nil {
			first = got
			continue
		}
		if !reflect.DeepEqual(got, first) {
			t.Errorf("%s stored\n%+v\nprotobuf stored\n%+v", b.name, got, first)
		}
	}
	if sm := first[0].StructuredMetadata; sm["trace_id"] != "0af7651916cd43dd8448eb211c80319c" || sm["level"] != "info" {
		t.Errorf("structured metadata %v", sm)
	}
}

// The distributor drops invalid entries, stores the others and answers 400
// with its errors grouped.
func TestStrictLokiPartialAccept(t *testing.T) {
	s, _ := startTestLoki(t, WithLokiLimits(func(l *LokiLimits) { l.MaxLineSize = 5 }))
	status, body := lokiPushProto(t, s, lokiReq(
		lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0, "one"), lokiEnt(lokiT0, "toolong"), lokiEnt(lokiT0.Add(time.Second), "three")),
		lokiStreamOf(`{app="b"}`, lokiEnt(lokiT0, "four")),
	))
	want := "Max entry size '5' bytes exceeded for stream '" + lokiAPIStream + "' while adding an entry with length '7' bytes\n"
	if status != 400 || body != want {
		t.Fatalf("got %d %q, want 400 %q", status, body, want)
	}
	if got := lokiLines(s.Entries()); !reflect.DeepEqual(got, []string{"one", "three", "four"}) {
		t.Errorf("stored %q", got)
	}
	p := s.Pushes()[0]
	if p.Sent != 4 || p.Accepted != 3 || p.Refused != 1 {
		t.Errorf("push %+v", p)
	}

	// Several errors: each distinct message with its count, joined by "; ".
	status, body = lokiPushProto(t, s, lokiReq(
		lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0, "long-1"), lokiEnt(lokiT0, "long-1"), lokiEnt(lokiT0.Add(time.Hour), "new")),
	))
	want = "2 errors like: Max entry size '5' bytes exceeded for stream '" + lokiAPIStream + "' while adding an entry with length '6' bytes; " +
		"1 errors like: entry for stream '" + lokiAPIStream + "' has timestamp too new: 2025-06-01T13:00:00Z\n"
	if status != 400 || body != want {
		t.Errorf("got %d %q\nwant 400 %q", status, body, want)
	}
	if d := s.Discarded(); d[LokiReasonLineTooLong] != 3 || d[LokiReasonTooFarInFuture] != 1 {
		t.Errorf("discarded %v", d)
	}
}

func TestStrictLokiOutOfOrderWindow(t *testing.T) {
	s, _ := startTestLoki(t)
	if status, body := lokiPushProto(t, s, lokiReq(lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0, "newest")))); status != 204 {
		t.Fatal(status, body)
	}
	// The window is newest - max_chunk_age/2 = 11:00; 10:59 is refused, 11:00 kept.
	status, body := lokiPushProto(t, s, lokiReq(lokiStreamOf(lokiAPIStream,
		lokiEnt(lokiT0.Add(-61*time.Minute), "too far"), lokiEnt(lokiT0.Add(-60*time.Minute), "edge"), lokiEnt(lokiT0.Add(-59*time.Minute), "inside"))))
	want := "entry with timestamp 2025-06-01 10:59:00 +0000 UTC ignored, reason: 'entry too far behind, entry timestamp is: 2025-06-01T10:59:00Z, oldest acceptable timestamp is: 2025-06-01T11:00:00Z',\n" +
		"user 'fake', total ignored: 1 out of 3 for stream: " + lokiAPIStream + "\n"
	if status != 400 || body != want {
		t.Fatalf("got %d %q\nwant 400 %q", status, body, want)
	}
	if got := lokiLines(s.Entries()); !reflect.DeepEqual(got, []string{"newest", "edge", "inside"}) {
		t.Errorf("stored %q", got)
	}
	if d := s.Discarded(); !reflect.DeepEqual(d, map[string]int{LokiReasonTooFarBehind: 1}) {
		t.Errorf("discarded %v", d)
	}

	// The window is per stream: a new stream takes an old entry.
	if status, body := lokiPushProto(t, s, lokiReq(lokiStreamOf(`{app="other"}`, lokiEnt(lokiT0.Add(-5*time.Hour), "other")))); status != 204 {
		t.Errorf("other stream: %d %s", status, body)
	}

	// Within one push the newest entry so far moves the window.
	status, body = lokiPushProto(t, s, lokiReq(lokiStreamOf(`{app="fresh"}`, lokiEnt(lokiT0, "a"), lokiEnt(lokiT0.Add(-2*time.Hour), "b"))))
	if status != 400 || !strings.Contains(body, "total ignored: 1 out of 2 for stream: {app=\"fresh\", service_name=\"fresh\"}") {
		t.Errorf("got %d %q", status, body)
	}

	// At most max_returned_stream_errors (10) lines, then the total.
	var old []push.Entry
	for i := 0; i < 12; i++ {
		old = append(old, lokiEnt(lokiT0.Add(-3*time.Hour+time.Duration(i)*time.Second), fmt.Sprint("old ", i)))
	}
	status, body = lokiPushProto(t, s, lokiReq(lokiStreamOf(lokiAPIStream, old...)))
	if status != 400 || strings.Count(body, "ignored, reason:") != 10 || !strings.HasSuffix(body, "user 'fake', total ignored: 12 out of 12 for stream: "+lokiAPIStream+"\n") {
		t.Errorf("got %d %q", status, body)
	}
}

// Loki's ingester answers for the last stream of the push only.
func TestStrictLokiLastStreamAnswers(t *testing.T) {
	s, _ := startTestLoki(t)
	lokiPushProto(t, s, lokiReq(lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0, "newest"))))
	late := lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0.Add(-2*time.Hour), "late"))
	fine := lokiStreamOf(`{app="b"}`, lokiEnt(lokiT0, "fine"))

	// The failing stream first: 204, and its entry is lost silently.
	if status, body := lokiPushProto(t, s, lokiReq(late, fine)); status != 204 {
		t.Errorf("late then fine: %d %q, want 204", status, body)
	}
	// The failing stream last: 400.
	if status, _ := lokiPushProto(t, s, lokiReq(fine, late)); status != 400 {
		t.Errorf("fine then late: %d, want 400", status)
	}
	if d := s.Discarded(); d[LokiReasonTooFarBehind] != 2 {
		t.Errorf("discarded %v", d)
	}
	// An ingester error replaces the distributor's validation errors.
	s.SetLimits(func(l *LokiLimits) { l.MaxLineSize = 5 })
	status, body := lokiPushProto(t, s, lokiReq(lokiStreamOf(`{app="c"}`, lokiEnt(lokiT0, "long line")), late))
	if status != 400 || !strings.Contains(body, "entry too far behind") || strings.Contains(body, "Max entry size") {
		t.Errorf("got %d %q", status, body)
	}
}

func TestStrictLokiDuplicates(t *testing.T) {
	s, _ := startTestLoki(t)
	e := lokiEnt(lokiT0, "same")
	for i := 0; i < 2; i++ {
		if status, body := lokiPushProto(t, s, lokiReq(lokiStreamOf(lokiAPIStream, e))); status != 204 {
			t.Fatal(status, body)
		}
	}
	// Within a push, apart, and the same timestamp with another line.
	lokiPushProto(t, s, lokiReq(lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0.Add(time.Second), "b"), e, lokiEnt(lokiT0, "same ts, other line"))))
	if got := lokiLines(s.Entries()); !reflect.DeepEqual(got, []string{"same", "b", "same ts, other line"}) {
		t.Errorf("stored %q", got)
	}
	ps := s.Pushes()
	if ps[1].Duplicates != 1 || ps[2].Duplicates != 1 || ps[2].Accepted != 2 {
		t.Errorf("pushes %+v", ps)
	}
	if d := s.Discarded(); len(d) != 0 {
		t.Errorf("duplicates are not discards: %v", d)
	}
}

func TestStrictLokiTenantRateLimit(t *testing.T) {
	// 1000 bytes/s, burst 2000 bytes (limits are in MB of 1048576 bytes).
	s, clock := startTestLoki(t, WithLokiLimits(func(l *LokiLimits) {
		l.IngestionRateMB = 1000.0 / lokiBytesInMB
		l.IngestionBurstSizeMB = 2000.0 / lokiBytesInMB
	}))
	k := strings.Repeat("k", 1000)
	status, body := lokiPushProto(t, s, lokiReq(lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0, k+"1"), lokiEnt(lokiT0, k+"2"))))
	want := "Ingestion rate limit exceeded for user fake (limit: 1000 bytes/sec) while attempting to ingest '2' lines totaling '2002' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased\n"
	if status != 429 || body != want {
		t.Fatalf("got %d %q", status, body)
	}
	if len(s.Entries()) != 0 {
		t.Fatal("a 429 push stored entries")
	}
	// A refused push takes no tokens: 2000 bytes pass, then nothing is left.
	if status, _ := lokiPushProto(t, s, lokiReq(lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0, k), lokiEnt(lokiT0, k[:999]+"x")))); status != 204 {
		t.Fatalf("within burst: %d", status)
	}
	if status, _ := lokiPushProto(t, s, lokiReq(lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0, "y")))); status != 429 {
		t.Fatalf("empty bucket: %d", status)
	}
	clock.Advance(time.Second)
	if status, _ := lokiPushProto(t, s, lokiReq(lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0, "y")))); status != 204 {
		t.Fatalf("after refill: %d", status)
	}
	// 429 wins over 400, and counts only the entries that passed validation.
	s.SetLimits(func(l *LokiLimits) { l.MaxLineSize = 1001 })
	status, body = lokiPushProto(t, s, lokiReq(lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0, k+"toolong"), lokiEnt(lokiT0, k), lokiEnt(lokiT0, k+"2"), lokiEnt(lokiT0, k+"3"))))
	if status != 429 || !strings.Contains(body, "while attempting to ingest '3' lines totaling '3002' bytes") {
		t.Errorf("got %d %q", status, body)
	}
	if d := s.Discarded(); d[LokiReasonRateLimited] != 2+1+3 || d[LokiReasonLineTooLong] != 1 {
		t.Errorf("discarded %v", d)
	}
	// Structured metadata counts toward the rate.
	s.SetLimits(func(l *LokiLimits) { l.IngestionBurstSizeMB = 10.0 / lokiBytesInMB })
	if status, _ := lokiPushProto(t, s, lokiReq(lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0, "abcde", "k", "123456")))); status != 429 {
		t.Errorf("11 bytes with metadata through a 10-byte burst: %d", status)
	}
}

func TestStrictLokiPerStreamRateLimit(t *testing.T) {
	h := strings.Repeat("h", 100)
	three := func(labels string) push.Stream {
		return lokiStreamOf(labels, lokiEnt(lokiT0, h), lokiEnt(lokiT0.Add(time.Millisecond), h), lokiEnt(lokiT0.Add(2*time.Millisecond), h))
	}
	limits := WithLokiLimits(func(l *LokiLimits) { l.PerStreamRateLimit = 100; l.PerStreamRateLimitBurst = 250 })

	t.Run("whole stream (shard_streams.enabled)", func(t *testing.T) {
		s, clock := startTestLoki(t, limits)
		status, body := lokiPushProto(t, s, lokiReq(three(lokiAPIStream)))
		line := "reason: 'Per stream rate limit exceeded (limit: 100B/sec) while attempting to ingest for stream '" + lokiAPIStream +
			"' totaling 100B, consider splitting a stream via additional labels or contact your Loki administrator to see if the limit can be increased',\n"
		want := "entry with timestamp 2025-06-01 12:00:00 +0000 UTC ignored, " + line +
			"entry with timestamp 2025-06-01 12:00:00.001 +0000 UTC ignored, " + line +
			"entry with timestamp 2025-06-01 12:00:00.002 +0000 UTC ignored, " + line +
			"user 'fake', total ignored: 3 out of 3 for stream: " + lokiAPIStream + "\n"
		if status != 429 || body != want {
			t.Fatalf("got %d %q\nwant 429 %q", status, body, want)
		}
		if len(s.Entries()) != 0 || s.Discarded()[LokiReasonStreamRateLimit] != 3 {
			t.Fatalf("entries %d, discarded %v", len(s.Entries()), s.Discarded())
		}
		// Another stream has its own bucket; the last stream answers.
		if status, _ := lokiPushProto(t, s, lokiReq(three(lokiAPIStream), lokiStreamOf(`{app="b"}`, lokiEnt(lokiT0, h)))); status != 204 {
			t.Errorf("limited stream then a fine one: %d, want 204", status)
		}
		if got := lokiLines(s.Entries()); len(got) != 1 {
			t.Errorf("stored %d, want only the fine stream's entry", len(got))
		}
		clock.Advance(3 * time.Second) // 250 tokens back
		if status, _ := lokiPushProto(t, s, lokiReq(lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0, h), lokiEnt(lokiT0, h+"2")))); status != 204 {
			t.Errorf("after refill: %d", status)
		}
	})
	t.Run("entry by entry", func(t *testing.T) {
		s, _ := startTestLoki(t, limits, WithLokiLimits(func(l *LokiLimits) { l.ShardStreamsEnabled = false }))
		status, body := lokiPushProto(t, s, lokiReq(three(lokiAPIStream)))
		if status != 429 || strings.Count(body, "ignored") != 2 || !strings.Contains(body, "total ignored: 1 out of 3") {
			t.Fatalf("got %d %q", status, body)
		}
		if len(s.Entries()) != 2 {
			t.Errorf("stored %d, want 2", len(s.Entries()))
		}
	})
}

func TestStrictLokiTenant(t *testing.T) {
	s, _ := startTestLoki(t)
	lokiPushProto(t, s, lokiReq(lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0, "a"))), "X-Scope-OrgID", "team-a")
	if p := s.Pushes()[0]; p.Tenant != "fake" || p.OrgID != "team-a" || s.Entries()[0].Tenant != "fake" {
		t.Errorf("single-tenant Loki uses tenant fake: %+v", p)
	}

	m, _ := startTestLoki(t, WithLokiAuth())
	if status, body := lokiPushProto(t, m, lokiReq(lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0, "a")))); status != 401 || body != "no org id\n" {
		t.Errorf("no header: %d %q", status, body)
	}
	if status, _ := lokiPushProto(t, m, lokiReq(lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0, "a"))), "X-Scope-OrgID", "a|b"); status != 400 {
		t.Errorf("two tenants: %d", status)
	}
	m.SetLimits(func(l *LokiLimits) { l.MaxLineSize = 1 })
	lokiPushProto(t, m, lokiReq(lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0, "a"))), "X-Scope-OrgID", "team-a")
	lokiPushProto(t, m, lokiReq(lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0, "bb"))), "X-Scope-OrgID", "team-a")
	if es := m.Entries(); len(es) != 1 || es[0].Tenant != "team-a" {
		t.Errorf("entries %+v", es)
	}
	if !strings.Contains(m.Metrics(), `loki_discarded_samples_total{reason="line_too_long",tenant="team-a"} 1`) {
		t.Errorf("metrics:\n%s", m.Metrics())
	}
}

func TestStrictLokiFaultsAndMetrics(t *testing.T) {
	s, _ := startTestLoki(t)
	s.FailNext(2, 503, "upstream down")
	var got []int
	for i := 0; i < 3; i++ {
		status, _ := lokiPushProto(t, s, lokiReq(lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0.Add(time.Duration(i)), fmt.Sprint(i)))))
		got = append(got, status)
	}
	if !reflect.DeepEqual(got, []int{503, 503, 204}) || !reflect.DeepEqual(lokiLines(s.Entries()), []string{"2"}) {
		t.Errorf("statuses %v, entries %q", got, lokiLines(s.Entries()))
	}
	if ps := s.Pushes(); !ps[0].Fault || ps[0].Body != "upstream down\n" || ps[2].Fault {
		t.Errorf("pushes %+v", ps)
	}

	lokiPushProto(t, s, lokiReq(lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0.Add(time.Hour), "future"))))
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"# TYPE loki_discarded_samples_total counter\n",
		`loki_discarded_samples_total{reason="too_far_in_future",tenant="fake"} 1` + "\n",
		`loki_discarded_bytes_total{reason="too_far_in_future",tenant="fake"} 6` + "\n",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, b)
		}
	}
}

func TestStrictLokiConcurrent(t *testing.T) {
	s, _ := startTestLoki(t)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				b, _ := EncodeLokiProto(lokiReq(lokiStreamOf(fmt.Sprintf(`{app="g%d"}`, g), lokiEnt(lokiT0.Add(time.Duration(i)), fmt.Sprint(i)))))
				resp, err := http.Post(s.PushURL, "application/x-protobuf", bytes.NewReader(b))
				if err == nil {
					resp.Body.Close()
				}
			}
		}(g)
	}
	wg.Wait()
	if n := len(s.Entries()); n != 160 {
		t.Errorf("%d entries, want 160", n)
	}
}

func TestParseLokiLabels(t *testing.T) {
	ok := []struct{ in, want string }{
		{`{a="b"}`, `{a="b"}`},
		{" { b = \"2\" ,\n a='1', } ", `{a="1", b="2"}`},
		{"{a=`x\\y`}", `{a="x\\y"}`},
		{`{a="\u00e9\n\x41\101"}`, `{a="é\nAA"}`},
		{`{a='it\'s'}`, `{a="it's"}`},
		{`up{job="x"}`, `{__name__="up", job="x"}`},
		{`up`, `{__name__="up"}`},
		{`{}`, `{}`},
		{`{a="", b="1"}`, `{b="1"}`},
		{`{a="2", a="1"}`, `{a="1", a="2"}`},
	}
	for _, tc := range ok {
		_, got, err := ParseLokiLabels(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("%q: got %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	bad := []struct{ in, want string }{
		{``, `1:1: parse error: unexpected end of input`},
		{`{a="b"`, `1:1: parse error: unexpected end of input inside braces`},
		{`{a=b}`, `1:4: parse error: unexpected identifier "b" in label set, expected string`},
		{`{a-b="c"}`, `1:3: parse error: unexpected character inside braces: '-'`},
		{`{a!="b"}`, `1:3: parse error: unexpected "!=" in label set, expected "="`},
		{`{a=~"b"}`, `1:3: parse error: unexpected "=~" in label set, expected "="`},
		{`{a="b"} x`, `1:9: parse error: unexpected identifier "x"`},
		{`{a="\q"}`, `1:6: parse error: unknown escape sequence U+0071 'q'`},
		{`{a="b}`, `1:4: parse error: unterminated quoted string`},
		{"{a=\"b\nc\"}", `1:4: parse error: unterminated quoted string`},
		{`{a="b" c="d"}`, `1:8: parse error: unexpected identifier "c" in label set, expected "," or "}"`},
		{`{,}`, `1:2: parse error: unexpected "," in label set, expected identifier or "}"`},
		{"{\n1a=\"b\"}", `2:1: parse error: unexpected character inside braces: '1'`},
	}
	for _, tc := range bad {
		if _, _, err := ParseLokiLabels(tc.in); err == nil || err.Error() != tc.want {
			t.Errorf("%q: got %v, want %q", tc.in, err, tc.want)
		}
	}
}

func FuzzLokiLabels(f *testing.F) {
	for _, s := range []string{`{a="b"}`, `{a="b", c='d',}`, "up{a=`x`}", `{a="\u00e9\x00"}`, `{}`, `{a="1", a="2"}`, `{a=b}`, ``} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		ls, err := parseLokiLabels(in)
		if err != nil {
			if !strings.Contains(err.Error(), ": parse error: ") {
				t.Fatalf("%q: error %q is not a Prometheus parse error", in, err)
			}
			return
		}
		// Property: Loki's printed form parses back to the same labels.
		canon := ls.String()
		again, err := parseLokiLabels(canon)
		if err != nil {
			t.Fatalf("%q printed as %q, which does not parse: %v", in, canon, err)
		}
		if again.String() != canon {
			t.Fatalf("%q → %q → %q", in, canon, again.String())
		}
		for _, l := range ls {
			if l.Value == "" {
				t.Fatalf("%q kept an empty value", in)
			}
		}
	})
}

func FuzzLokiPushBody(f *testing.F) {
	pb, _ := EncodeLokiProto(lokiReq(
		lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0, "a", "k", "v"), lokiEnt(lokiT0, "a"), lokiEnt(lokiT0.Add(-2*time.Hour), "b")),
		lokiStreamOf(`{app="x"}`, lokiEnt(lokiT0.Add(time.Hour), "c")),
	))
	js, _ := EncodeLokiJSON(lokiReq(lokiStreamOf(lokiAPIStream, lokiEnt(lokiT0, "a"), lokiEnt(lokiT0.Add(-200*time.Hour), "old"))))
	f.Add(pb, uint8(0))
	f.Add(js, uint8(1))
	f.Add([]byte(`{"streams":[{"stream":{"a":"b"},"values":[["1748779200000000000","x",{"k":"v"}]]}]}`), uint8(1))
	f.Add([]byte("garbage"), uint8(3))
	f.Add([]byte("\xca\x92\xc0\xc2\v\xbf\xc0\xc0\xc0\xc0\xc0\xc0\xa00"), uint8(4)) // once a 3 GB snappy allocation
	f.Add(snappy.Encode(nil, []byte{0x0a, 0x02, 0x0a, 0x00}), uint8(0))
	kinds := []struct{ ctype, cenc string }{
		{"application/x-protobuf", ""}, {"application/json", ""}, {"application/json", "gzip"},
		{"application/x-protobuf", "gzip"}, {"text/plain", ""}, {"", ""}, {"application/json", "deflate"},
	}
	f.Fuzz(func(t *testing.T, body []byte, kind uint8) {
		k := kinds[int(kind)%len(kinds)]
		clock := &lokiClock{t: lokiT0}
		s := NewStrictLoki(WithLokiClock(clock.Now), WithLokiLimits(func(l *LokiLimits) {
			l.MaxLineSize = 64
			l.PerStreamRateLimitBurst = 512
			l.IngestionBurstSizeMB = 2048.0 / lokiBytesInMB
			l.MaxDecompressedSize = 1 << 20
		}))
		h := s.Handler()
		for i := 0; i < 2; i++ { // twice: the second push meets the first's state
			r := httptest.NewRequest(http.MethodPost, "/loki/api/v1/push", bytes.NewReader(body))
			if k.ctype != "" {
				r.Header.Set("Content-Type", k.ctype)
			}
			if k.cenc != "" {
				r.Header.Set("Content-Encoding", k.cenc)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			switch w.Code {
			case 204, 400, 422, 429:
			default:
				t.Fatalf("status %d %q", w.Code, w.Body.String())
			}
		}
		// Properties: every entry sent is accepted, refused or a duplicate;
		// only accepted entries are stored, and they obey the rules.
		accepted := 0
		for _, p := range s.Pushes() {
			if p.Sent != p.Accepted+p.Refused+p.Duplicates {
				t.Fatalf("push %+v: sent != accepted+refused+duplicates", p)
			}
			if p.Status == 204 && p.Body != "" {
				t.Fatalf("204 with a body %q", p.Body)
			}
			accepted += p.Accepted
		}
		es := s.Entries()
		if len(es) != accepted {
			t.Fatalf("%d stored, %d accepted", len(es), accepted)
		}
		seen := map[string]bool{}
		for _, e := range es {
			if len(e.Line) > 64 || e.Timestamp.Before(lokiT0.Add(-168*time.Hour)) || e.Timestamp.After(lokiT0.Add(10*time.Minute)) {
				t.Fatalf("stored an entry the rules refuse: %+v", e)
			}
			if len(e.Labels) == 0 || e.Labels["service_name"] == "" {
				t.Fatalf("stored an entry without labels or service_name: %+v", e)
			}
			key := fmt.Sprint(e.Tenant, e.Stream, e.Timestamp.UnixNano(), e.Line)
			if seen[key] {
				t.Fatalf("stored a duplicate: %+v", e)
			}
			seen[key] = true
		}
		ds := s.Discarded()
		reasons := make([]string, 0, len(ds))
		for r := range ds {
			reasons = append(reasons, r)
		}
		sort.Strings(reasons)
		for _, r := range reasons {
			if ds[r] < 0 {
				t.Fatalf("negative count for %s", r)
			}
		}
	})
}

// TestStrictLokiQueryRange: the minimal query_range answers a stream
// selector with label filters on structured metadata, in both shapes
// (categorize-labels or folded), within [start, end), limited and ordered.
func TestStrictLokiQueryRange(t *testing.T) {
	s, _ := startTestLoki(t)
	const trace = "0af7651916cd43dd8448eb211c80319c"
	ts := func(ms int) time.Time { return lokiT0.Add(-time.Minute + time.Duration(ms)*time.Millisecond) }
	if code, body := lokiPushProto(t, s, lokiReq(
		lokiStreamOf(`{namespace="ns", service_name="op", revision="v2"}`,
			lokiEnt(ts(1), "first", "trace_id", trace, "level", "info"),
			lokiEnt(ts(2), "other trace", "trace_id", "ffffffffffffffffffffffffffffffff"),
			lokiEnt(ts(3), "second", "trace_id", trace, "level", "error", "risk", "etcd_timeout"),
			lokiEnt(ts(4), "no metadata")),
		lokiStreamOf(`{namespace="other", service_name="op", revision="v2"}`, lokiEnt(ts(5), "other namespace", "trace_id", trace)),
	)); code != http.StatusNoContent {
		t.Fatalf("push: %d %s", code, body)
	}
	type answer struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Stream map[string]string `json:"stream"`
				Values [][]any           `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	get := func(q string, categorize bool, params ...string) (int, answer, string) {
		t.Helper()
		v := url.Values{"query": {q}}
		for i := 0; i+1 < len(params); i += 2 {
			v.Set(params[i], params[i+1])
		}
		r, _ := http.NewRequest(http.MethodGet, s.URL+"/loki/api/v1/query_range?"+v.Encode(), nil)
		if categorize {
			r.Header.Set("X-Loki-Response-Encoding-Flags", "categorize-labels")
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var a answer
		if resp.StatusCode == http.StatusOK {
			if err := json.Unmarshal(b, &a); err != nil {
				t.Fatalf("%v: %s", err, b)
			}
		}
		return resp.StatusCode, a, string(b)
	}
	window := []string{"start", strconv.FormatInt(ts(0).UnixNano(), 10), "end", strconv.FormatInt(lokiT0.UnixNano(), 10)}
	q := `{service_name="op", namespace="ns"} | trace_id="` + trace + `"`

	code, a, body := get(q, true, append(window, "direction", "forward")...)
	if code != http.StatusOK || a.Status != "success" || a.Data.ResultType != "streams" || len(a.Data.Result) != 1 {
		t.Fatalf("categorized: %d %s", code, body)
	}
	st := a.Data.Result[0]
	if st.Stream["namespace"] != "ns" || st.Stream["trace_id"] != "" || len(st.Values) != 2 {
		t.Fatalf("categorized stream %+v", st)
	}
	if st.Values[0][1] != "first" || st.Values[1][1] != "second" {
		t.Errorf("forward order: %v", st.Values)
	}
	if md, _ := st.Values[1][2].(map[string]any)["structuredMetadata"].(map[string]any); md["risk"] != "etcd_timeout" || md["trace_id"] != trace {
		t.Errorf("third element %v", st.Values[1])
	}
	if st.Values[0][0] != strconv.FormatInt(ts(1).UnixNano(), 10) {
		t.Errorf("timestamp %v, want %d", st.Values[0][0], ts(1).UnixNano())
	}

	// Folded: metadata in the stream labels, one stream per combined set; newest first.
	code, a, body = get(q, false, window...)
	if code != http.StatusOK || len(a.Data.Result) != 2 {
		t.Fatalf("folded: %d %s", code, body)
	}
	if a.Data.Result[0].Stream["level"] != "error" || a.Data.Result[0].Stream["trace_id"] != trace || a.Data.Result[0].Values[0][1] != "second" || len(a.Data.Result[0].Values[0]) != 2 {
		t.Errorf("folded, backward: %+v", a.Data.Result)
	}

	// Limit, end exclusive, != filters.
	if _, a, _ = get(q, true, append(window, "limit", "1")...); len(a.Data.Result) != 1 || len(a.Data.Result[0].Values) != 1 || a.Data.Result[0].Values[0][1] != "second" {
		t.Errorf("limit 1, backward: %+v", a.Data.Result)
	}
	if _, a, _ = get(q, true, "start", window[1], "end", strconv.FormatInt(ts(3).UnixNano(), 10)); len(a.Data.Result) != 1 || len(a.Data.Result[0].Values) != 1 {
		t.Errorf("end is exclusive: %+v", a.Data.Result)
	}
	if _, a, _ = get(`{service_name="op"} | level!="info"`, true, window...); len(a.Data.Result) == 0 {
		t.Error("!= filter: nothing")
	} else {
		n := 0
		for _, r := range a.Data.Result {
			n += len(r.Values)
		}
		if n != 4 {
			t.Errorf("level != info: %d lines, want 4 (absent metadata is not info)", n)
		}
	}
	if _, a, _ = get(q, true); len(a.Data.Result) != 1 {
		t.Errorf("default window (the last hour): %+v", a.Data.Result)
	}
	for _, bad := range []string{`{service_name=~"op"}`, `{service_name="op"} |= "x"`, `{service_name="op"} | json`, `sum(count_over_time({a="b"}[1m]))`, `{service_name="op"} | trace_id=~"0*1"`} {
		if code, _, body := get(bad, false); code != http.StatusBadRequest || !strings.Contains(body, "parse error") {
			t.Errorf("%s: %d %q, want 400 parse error", bad, code, body)
		}
	}
	// Pushing still works as before (the query changed nothing stored).
	if n := len(s.Entries()); n != 5 {
		t.Errorf("%d entries stored, want 5", n)
	}
}
