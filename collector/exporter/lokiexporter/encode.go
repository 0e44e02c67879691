package lokiexporter

import (
	"bytes"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/opsight/opsight/internal/conventions"
)

// unknownService is the label Loki itself gives a stream with no service
// name; used only when a resource yields no label at all, because Loki
// rejects a stream without labels (400) and that would drop the batch.
const unknownService = "unknown_service"

type labelSource struct{ label, attr string }

// encoder turns plog.Logs into Loki streams. It is immutable after
// construction and safe for concurrent use.
type encoder struct {
	labels []labelSource // conventions.LokiLabels then labels.extra, sorted by label
}

func newEncoder(extra map[string]string) *encoder {
	e := &encoder{}
	for _, l := range conventions.LokiLabels {
		e.labels = append(e.labels, labelSource{l.Label, l.Resource})
	}
	for k, v := range extra {
		e.labels = append(e.labels, labelSource{k, v})
	}
	// Sorted so the label string is canonical: the same label set always
	// names the same stream.
	sort.Slice(e.labels, func(i, j int) bool { return e.labels[i].label < e.labels[j].label })
	return e
}

type stream struct {
	pairs   push.LabelsAdapter
	entries []push.Entry
}

// streams groups the records by label set, keeping record order within each
// stream and streams in order of first appearance.
func (e *encoder) streams(ld plog.Logs) (keys []string, byKey map[string]*stream) {
	byKey = map[string]*stream{}
	now := time.Now()
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		rl := rls.At(i)
		res := rl.Resource().Attributes()
		key, pairs := e.labelSet(res)
		s, ok := byKey[key]
		if !ok {
			s = &stream{pairs: pairs}
			byKey[key] = s
			keys = append(keys, key)
		}
		var node, zone string
		if v, ok := res.Get(conventions.AttrNode); ok {
			node = validUTF8(v.AsString())
		}
		if v, ok := res.Get(conventions.AttrZone); ok {
			zone = validUTF8(v.AsString())
		}
		sls := rl.ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			lrs := sls.At(j).LogRecords()
			if cap(s.entries)-len(s.entries) < lrs.Len() {
				s.entries = append(make([]push.Entry, 0, len(s.entries)+lrs.Len()), s.entries...)
			}
			// One backing array for the batch's metadata: one allocation per
			// scope instead of one or two per record.
			mdBuf := make(push.LabelsAdapter, 0, lrs.Len()*len(conventions.LokiStructuredMetadata))
			for k := 0; k < lrs.Len(); k++ {
				var en push.Entry
				en, mdBuf = entry(lrs.At(k), node, zone, now, mdBuf)
				s.entries = append(s.entries, en)
			}
		}
	}
	return keys, byKey
}

func entry(lr plog.LogRecord, node, zone string, now time.Time, mdBuf push.LabelsAdapter) (push.Entry, push.LabelsAdapter) {
	ts := lr.Timestamp()
	if ts == 0 {
		ts = lr.ObservedTimestamp()
	}
	t := now
	if ts != 0 {
		t = ts.AsTime()
	}
	start := len(mdBuf)
	mdBuf = appendMetadata(mdBuf, lr.Attributes(), node, zone)
	var md push.LabelsAdapter
	if len(mdBuf) > start {
		md = mdBuf[start:len(mdBuf):len(mdBuf)]
	}
	return push.Entry{Timestamp: t, Line: validUTF8(bodyString(lr.Body())), StructuredMetadata: md}, mdBuf
}

// appendMetadata appends structured metadata in conventions order, omitting empty values.
func appendMetadata(md push.LabelsAdapter, attrs pcommon.Map, node, zone string) push.LabelsAdapter {
	for _, m := range conventions.LokiStructuredMetadata {
		var v string
		switch {
		case m.LogAttr != "":
			if av, ok := attrs.Get(m.LogAttr); ok {
				v = validUTF8(av.AsString())
			}
		case m.Resource == conventions.AttrNode:
			v = node
		case m.Resource == conventions.AttrZone:
			v = zone
		}
		if v == "" {
			continue
		}
		md = append(md, push.LabelAdapter{Name: m.Key, Value: v})
	}
	return md
}

// labelSet returns the canonical label string and the pairs, empty values omitted.
func (e *encoder) labelSet(res pcommon.Map) (string, push.LabelsAdapter) {
	pairs := make(push.LabelsAdapter, 0, len(e.labels))
	for _, l := range e.labels {
		v, ok := res.Get(l.attr)
		if !ok {
			continue
		}
		s := validUTF8(v.AsString())
		if s == "" {
			continue
		}
		pairs = append(pairs, push.LabelAdapter{Name: l.label, Value: s})
	}
	if len(pairs) == 0 {
		pairs = append(pairs, push.LabelAdapter{Name: conventions.LabelServiceName, Value: unknownService})
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, p := range pairs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(p.Name)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(p.Value))
	}
	b.WriteByte('}')
	return b.String(), pairs
}

func bodyString(v pcommon.Value) string {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return v.Str()
	case pcommon.ValueTypeBytes:
		return string(v.Bytes().AsRaw())
	case pcommon.ValueTypeEmpty:
		return ""
	default:
		return v.AsString()
	}
}

// validUTF8 replaces each byte that is not part of valid UTF-8 with U+FFFD
// (as encoding/json does): Loki lines and labels are strings.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// encodeProtobuf returns the snappy-compressed push.PushRequest.
func (e *encoder) encodeProtobuf(ld plog.Logs) ([]byte, error) {
	keys, byKey := e.streams(ld)
	req := push.PushRequest{Streams: make([]push.Stream, 0, len(keys))}
	for _, k := range keys {
		req.Streams = append(req.Streams, push.Stream{Labels: k, Entries: byKey[k].entries})
	}
	raw, err := req.Marshal()
	if err != nil {
		return nil, err
	}
	return snappy.Encode(nil, raw), nil
}

// encodeJSON returns Loki's JSON push body:
// {"streams":[{"stream":{..labels..},"values":[["<ns>","<line>",{..metadata..}],..]}]}
func (e *encoder) encodeJSON(ld plog.Logs) []byte {
	keys, byKey := e.streams(ld)
	var b bytes.Buffer
	b.WriteString(`{"streams":[`)
	for i, k := range keys {
		s := byKey[k]
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"stream":`)
		writeJSONPairs(&b, s.pairs)
		b.WriteString(`,"values":[`)
		for j, en := range s.entries {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`["`)
			b.WriteString(strconv.FormatInt(en.Timestamp.UnixNano(), 10))
			b.WriteString(`",`)
			writeJSONString(&b, en.Line)
			if len(en.StructuredMetadata) > 0 {
				b.WriteByte(',')
				writeJSONPairs(&b, en.StructuredMetadata)
			}
			b.WriteByte(']')
		}
		b.WriteString(`]}`)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

func writeJSONPairs(b *bytes.Buffer, pairs push.LabelsAdapter) {
	b.WriteByte('{')
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte(',')
		}
		writeJSONString(b, p.Name)
		b.WriteByte(':')
		writeJSONString(b, p.Value)
	}
	b.WriteByte('}')
}

const hexDigits = "0123456789abcdef"

// writeJSONString writes s (valid UTF-8 by now) as a JSON string.
func writeJSONString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b.WriteString(s[start:i])
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteString(`\u00`)
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xf])
		}
		start = i + 1
	}
	b.WriteString(s[start:])
	b.WriteByte('"')
}
