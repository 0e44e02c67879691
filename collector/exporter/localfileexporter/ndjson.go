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
	"github.com/opsight/opsight/internal/jsonscan"
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
	buf = jsonscan.AppendString(buf, unsafeString(raw))
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
	if len(obj) < 2 || obj[0] != '{' || !utf8.Valid(obj) || jsonscan.Strict.Valid(unsafeString(obj)) != jsonscan.OK {
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
	return jsonscan.AppendString(buf, v)
}

func isJSONSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }

// sameValue: the original JSON value (raw) means the same as v: a string
// equal to v, or a non-string literal spelled as v (e.g. 42, true).
func sameValue(raw []byte, v string) bool {
	if len(raw) > 0 && raw[0] == '"' {
		content := unsafeString(raw[1 : len(raw)-1])
		if bytes.IndexByte(raw, '\\') < 0 {
			return content == v
		}
		return jsonscan.Unescape(content) == v
	}
	return string(raw) == v
}

// topLevelFields calls fn with each top-level key (unescaped) and raw value
// of obj, which must be a valid JSON object (checked by the caller).
func topLevelFields(obj []byte, fn func(key, val []byte)) {
	s := unsafeString(obj)
	i, empty, err := jsonscan.ObjectStart(s, jsonscan.SkipWS(s, 0))
	for more := !empty; err == jsonscan.OK && more; {
		var key string
		var esc bool
		if key, esc, i, err = jsonscan.Strict.Key(s, i); err != jsonscan.OK {
			return
		}
		if esc {
			key = jsonscan.Unescape(key)
		}
		start := i
		if i, err = jsonscan.Strict.SkipValue(s, i, 1); err != jsonscan.OK {
			return
		}
		fn(unsafeBytes(key), obj[start:i])
		i, more, err = jsonscan.MemberEnd(s, i)
	}
}

// unsafeBytes and unsafeString view the same bytes as the other type
// without copying; callers only read.
func unsafeBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
