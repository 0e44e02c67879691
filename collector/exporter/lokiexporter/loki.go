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
	"strconv"
	"strings"
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
}

func newLokiExporter(cfg *Config, set exporter.Settings, m *selftelemetry.Metrics) *lokiExporter {
	e := &lokiExporter{
		cfg:       cfg,
		enc:       newEncoder(cfg.Labels.Extra),
		settings:  set.TelemetrySettings,
		logger:    set.Logger,
		id:        set.ID.String(),
		metrics:   m,
		userAgent: "opsight/" + set.BuildInfo.Version,
	}
	// Every reason's series exists from the start, at zero, so rules on
	// increase() see the first failure.
	for _, r := range []string{reasonHTTP429, reasonHTTP5xx, reasonHTTP4xx, reasonConnection, reasonTimeout} {
		m.ExportFailed.WithLabelValues(e.id, r)
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
	return nil
}

func (e *lokiExporter) pushLogs(ctx context.Context, ld plog.Logs) error {
	var body []byte
	contentType := contentJSON
	if e.cfg.Encoding == EncodingJSON {
		body = e.enc.encodeJSON(ld)
	} else {
		var err error
		if body, err = e.enc.encodeProtobuf(ld); err != nil {
			return consumererror.NewPermanent(fmt.Errorf("encoding the Loki push request: %w", err))
		}
		contentType = contentProtobuf
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.cfg.ClientConfig.Endpoint, bytes.NewReader(body))
	if err != nil {
		return consumererror.NewPermanent(fmt.Errorf("building the Loki push request: %w", err))
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
			return err
		}
		reason := reasonConnection
		if isTimeout(err) {
			reason = reasonTimeout
		}
		e.failed(reason)
		return fmt.Errorf("pushing %d log records to Loki (%s): %w", ld.LogRecordCount(), reason, err)
	}
	defer func() {
		_, _ = io.CopyN(io.Discard, resp.Body, maxDrainBytes)
		_ = resp.Body.Close()
	}()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}

	msg := readReason(resp.Body)
	err = fmt.Errorf("push of %d log records: Loki answered %d: %s", ld.LogRecordCount(), resp.StatusCode, msg)

	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		e.failed(reasonHTTP429)
		return throttle(err, resp.Header.Get("Retry-After"))
	case resp.StatusCode >= 500:
		e.failed(reasonHTTP5xx)
		if resp.StatusCode == http.StatusServiceUnavailable {
			return throttle(err, resp.Header.Get("Retry-After"))
		}
		return err
	default:
		// 400 (bad labels, too old, line too long...) and other 4xx: sending
		// the same body again cannot succeed.
		e.failed(reasonHTTP4xx)
		e.logger.Error("Loki rejected a push; the records are dropped (permanent error)",
			zap.Int("status", resp.StatusCode), zap.String("reason", msg), zap.Int("records", ld.LogRecordCount()))
		return consumererror.NewPermanent(err)
	}
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

func readReason(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, maxReasonBytes))
	s := strings.TrimSpace(validUTF8(string(b)))
	if s == "" {
		return "(no reason given)"
	}
	return s
}

// throttle wraps err so the retry waits at least Retry-After (seconds or an
// HTTP date); without a usable header the normal backoff applies.
func throttle(err error, retryAfter string) error {
	retryAfter = strings.TrimSpace(retryAfter)
	if retryAfter == "" {
		return err
	}
	if secs, perr := strconv.Atoi(retryAfter); perr == nil {
		return exporterhelper.NewThrottleRetry(err, time.Duration(max(secs, 0))*time.Second)
	}
	if t, perr := http.ParseTime(retryAfter); perr == nil {
		return exporterhelper.NewThrottleRetry(err, max(time.Until(t), 0))
	}
	return err
}
