package localfileexporter

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/opsight/opsight/internal/conventions"
)

// Added fields, in output order. Record fields first, then resource fields,
// then the parse error. Names are the Loki names where one exists.
const (
	fTraceID = iota
	fSpanID
	fCorrelation
	fRisk
	fLevel
	fController
	fReconcileID
	fRevision
	fCluster
	fNamespace
	fPod
	fContainer
	fServiceName
	fNode
	fZone
	fParseError
	nFields
)

var fieldNames = [nFields]string{
	conventions.LogTraceID, conventions.LogSpanID, conventions.LogCorrelation, conventions.LogRisk,
	conventions.LogLevel, conventions.LogController, conventions.LogReconcileID,
	conventions.LabelRevision, conventions.LabelCluster, conventions.LabelNamespace, conventions.LabelPod,
	conventions.LabelContainer, conventions.LabelServiceName, conventions.MetaNode, conventions.MetaZone,
	conventions.LogParseError,
}

var fieldIndex = func() map[string]int {
	m := make(map[string]int, 2*nFields)
	for i, n := range fieldNames {
		m[n] = i
		m[conflictPrefix+n] = nFields + i
	}
	return m
}()

// resourceSources: where the resource-level added fields come from.
var resourceSources = []struct {
	field int
	attr  string
}{
	{fRevision, conventions.AttrServiceVersion},
	{fCluster, conventions.AttrCluster},
	{fNamespace, conventions.AttrNamespace},
	{fPod, conventions.AttrPod},
	{fContainer, conventions.AttrContainer},
	{fServiceName, conventions.AttrServiceName},
	{fNode, conventions.AttrNode},
	{fZone, conventions.AttrZone},
}

var recordSources = []struct {
	field int
	attr  string
}{
	{fTraceID, conventions.LogTraceID},
	{fSpanID, conventions.LogSpanID},
	{fCorrelation, conventions.LogCorrelation},
	{fRisk, conventions.LogRisk},
	{fLevel, conventions.LogLevel},
	{fController, conventions.LogController},
	{fReconcileID, conventions.LogReconcileID},
	{fParseError, conventions.LogParseError},
}

// conflictPrefix renames an added field whose name the line already uses
// with another value.
const conflictPrefix = "opsight."

type batchBuf struct {
	buf  []byte
	ends []int
}

var bufPool = sync.Pool{New: func() any { return &batchBuf{} }}

type logsEncoder struct{}

func (le *logsEncoder) consume(w *fileWriter) func(context.Context, plog.Logs) error {
	return func(_ context.Context, ld plog.Logs) error {
		if ld.LogRecordCount() == 0 {
			return nil
		}
		bb := bufPool.Get().(*batchBuf)
		defer func() {
			if cap(bb.buf) <= 16<<20 { // do not pin huge batches
				bb.buf, bb.ends = bb.buf[:0], bb.ends[:0]
				bufPool.Put(bb)
			}
		}()
		bb.buf, bb.ends = appendLogs(bb.buf[:0], bb.ends[:0], ld)
		return w.write(bb.buf, bb.ends)
	}
}

func appendLogs(buf []byte, ends []int, ld plog.Logs) ([]byte, []int) {
	var vals [nFields]string
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		rl := rls.At(i)
		res := rl.Resource().Attributes()
		for _, s := range resourceSources {
			vals[s.field] = ""
			if v, ok := res.Get(s.attr); ok {
				vals[s.field] = v.AsString()
			}
		}
		sls := rl.ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			lrs := sls.At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				lr := lrs.At(k)
				recordValues(lr, &vals)
				buf = appendRecord(buf, lr.Body(), &vals)
				buf = append(buf, '\n')
				ends = append(ends, len(buf))
			}
		}
	}
	return buf, ends
}

func recordValues(lr plog.LogRecord, vals *[nFields]string) {
	attrs := lr.Attributes()
	for _, s := range recordSources {
		vals[s.field] = ""
		if v, ok := attrs.Get(s.attr); ok {
			vals[s.field] = v.AsString()
		}
	}
	// Without the enrichment processor, the record's own context still counts.
	if vals[fTraceID] == "" && !lr.TraceID().IsEmpty() {
		vals[fTraceID] = lr.TraceID().String()
	}
	if vals[fSpanID] == "" && !lr.SpanID().IsEmpty() {
		vals[fSpanID] = lr.SpanID().String()
	}
	if vals[fLevel] == "" {
		vals[fLevel] = strings.ToLower(lr.SeverityText())
	}
}

// appendRecord writes one JSON object (no newline): the Body's own fields
// verbatim when it is a JSON object, else {"line": <raw>}, then the added
// fields that are not empty.
func appendRecord(buf []byte, body pcommon.Value, vals *[nFields]string) []byte {
	var raw []byte
	switch body.Type() {
	case pcommon.ValueTypeStr:
		raw = unsafeBytes(body.Str())
	case pcommon.ValueTypeBytes:
		raw = body.Bytes().AsRaw()
	case pcommon.ValueTypeMap:
		raw, _ = json.Marshal(body.Map().AsRaw())
	case pcommon.ValueTypeEmpty:
	default:
		raw = []byte(body.AsString())
	}

	if obj, ok := jsonObject(raw); ok {
		return appendObject(buf, obj, vals)
	}
	buf = append(buf, `{"line":`...)
	buf = appendJSONString(buf, raw)
	for i := 0; i < nFields; i++ {
		if vals[i] != "" {
			buf = append(buf, ',')
			buf = appendKV(buf, "", fieldNames[i], vals[i])
		}
	}
	return append(buf, '}')
}

// jsonObject returns raw as a single-line JSON object when it is one: valid
// UTF-8 (strict JSON), valid JSON, an object. Line breaks between tokens are
// compacted away so the output stays one line.
func jsonObject(raw []byte) ([]byte, bool) {
	obj := bytes.TrimSpace(raw)
	if len(obj) < 2 || obj[0] != '{' || !utf8.Valid(obj) || !json.Valid(obj) {
		return nil, false
	}
	if bytes.ContainsAny(obj, "\r\n") {
		var c bytes.Buffer
		if err := json.Compact(&c, obj); err != nil {
			return nil, false
		}
		obj = c.Bytes()
	}
	return obj, true
}

// appendObject writes obj without its closing brace, then the added fields,
// then the brace. An added field the object already has with the same value
// is not repeated; with a different value it is written as opsight.<name>.
func appendObject(buf, obj []byte, vals *[nFields]string) []byte {
	var present, presentRenamed [nFields]bool
	var origVal [nFields][]byte
	empty := true
	topLevelFields(obj, func(key, val []byte) {
		empty = false
		if i, ok := fieldIndex[string(key)]; ok {
			if i >= nFields {
				presentRenamed[i-nFields] = true
			} else {
				present[i], origVal[i] = true, val
			}
		}
	})
	body := bytes.TrimRightFunc(obj[:len(obj)-1], isJSONSpace)
	buf = append(buf, body...)
	for i := 0; i < nFields; i++ {
		v := vals[i]
		if v == "" {
			continue
		}
		prefix := ""
		if present[i] {
			if sameValue(origVal[i], v) || presentRenamed[i] {
				// Same value, or even the renamed key is taken: the line's
				// own fields win and are never shadowed.
				continue
			}
			prefix = conflictPrefix
		}
		if !empty {
			buf = append(buf, ',')
		}
		empty = false
		buf = appendKV(buf, prefix, fieldNames[i], v)
	}
	return append(buf, '}')
}

func appendKV(buf []byte, prefix, name, v string) []byte {
	buf = append(buf, '"')
	buf = append(buf, prefix...)
	buf = append(buf, name...) // field names need no escaping
	buf = append(buf, '"', ':')
	return appendJSONString(buf, unsafeBytes(v))
}

func isJSONSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }

// sameValue: the original JSON value (raw) means the same as v: a string
// equal to v, or a non-string literal spelled as v (e.g. 42, true).
func sameValue(raw []byte, v string) bool {
	if len(raw) > 0 && raw[0] == '"' {
		if bytes.IndexByte(raw, '\\') < 0 {
			return string(raw[1:len(raw)-1]) == v
		}
		var s string
		return json.Unmarshal(raw, &s) == nil && s == v
	}
	return string(raw) == v
}

// topLevelFields calls fn with each top-level key (unescaped) and raw value
// of obj, which must be a valid JSON object (checked by the caller).
func topLevelFields(obj []byte, fn func(key, val []byte)) {
	i := 1
	for {
		i = skipSpace(obj, i)
		if i >= len(obj) || obj[i] == '}' {
			return
		}
		kEnd := stringEnd(obj, i)
		key := obj[i+1 : kEnd-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var k string
			if json.Unmarshal(obj[i:kEnd], &k) == nil {
				key = []byte(k)
			}
		}
		i = skipSpace(obj, kEnd)
		i = skipSpace(obj, i+1) // the colon
		vEnd := valueEnd(obj, i)
		fn(key, obj[i:vEnd])
		i = skipSpace(obj, vEnd)
		if i < len(obj) && obj[i] == ',' {
			i++
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string starting at b[i] == '"'.
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}

// valueEnd returns the index just past the value starting at b[i].
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = stringEnd(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	default:
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
			j++
		}
		return j
	}
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s as a JSON string the way encoding/json does:
// each byte that is not valid UTF-8 becomes U+FFFD, control characters
// (NUL included) are escaped, and U+2028/U+2029 are escaped.
func appendJSONString(buf, s []byte) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"':
				buf = append(buf, '\\', '"')
			case '\\':
				buf = append(buf, '\\', '\\')
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

// unsafeBytes views a string's bytes without copying; callers only read.
func unsafeBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
