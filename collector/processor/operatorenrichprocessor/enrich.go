package operatorenrichprocessor

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.uber.org/zap"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/riskpatterns"
	"github.com/opsight/opsight/internal/selftelemetry"
)

// settings are the config values resolved against the environment once.
type settings struct {
	revision            string
	serviceName         string // explicit service name; "" = derive per resource
	container           string // config/env container name (service name default)
	resourceAttrs       []kv   // k8s metadata that is set (config or env)
	logKey              string
	spanAttr            string
	wait, activeWindow  time.Duration
	maxHeld             int
	indexSize           int
	indexTTL            time.Duration
	revisionSourceLabel string // where the revision came from (logged once)
}

type kv struct{ k, v string }

// resolveSettings applies the precedence of README.md: config, then the
// environment (downward API), then fallbacks.
func resolveSettings(cfg *Config, getenv func(string) string, logger *zap.Logger) settings {
	s := settings{
		logKey:       cfg.Correlation.LogKey,
		spanAttr:     cfg.Correlation.SpanAttribute,
		wait:         cfg.Correlation.Wait,
		activeWindow: cfg.Correlation.ActiveWindow,
		maxHeld:      cfg.Correlation.MaxHeld,
		indexSize:    cfg.Correlation.IndexSize,
		indexTTL:     cfg.Correlation.IndexTTL,
	}
	s.revision, s.revisionSourceLabel = resolveRevision(cfg, getenv, logger)
	or := func(v, env string) string {
		if v != "" {
			return v
		}
		return strings.TrimSpace(getenv(env))
	}
	s.serviceName = or(cfg.ServiceName, conventions.EnvServiceName)
	s.container = or(cfg.Container, conventions.EnvContainer)
	for _, a := range []kv{
		{conventions.AttrCluster, or(cfg.Cluster, conventions.EnvCluster)},
		{conventions.AttrNamespace, or(cfg.Namespace, conventions.EnvPodNamespace)},
		{conventions.AttrPod, or(cfg.Pod, conventions.EnvPodName)},
		{conventions.AttrContainer, s.container},
		{conventions.AttrNode, or(cfg.Node, conventions.EnvNodeName)},
		{conventions.AttrZone, or(cfg.Zone, conventions.EnvZone)},
		{conventions.AttrNodePool, or(cfg.NodePool, conventions.EnvNodePool)},
	} {
		if a.v != "" {
			s.resourceAttrs = append(s.resourceAttrs, a)
		}
	}
	return s
}

func resolveRevision(cfg *Config, getenv func(string) string, logger *zap.Logger) (rev, source string) {
	if cfg.Revision != "" {
		return cfg.Revision, "revision"
	}
	if cfg.RevisionFile != "" {
		b, err := os.ReadFile(cfg.RevisionFile)
		switch {
		case err != nil:
			logger.Warn("revision_file unreadable; falling back to the environment", zap.String("revision_file", cfg.RevisionFile), zap.Error(err))
		case strings.TrimSpace(string(b)) == "":
			logger.Warn("revision_file is empty; falling back to the environment", zap.String("revision_file", cfg.RevisionFile))
		default:
			return strings.TrimSpace(string(b)), "revision_file"
		}
	}
	if v := strings.TrimSpace(getenv(conventions.EnvRevision)); v != "" {
		return v, conventions.EnvRevision
	}
	if v := imageTag(strings.TrimSpace(getenv(conventions.EnvPodImage))); v != "" {
		return v, conventions.EnvPodImage
	}
	return "", "none"
}

// imageTag returns the tag of an image reference ("reg:5000/a/b:v1@sha256:…"
// → "v1"); with a digest and no tag, the digest's first 12 hex digits.
func imageTag(image string) string {
	name, digest, _ := strings.Cut(image, "@")
	repo := name
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		repo = name[i+1:]
	}
	if i := strings.LastIndexByte(repo, ':'); i >= 0 && i+1 < len(repo) {
		return repo[i+1:]
	}
	if _, hexDigest, ok := strings.Cut(digest, ":"); ok && len(hexDigest) >= 12 {
		return hexDigest[:12]
	}
	return ""
}

// enricher holds what the logs and traces halves of one component share
// besides the index: resolved settings, the matcher and the counters.
type enricher struct {
	settings
	matcher *riskpatterns.Matcher
	riskIDs []string
	now     func() time.Time

	levelCounters [numLevels]prometheus.Counter
	riskCounters  []prometheus.Counter
	corrField     prometheus.Counter
	corrJoin      prometheus.Counter
	corrNone      prometheus.Counter
	parseErrors   *prometheus.CounterVec
	parseCounters [len(knownReasons)]prometheus.Counter
}

// attrIOStream is set by the receiver on lines read from a container log
// (docs/architecture.md); it marks a raw line even without log.file.path.
const attrIOStream = conventions.AttrLogIOStream

var knownReasons = [...]string{reasonNotJSON, reasonTruncatedJSON, reasonInvalidUTF8, reasonBinary, reasonTooLong, reasonEmpty}

func newEnricher(s settings, patterns []riskpatterns.Pattern, m *selftelemetry.Metrics, now func() time.Time) (*enricher, error) {
	matcher, err := riskpatterns.NewMatcher(patterns)
	if err != nil {
		return nil, err
	}
	e := &enricher{settings: s, matcher: matcher, now: now}
	for l := level(0); l < numLevels; l++ {
		e.levelCounters[l] = m.LogRecords.WithLabelValues(l.String(), s.revision)
	}
	for _, p := range patterns {
		e.riskIDs = append(e.riskIDs, p.ID)
		e.riskCounters = append(e.riskCounters, m.LogRisk.WithLabelValues(p.ID, s.revision))
	}
	e.corrField = m.LogCorrelated.WithLabelValues(conventions.CorrelationField)
	e.corrJoin = m.LogCorrelated.WithLabelValues(conventions.CorrelationJoin)
	e.corrNone = m.LogCorrelated.WithLabelValues(conventions.CorrelationNone)
	e.parseErrors = m.LogParseErrors
	for i, r := range knownReasons {
		e.parseCounters[i] = m.LogParseErrors.WithLabelValues(r)
	}
	return e, nil
}

// batch is the per-ConsumeLogs scratch state (pooled): counts added to the
// counters once per batch, and the lines waiting for the late join.
type batch struct {
	records     int
	levels      [numLevels]int
	risk        []int
	field, join int
	parse       [len(knownReasons)]int
	otherParse  map[string]int
	pending     []pendingLine
	riskBuf     []int
	riskBuilder strings.Builder
}

// pendingLine is a keyed line without trace context.
type pendingLine struct {
	lr         plog.LogRecord
	key        string
	controller string
	wait       bool // worth holding the batch for (its controller is traced)
	found      bool
	trace      pcommon.TraceID
	span       pcommon.SpanID
}

var batchPool = sync.Pool{New: func() any { return &batch{riskBuf: make([]int, 0, 8)} }}

func (e *enricher) getBatch() *batch {
	b := batchPool.Get().(*batch)
	if cap(b.risk) < len(e.riskIDs) {
		b.risk = make([]int, len(e.riskIDs))
	}
	b.risk = b.risk[:len(e.riskIDs)]
	return b
}

func putBatch(b *batch) {
	b.records, b.field, b.join = 0, 0, 0
	b.levels = [numLevels]int{}
	b.parse = [len(knownReasons)]int{}
	clear(b.risk)
	clear(b.otherParse)
	clear(b.pending) // drop references to the records
	b.pending = b.pending[:0]
	batchPool.Put(b)
}

// count adds a batch's figures to the counters, once the join is settled.
func (e *enricher) count(b *batch) {
	for l, n := range b.levels {
		if n > 0 {
			e.levelCounters[l].Add(float64(n))
		}
	}
	for i, n := range b.risk {
		if n > 0 {
			e.riskCounters[i].Add(float64(n))
		}
	}
	if b.field > 0 {
		e.corrField.Add(float64(b.field))
	}
	if b.join > 0 {
		e.corrJoin.Add(float64(b.join))
	}
	if none := b.records - b.field - b.join; none > 0 {
		e.corrNone.Add(float64(none))
	}
	for i, n := range b.parse {
		if n > 0 {
			e.parseCounters[i].Add(float64(n))
		}
	}
	for r, n := range b.otherParse {
		e.parseErrors.WithLabelValues(r).Add(float64(n))
	}
}

// stampResource sets revision, service name and k8s metadata on a resource
// (logs and spans alike).
func (e *enricher) stampResource(attrs pcommon.Map) {
	if e.revision != "" {
		stampVersion(attrs, e.revision)
	}
	for _, a := range e.resourceAttrs {
		attrs.PutStr(a.k, a.v)
	}
	switch {
	case e.serviceName != "":
		attrs.PutStr(conventions.AttrServiceName, e.serviceName)
	default:
		// Keep a name the operator's SDK set; fill one in otherwise.
		if v, ok := attrs.Get(conventions.AttrServiceName); ok && v.Str() != "" && !strings.HasPrefix(v.Str(), "unknown_service") {
			return
		}
		name := e.container
		if name == "" {
			if v, ok := attrs.Get(conventions.AttrContainer); ok {
				name = v.AsString()
			}
		}
		if name == "" {
			name = "operator"
		}
		attrs.PutStr(conventions.AttrServiceName, name)
	}
}

// stampVersion sets service.version to rev; a different version already
// there moves to opsight.original_version (no silent disagreement).
func stampVersion(attrs pcommon.Map, rev string) {
	if v, ok := attrs.Get(conventions.AttrServiceVersion); ok {
		if old := v.AsString(); old != rev {
			if old != "" {
				attrs.PutStr(conventions.AttrOriginalVersion, old)
			}
			v.SetStr(rev)
		}
		return
	}
	attrs.PutStr(conventions.AttrServiceVersion, rev)
}

// enrichLogs enriches every record in place and fills b.
func (e *enricher) enrichLogs(ld plog.Logs, b *batch) {
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		rl := rls.At(i)
		res := rl.Resource().Attributes()
		_, fromFile := res.Get(conventions.AttrLogFilePath)
		e.stampResource(res)
		sls := rl.ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			lrs := sls.At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				e.enrichRecord(lrs.At(k), fromFile, b)
			}
		}
	}
}

// enrichRecord does the per-line work: one scan of the Body, one matcher
// pass, attribute writes. The Body is never modified.
func (e *enricher) enrichRecord(lr plog.LogRecord, fromFile bool, b *batch) {
	b.records++
	attrs := lr.Attributes()
	body := lr.Body()
	var f fields
	var line string
	haveLine := false
	switch body.Type() {
	case pcommon.ValueTypeStr:
		line, haveLine = body.Str(), true
	case pcommon.ValueTypeBytes:
		line, haveLine = string(body.Bytes().AsRaw()), true
	case pcommon.ValueTypeMap:
		scanMap(body.Map(), &scanner{logKey: e.logKey, f: &f}, 0, "")
	case pcommon.ValueTypeEmpty:
	default:
		line, haveLine = body.AsString(), true
	}
	// One pass over the attributes the record came with.
	var hasStream, truncated, otherVersion bool
	var prevReason string
	for k, v := range attrs.All() {
		switch k {
		case attrIOStream:
			hasStream = true
		case conventions.LogTruncated:
			truncated = v.Type() != pcommon.ValueTypeBool || v.Bool()
		case conventions.LogParseError:
			prevReason = v.AsString()
		case conventions.AttrServiceVersion:
			otherVersion = e.revision != "" && v.AsString() != e.revision
		}
	}
	// A raw line from a file (the receiver) gets a parse error when it is not
	// a JSON object; an OTLP record (a logs bridge) carries its fields as
	// attributes and a message body, so it is read that way instead.
	raw := fromFile || hasStream ||
		(lr.SeverityNumber() == plog.SeverityNumberUnspecified && lr.TraceID().IsEmpty() && body.Type() != pcommon.ValueTypeMap)

	reason := ""
	if haveLine {
		if raw || (len(line) > 0 && line[0] == '{') {
			reason = scanLine(line, e.logKey, &f)
		}
		if reason == reasonNotJSON {
			// Text formats: klog's header and key=value pairs, or logfmt.
			l, ts, klog := parseKlogHeader(line, e.recordTime(lr))
			if klog || looksLikeLogfmt(line) {
				scanKeyValues(line, &scanner{logKey: e.logKey, f: &f})
			}
			if klog {
				f.level, f.ts, f.hasTS = l, ts, true
			}
		}
	} else if raw && body.Type() == pcommon.ValueTypeEmpty {
		reason = reasonEmpty
	}
	if !raw {
		scanMap(attrs, &scanner{logKey: e.logKey, f: &f}, 0, "")
		reason = ""
	}

	attrs.EnsureCapacity(attrs.Len() + 8)

	// The container runtime's timestamp, when the receiver set one, stays the
	// record's time (as promtail and Alloy do): the time inside a line may be
	// local time, lack a year (klog) or lag by hours, and Loki refuses entries
	// outside its ingestion windows. The line keeps its own time in the Body.
	if f.hasTS && lr.Timestamp() == 0 {
		lr.SetTimestamp(pcommon.Timestamp(f.ts))
	}
	lvl := f.resolvedLevel()
	if lvl != levelUnknown {
		lr.SetSeverityNumber(plog.SeverityNumber(levelSeverity[lvl]))
		lr.SetSeverityText(lvl.String())
	} else if sn := lr.SeverityNumber(); sn != plog.SeverityNumberUnspecified {
		lvl = levelFromSeverity(sn)
	}
	if lvl != levelUnknown {
		attrs.PutStr(conventions.LogLevel, lvl.String())
	}
	b.levels[lvl]++

	if f.controller != "" {
		attrs.PutStr(conventions.LogController, f.controller)
	}
	if f.reconcileID != "" {
		attrs.PutStr(conventions.LogReconcileID, f.reconcileID)
	}
	if ns := f.objectNamespace(); ns != "" {
		attrs.PutStr(conventions.LogObjectNS, ns)
	}
	if n := f.objectName(); n != "" {
		attrs.PutStr(conventions.LogObjectName, n)
	}

	// Trace context: the record's own (a logs bridge sets it), else the line's.
	switch {
	case !lr.TraceID().IsEmpty():
		attrs.PutStr(conventions.LogTraceID, traceHex(lr.TraceID(), ""))
		if !lr.SpanID().IsEmpty() {
			attrs.PutStr(conventions.LogSpanID, spanHex(lr.SpanID(), ""))
		}
		attrs.PutStr(conventions.LogCorrelation, conventions.CorrelationField)
		b.field++
	case f.traceRank != rankNone:
		lr.SetTraceID(f.traceID)
		attrs.PutStr(conventions.LogTraceID, traceHex(f.traceID, f.traceHex))
		if f.spanRank != rankNone {
			lr.SetSpanID(f.spanID)
			attrs.PutStr(conventions.LogSpanID, spanHex(f.spanID, f.spanHex))
		}
		attrs.PutStr(conventions.LogCorrelation, conventions.CorrelationField)
		b.field++
	case f.reconcileID != "":
		b.pending = append(b.pending, pendingLine{lr: lr, key: f.reconcileID, controller: f.controller})
	}

	// Risk: one pass over the line (or the string values of a map body).
	var matched []int
	if haveLine {
		matched = e.matcher.MatchString(line, b.riskBuf[:0])
	} else if body.Type() == pcommon.ValueTypeMap {
		matched = e.matchMap(body.Map(), b.riskBuf[:0], 0)
	}
	if len(matched) > 0 {
		attrs.PutStr(conventions.LogRisk, e.riskValue(matched, b))
		for _, p := range matched {
			b.risk[p]++
		}
	}
	if cap(matched) > cap(b.riskBuf) {
		b.riskBuf = matched[:0] // keep the larger buffer for the next line
	}

	if otherVersion {
		stampVersion(attrs, e.revision)
	}

	if raw {
		// The receiver's reason (e.g. bad_framing) wins; then too_long for
		// pieces of an over-long line; then what the scan found.
		if prevReason != "" {
			reason = prevReason
		} else {
			if truncated {
				reason = reasonTooLong
			}
			if reason != "" {
				attrs.PutStr(conventions.LogParseError, reason)
			}
		}
		if reason != "" {
			b.countParse(reason)
		}
	}
}

func (b *batch) countParse(reason string) {
	for i, r := range knownReasons {
		if r == reason {
			b.parse[i]++
			return
		}
	}
	if b.otherParse == nil {
		b.otherParse = make(map[string]int)
	}
	b.otherParse[reason]++
}

// riskValue is the comma-separated ids, catalogue order; one id needs no copy.
func (e *enricher) riskValue(matched []int, b *batch) string {
	if len(matched) == 1 {
		return e.riskIDs[matched[0]]
	}
	sb := &b.riskBuilder
	sb.Reset()
	for i, p := range matched {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(e.riskIDs[p])
	}
	return sb.String()
}

// matchMap runs the matcher over the string values of a map body (two levels).
func (e *enricher) matchMap(m pcommon.Map, dst []int, depth int) []int {
	for _, v := range m.All() {
		switch v.Type() {
		case pcommon.ValueTypeStr:
			dst = e.matcher.MatchString(v.Str(), dst)
		case pcommon.ValueTypeMap:
			if depth == 0 {
				dst = e.matchMap(v.Map(), dst, 1)
			}
		}
	}
	return dedupSorted(dst)
}

func dedupSorted(s []int) []int {
	if len(s) < 2 {
		return s
	}
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	out := s[:1]
	for _, x := range s[1:] {
		if x != out[len(out)-1] {
			out = append(out, x)
		}
	}
	return out
}

// recordTime is the best guess of when a line was written (klog omits the year).
func (e *enricher) recordTime(lr plog.LogRecord) time.Time {
	if ts := lr.Timestamp(); ts != 0 {
		return ts.AsTime()
	}
	if ts := lr.ObservedTimestamp(); ts != 0 {
		return ts.AsTime()
	}
	return e.now()
}

func levelFromSeverity(sn plog.SeverityNumber) level {
	switch {
	case sn <= 0:
		return levelUnknown
	case sn <= plog.SeverityNumberDebug4:
		return levelDebug
	case sn <= plog.SeverityNumberInfo4:
		return levelInfo
	case sn <= plog.SeverityNumberWarn4:
		return levelWarn
	case sn <= plog.SeverityNumberError4:
		return levelError
	default:
		return levelFatal
	}
}

// scanMap feeds a pdata map (a map body, or a bridge record's attributes)
// to the same field routing as JSON lines.
func scanMap(m pcommon.Map, sc *scanner, depth int, parent string) {
	for k, v := range m.All() {
		switch v.Type() {
		case pcommon.ValueTypeStr:
			sc.set(depth, parent, k, v.Str(), false, kindString)
		case pcommon.ValueTypeInt:
			sc.set(depth, parent, k, strconv.FormatInt(v.Int(), 10), false, kindNumber)
		case pcommon.ValueTypeDouble:
			sc.set(depth, parent, k, strconv.FormatFloat(v.Double(), 'f', -1, 64), false, kindNumber)
		case pcommon.ValueTypeBool:
			sc.set(depth, parent, k, strconv.FormatBool(v.Bool()), false, kindLiteral)
		case pcommon.ValueTypeMap:
			if depth == 0 {
				scanMap(v.Map(), sc, 1, k)
			}
		}
	}
}
