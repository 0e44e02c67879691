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
	"github.com/opsight/opsight/internal/jsonscan"
)

// unknownService is the label Loki itself gives a stream with no service
// name; used only when a resource yields no label at all, because Loki
// rejects a stream without labels (400) and that would drop the batch.
const unknownService = "unknown_service"

type labelSource struct{ label, attr string }

// encoder turns plog.Logs into Loki streams that Loki's limits accept. It is
// immutable after construction and safe for concurrent use.
type encoder struct {
	labels []labelSource // conventions.LokiLabels then labels.extra, sorted by label
	lim    LimitsConfig
	now    func() time.Time
}

func newEncoder(extra map[string]string, lim LimitsConfig) *encoder {
	e := &encoder{lim: lim, now: time.Now}
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
	key     string
	pairs   push.LabelsAdapter
	entries []push.Entry
	// newest is the newest timestamp (ns) of the stream: what was sent
	// before (newestFn) and then this batch's entries, in order, as Loki's
	// ingester tracks it for its out-of-order window.
	newest int64
}

// batch is one push: streams in order of first appearance.
type batch struct {
	streams []*stream
	byKey   map[string]*stream
	adj     adjustments
}

func (b *batch) entryCount() int {
	n := 0
	for _, s := range b.streams {
		n += len(s.entries)
	}
	return n
}

// adjustments counts entries changed so Loki accepts them.
type adjustments struct {
	restamped, split, labelTruncated, metadataTruncated int
}

// bounds are the acceptable timestamps (ns) at one instant.
type bounds struct {
	now, lo, hi, window int64
}

func (e *encoder) bounds(now time.Time) bounds {
	n := now.UnixNano()
	// clockMargin: Loki's clock may differ from this node's.
	return bounds{
		now:    n,
		lo:     n - int64(e.lim.RejectOldSamplesMaxAge) + int64(clockMargin),
		hi:     n + int64(e.lim.CreationGracePeriod) - int64(clockMargin),
		window: int64(e.lim.OutOfOrderWindow - windowMargin),
	}
}

// clockMargin is kept inside Loki's time bounds.
const clockMargin = time.Minute

// newestFn returns the newest timestamp already sent for a stream key, 0 if unknown.
type newestFn func(key string) int64

// build groups the records by label set, keeping record order within each
// stream and streams in order of first appearance, and makes every entry
// acceptable to Loki's limits (split, restamped, truncated; counted in adj).
func (e *encoder) build(ld plog.Logs, newest newestFn) *batch {
	b := &batch{byKey: map[string]*stream{}}
	bd := e.bounds(e.now())
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		rl := rls.At(i)
		res := rl.Resource().Attributes()
		key, pairs, truncated := e.labelSet(res)
		s, ok := b.byKey[key]
		if !ok {
			s = &stream{key: key, pairs: pairs}
			if newest != nil {
				s.newest = newest(key)
			}
			b.byKey[key] = s
			b.streams = append(b.streams, s)
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
			if truncated {
				b.adj.labelTruncated += lrs.Len()
			}
			if cap(s.entries)-len(s.entries) < lrs.Len() {
				s.entries = append(make([]push.Entry, 0, len(s.entries)+lrs.Len()), s.entries...)
			}
			// One backing array for the batch's metadata: one allocation per
			// scope instead of one or two per record.
			mdBuf := make(push.LabelsAdapter, 0, lrs.Len()*len(conventions.LokiStructuredMetadata))
			for k := 0; k < lrs.Len(); k++ {
				mdBuf = e.appendEntry(s, lrs.At(k), node, zone, bd, mdBuf, &b.adj)
			}
		}
	}
	return b
}

func (e *encoder) appendEntry(s *stream, lr plog.LogRecord, node, zone string, bd bounds, mdBuf push.LabelsAdapter, adj *adjustments) push.LabelsAdapter {
	obs := int64(lr.ObservedTimestamp())
	t := int64(lr.Timestamp())
	if t == 0 {
		t = obs
	}
	if t == 0 {
		t = bd.now
	}
	if t < bd.lo || t > bd.hi || t < s.newest-bd.window {
		t = bd.restamp(obs, s.newest)
		adj.restamped++
	}

	start := len(mdBuf)
	mdBuf = appendMetadata(mdBuf, lr.Attributes(), node, zone)
	var md push.LabelsAdapter
	if len(mdBuf) > start {
		md = mdBuf[start:len(mdBuf):len(mdBuf)]
		if trimmed, ok := e.limitMetadata(md); !ok {
			md = trimmed
			adj.metadataTruncated++
		}
	}

	// Repair first, then measure: U+FFFD is 3 bytes, so a line cut at the
	// limit upstream can grow past it.
	line := validUTF8(bodyString(lr.Body()))
	if maxLine := int(e.lim.MaxLineSize); len(line) <= maxLine {
		s.add(push.Entry{Timestamp: time.Unix(0, t), Line: line, StructuredMetadata: md})
		return mdBuf
	}
	adj.split++
	for i, p := range splitLine(line, int(e.lim.MaxLineSize)) {
		// Pieces keep their order: 1 ns apart.
		s.add(push.Entry{Timestamp: time.Unix(0, t+int64(i)), Line: p, StructuredMetadata: md})
	}
	return mdBuf
}

func (s *stream) add(en push.Entry) {
	if n := en.Timestamp.UnixNano(); n > s.newest {
		s.newest = n
	}
	s.entries = append(s.entries, en)
}

// restamp picks an acceptable time for an entry whose own one is not: the
// time the record was observed if acceptable, else now; never more than the
// out-of-order window behind the stream's newest entry.
func (bd bounds) restamp(obs, newest int64) int64 {
	t := bd.now
	if obs >= bd.lo && obs <= bd.hi && obs >= newest-bd.window {
		t = obs
	}
	if floor := newest - bd.window; t < floor {
		t = min(floor, bd.hi)
	}
	return t
}

// limitMetadata returns md within max_structured_metadata_entries_count and
// max_structured_metadata_size (names plus values, as Loki counts them),
// and whether md was already within them (then md itself is returned).
func (e *encoder) limitMetadata(md push.LabelsAdapter) (push.LabelsAdapter, bool) {
	size := 0
	for _, p := range md {
		size += len(p.Name) + len(p.Value)
	}
	if len(md) <= e.lim.MaxStructuredMetadataEntriesCount && size <= int(e.lim.MaxStructuredMetadataSize) {
		return md, true
	}
	out := make(push.LabelsAdapter, 0, min(len(md), e.lim.MaxStructuredMetadataEntriesCount))
	room := int(e.lim.MaxStructuredMetadataSize)
	for _, p := range md {
		if len(out) == e.lim.MaxStructuredMetadataEntriesCount || room <= len(p.Name) {
			break
		}
		v := truncateRunes(p.Value, room-len(p.Name))
		if v == "" {
			break
		}
		out = append(out, push.LabelAdapter{Name: p.Name, Value: v})
		room -= len(p.Name) + len(v)
	}
	return out, false
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

// labelSet returns the canonical label string and the pairs, empty values
// omitted and values cut to max_label_value_length (truncated reports that).
func (e *encoder) labelSet(res pcommon.Map) (string, push.LabelsAdapter, bool) {
	pairs := make(push.LabelsAdapter, 0, len(e.labels))
	truncated := false
	for _, l := range e.labels {
		v, ok := res.Get(l.attr)
		if !ok {
			continue
		}
		s := validUTF8(v.AsString())
		if s == "" {
			continue
		}
		if len(s) > e.lim.MaxLabelValueLength {
			s = truncateRunes(s, e.lim.MaxLabelValueLength)
			truncated = true
		}
		pairs = append(pairs, push.LabelAdapter{Name: l.label, Value: s})
	}
	if len(pairs) == 0 {
		pairs = append(pairs, push.LabelAdapter{Name: conventions.LabelServiceName, Value: unknownService})
	}
	return labelString(pairs), pairs, truncated
}

// labelString renders pairs as Loki (Prometheus) prints a label set.
func labelString(pairs push.LabelsAdapter) string {
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
	return b.String()
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

// encodeProtobuf builds the batch (limits applied, nothing sent before) and
// returns the snappy-compressed push.PushRequest.
func (e *encoder) encodeProtobuf(ld plog.Logs) ([]byte, error) {
	return encodeProtobuf(e.build(ld, nil))
}

// encodeProtobuf returns the snappy-compressed push.PushRequest of b.
func encodeProtobuf(b *batch) ([]byte, error) {
	req := push.PushRequest{Streams: make([]push.Stream, 0, len(b.streams))}
	for _, s := range b.streams {
		req.Streams = append(req.Streams, push.Stream{Labels: s.key, Entries: s.entries})
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
	return encodeJSON(e.build(ld, nil))
}

func encodeJSON(bt *batch) []byte {
	var b bytes.Buffer
	b.WriteString(`{"streams":[`)
	for i, s := range bt.streams {
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

// writeJSONString writes s as a JSON string, as encoding/json would
// (SetEscapeHTML(false)): lines and labels are valid UTF-8 by now, and would
// be made so anyway.
func writeJSONString(b *bytes.Buffer, s string) {
	b.Write(jsonscan.AppendString(b.AvailableBuffer(), s))
}
