package lokiexporter

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.uber.org/zap"

	"github.com/opsight/opsight/internal/selftelemetry"
)

const (
	headerTenant     = "X-Scope-OrgID"
	maxReasonBytes   = 1024 // Loki's reason is one line; cap what we keep of a body
	maxDrainBytes    = 64 * 1024
	contentProtobuf  = "application/x-protobuf"
	contentJSON      = "application/json"
	reasonHTTP429    = "http_429"
	reasonHTTP5xx    = "http_5xx"
	reasonHTTP4xx    = "http_4xx"
	reasonConnection = "connection"
	reasonTimeout    = "timeout"
)

type lokiExporter struct {
	cfg       *Config
	enc       *encoder
	settings  component.TelemetrySettings
	logger    *zap.Logger
	id        string
	metrics   *selftelemetry.Metrics
	client    *http.Client
	userAgent string
	authz     string // Authorization header from basic_auth / bearer_token
	newest    *newestMap
	dead      *deadLetter // nil: dead_letter.directory not set
	advised   sync.Map    // limits already advised about (adviseLimits)
}

func newLokiExporter(cfg *Config, set exporter.Settings, m *selftelemetry.Metrics) *lokiExporter {
	e := &lokiExporter{
		cfg:       cfg,
		enc:       newEncoder(cfg.Labels.Extra, cfg.Limits),
		settings:  set.TelemetrySettings,
		logger:    set.Logger,
		id:        set.ID.String(),
		metrics:   m,
		userAgent: "opsight/" + set.BuildInfo.Version,
		newest:    newNewestMap(maxTrackedStreams),
	}
	// Every reason's series exists from the start, at zero, so rules on
	// increase() see the first failure.
	for _, r := range []string{reasonHTTP429, reasonHTTP5xx, reasonHTTP4xx, reasonConnection, reasonTimeout} {
		m.ExportFailed.WithLabelValues(e.id, r)
	}
	for _, a := range []string{adjRestamped, adjSplit, adjLabelTruncated, adjMetadataTruncated} {
		m.ExportAdjusted.WithLabelValues(e.id, a)
	}
	for _, r := range []string{reasonLineTooLong, reasonTooOld, reasonTooNew, reasonTooFarBehind, reasonStreamRateLimit, reasonLabelValueTooLong, reasonUnknown} {
		m.ExportRefused.WithLabelValues(e.id, r)
		m.ExportDeadLetter.WithLabelValues(e.id, r)
	}
	switch {
	case cfg.BasicAuth.HasValue():
		ba := cfg.BasicAuth.Get()
		e.authz = "Basic " + base64.StdEncoding.EncodeToString([]byte(ba.Username+":"+string(ba.Password)))
	case cfg.BearerToken != "":
		e.authz = "Bearer " + string(cfg.BearerToken)
	}
	return e
}

// start builds the client here because auth extensions are only reachable via host.
func (e *lokiExporter) start(ctx context.Context, host component.Host) error {
	c, err := e.cfg.ClientConfig.ToClient(ctx, host.GetExtensions(), e.settings)
	if err != nil {
		return fmt.Errorf("loki exporter %s: building the HTTP client: %w", e.id, err)
	}
	e.client = c
	if d := e.cfg.DeadLetter; d.Directory != "" {
		if e.dead, err = openDeadLetter(d.Directory, e.id, int64(d.MaxBytes)); err != nil {
			return fmt.Errorf("loki exporter %s: %w", e.id, err)
		}
		// The newest timestamp sent per stream, from the previous process:
		// a batch re-queued across the restart is checked against it.
		if err := e.newest.load(e.newestPath()); err != nil {
			e.logger.Warn("could not read the newest timestamps per stream of the previous run; starting without them (Loki's too_far_behind refusals are still handled)", zap.Error(err))
		}
	} else {
		e.logger.Warn("dead_letter.directory is not set: entries Loki refuses and that cannot be fixed will be dropped (opsight_export_dropped_total); set it to a directory on the state volume")
	}
	return nil
}

func (e *lokiExporter) shutdown(context.Context) error {
	if e.dead == nil {
		return nil
	}
	if err := e.newest.save(e.newestPath()); err != nil {
		e.logger.Warn("could not save the newest timestamps per stream for the next run", zap.Error(err))
	}
	return e.dead.close()
}

// newestPath is beside the dead-letter files (the state volume), not
// matched by their pattern.
func (e *lokiExporter) newestPath() string {
	return filepath.Join(e.dead.dir, e.dead.prefix+"newest.json")
}

// Adjustments (opsight_export_adjusted_total{adjustment}).
const (
	adjRestamped         = "restamped"
	adjSplit             = "split"
	adjLabelTruncated    = "label_truncated"
	adjMetadataTruncated = "metadata_truncated"
)

const (
	// maxRounds bounds the pushes of one batch: the first and the re-sends
	// of entries fixed after Loki refused them.
	maxRounds = 4
	// maxRateLimitWait bounds one wait before re-sending entries refused by
	// the per-stream rate limit.
	maxRateLimitWait = 10 * time.Second
	// maxTrackedStreams bounds the per-stream newest-timestamp map.
	maxTrackedStreams = 10000
	// restampStep spaces entries restamped after a refusal (ns): room for
	// the pieces (1 ns apart) if one of them is split in a later round.
	restampStep = 1000
)

func (e *lokiExporter) countAdjustments(a adjustments) {
	for _, x := range []struct {
		name string
		n    int
	}{{adjRestamped, a.restamped}, {adjSplit, a.split}, {adjLabelTruncated, a.labelTruncated}, {adjMetadataTruncated, a.metadataTruncated}} {
		if x.n > 0 {
			e.metrics.ExportAdjusted.WithLabelValues(e.id, x.name).Add(float64(x.n))
		}
	}
}

// pushLogs sends ld. Entries Loki refuses are fixed and re-sent, or kept in
// the dead-letter file; only what cannot be kept there is a permanent error
// (counted dropped by exporterhelper).
func (e *lokiExporter) pushLogs(ctx context.Context, ld plog.Logs) error {
	b := e.enc.build(ld, e.newest.get)
	e.countAdjustments(b.adj)
	var dead []deadRecord
	// Bounded: fix gives up (dead letter) in round maxRounds; each round
	// waits at most maxRateLimitWait plus the HTTP client's timeout.
	for round := 1; round <= maxRounds; round++ {
		resp, err := e.send(ctx, b)
		if err != nil {
			// Not Loki's verdict on entries: retried whole by exporterhelper
			// (after a partial refusal this may duplicate accepted entries).
			return e.finish(err, dead)
		}
		e.newest.update(b)
		if resp == nil { // 2xx
			return e.finish(nil, dead)
		}
		next, d, wait := e.handleRefusal(b, resp, round)
		dead = append(dead, d...)
		if next.entryCount() == 0 {
			return e.finish(nil, dead)
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return e.finish(ctx.Err(), dead)
			case <-t.C:
			}
		}
		b = next
	}
	return e.finish(nil, dead) // not reached: round maxRounds dead-letters what is left
}

// refusedResponse is a 4xx answer whose entries are to be accounted.
type refusedResponse struct {
	status     int
	body       string
	retryAfter string
}

// send pushes b once. It returns nil, nil on 2xx; a refusedResponse for a
// 400, a 429 in the ingester's per-stream form, or another 4xx; an error
// (retryable, or throttled) otherwise.
func (e *lokiExporter) send(ctx context.Context, b *batch) (*refusedResponse, error) {
	records := b.entryCount()
	var body []byte
	contentType := contentJSON
	if e.cfg.Encoding == EncodingJSON {
		body = encodeJSON(b)
	} else {
		var err error
		if body, err = encodeProtobuf(b); err != nil {
			return nil, consumererror.NewPermanent(fmt.Errorf("encoding the Loki push request: %w", err))
		}
		contentType = contentProtobuf
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.cfg.ClientConfig.Endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, consumererror.NewPermanent(fmt.Errorf("building the Loki push request: %w", err))
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", e.userAgent)
	if e.cfg.TenantID != "" {
		req.Header.Set(headerTenant, e.cfg.TenantID)
	}
	if e.authz != "" {
		req.Header.Set("Authorization", e.authz)
	}

	resp, err := e.client.Do(req)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			// Shutdown or caller cancel: not a failure of Loki; the queue keeps the batch.
			return nil, err
		}
		reason := reasonConnection
		if isTimeout(err) {
			reason = reasonTimeout
		}
		e.failed(reason)
		return nil, fmt.Errorf("pushing %d log records to Loki (%s): %w", records, reason, err)
	}
	defer func() {
		_, _ = io.CopyN(io.Discard, resp.Body, maxDrainBytes)
		_ = resp.Body.Close()
	}()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil, nil
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxRefusalBody))
	full := strings.TrimSpace(validUTF8(string(raw)))
	msg := full
	if len(msg) > maxReasonBytes {
		msg = truncateRunes(msg, maxReasonBytes) + "…"
	}
	if msg == "" {
		msg = "(no reason given)"
	}
	err = fmt.Errorf("push of %d log entries: Loki answered %d: %s", records, resp.StatusCode, msg)

	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		e.failed(reasonHTTP429)
		if reIngesterTotal.MatchString(full) {
			// Per-stream limit in the ingester: the other entries were
			// accepted; re-send only the refused ones.
			return &refusedResponse{status: resp.StatusCode, body: full, retryAfter: resp.Header.Get("Retry-After")}, nil
		}
		// Loki's tenant rate limit answers 429 without Retry-After; its
		// token bucket refills every second, so the normal backoff (up to
		// max_interval) would only slow down draining a backlog.
		return nil, throttleOr(err, resp.Header.Get("Retry-After"), rateLimitRetry)
	case resp.StatusCode >= 500:
		e.failed(reasonHTTP5xx)
		if resp.StatusCode == http.StatusServiceUnavailable {
			return nil, throttle(err, resp.Header.Get("Retry-After"))
		}
		return nil, err
	case resp.StatusCode >= 400:
		e.failed(reasonHTTP4xx)
		return &refusedResponse{status: resp.StatusCode, body: full}, nil
	default:
		// 1xx/3xx: not an answer of Loki's push API; retry.
		return nil, err
	}
}

// finish writes the dead letters, then returns err (the push's own
// outcome) or, when they could not all be kept, a permanent error.
func (e *lokiExporter) finish(err error, dead []deadRecord) error {
	if len(dead) == 0 {
		return err
	}
	n, werr := 0, errNoDeadLetter
	if e.dead != nil {
		n, werr = e.dead.write(dead)
	}
	for _, r := range dead[:n] {
		e.metrics.ExportDeadLetter.WithLabelValues(e.id, r.Reason).Inc()
	}
	if werr == nil {
		e.logger.Warn("Loki refused log entries that could not be fixed; they are kept in the dead-letter files (replay: see the loki exporter README)",
			zap.Int("entries", n), zap.String("directory", e.cfg.DeadLetter.Directory), zap.String("first_reason", dead[0].Reason), zap.String("loki_message", dead[0].Message))
		return err
	}
	lost := len(dead) - n
	what := "set dead_letter.directory to a directory on the state volume"
	if errors.Is(werr, errDeadLetterFull) {
		what = "replay and delete the dead-letter files (loki exporter README), or raise dead_letter.max_bytes"
	} else if e.dead != nil {
		what = "check that dead_letter.directory is writable and its volume has free space"
	}
	e.logger.Error("LOG ENTRIES LOST: Loki refused them, they could not be fixed, and the dead-letter file could not keep them; "+what,
		zap.Int("lost_entries", lost), zap.Int("kept_entries", n), zap.String("first_reason", dead[n].Reason),
		zap.String("loki_message", dead[n].Message), zap.Error(werr))
	return consumererror.NewPermanent(fmt.Errorf("%d log entries refused by Loki could not be dead-lettered (%w); %s", lost, werr, what))
}

func (e *lokiExporter) failed(reason string) {
	e.metrics.ExportFailed.WithLabelValues(e.id, reason).Inc()
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// throttle wraps err so the retry waits at least Retry-After (seconds or an
// HTTP date); without a usable header the normal backoff applies.
func throttle(err error, retryAfter string) error { return throttleOr(err, retryAfter, 0) }

// rateLimitRetry is the wait after a 429 that names none.
const rateLimitRetry = time.Second

// throttleOr is throttle with a wait of def (when > 0) for an answer
// without a usable Retry-After.
func throttleOr(err error, retryAfter string, def time.Duration) error {
	retryAfter = strings.TrimSpace(retryAfter)
	if retryAfter == "" {
		if def > 0 {
			return exporterhelper.NewThrottleRetry(err, def)
		}
		return err
	}
	if secs, perr := strconv.Atoi(retryAfter); perr == nil {
		return exporterhelper.NewThrottleRetry(err, time.Duration(max(secs, 0))*time.Second)
	}
	if t, perr := http.ParseTime(retryAfter); perr == nil {
		return exporterhelper.NewThrottleRetry(err, max(time.Until(t), 0))
	}
	if def > 0 {
		return exporterhelper.NewThrottleRetry(err, def)
	}
	return err
}
