package testservers

// StrictLoki is an in-process stand-in for Grafana Loki's push API that
// enforces Loki's documented ingestion rules with Loki's status codes and
// error texts. Real Loki cannot be used (its module is AGPL, see
// docs/e2e.md); VictoriaLogs, the e2e store, accepts what Loki refuses.
//
// Every rule, its default, its config key, its error text and the Loki
// source or documentation it comes from is listed in docs/loki-stand-in.md.
// The behaviour was read from grafana/loki (Apache/AGPL source read as
// reference only, nothing copied): pkg/loghttp/push/push.go (parsing),
// pkg/distributor/{http,distributor,validator}.go (validation, partial
// accept, tenant rate limit), pkg/validation/validate.go (reasons and
// messages), pkg/ingester/{instance,stream}.go (out-of-order window,
// per-stream rate limit, duplicates, the per-stream error body) and
// docs/sources/operations/troubleshooting/troubleshoot-ingest.md,
// docs/sources/operations/request-validation-rate-limits.md,
// docs/sources/shared/configuration.md (limits_config).

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
)

// Loki's discard reasons: the reason label of loki_discarded_samples_total
// and loki_discarded_bytes_total (pkg/validation/validate.go).
const (
	LokiReasonInvalidLabels                = "invalid_labels"
	LokiReasonMissingLabels                = "missing_labels"
	LokiReasonRateLimited                  = "rate_limited"
	LokiReasonLineTooLong                  = "line_too_long"
	LokiReasonStreamRateLimit              = "per_stream_rate_limit"
	LokiReasonTooFarBehind                 = "too_far_behind"
	LokiReasonGreaterThanMaxSampleAge      = "greater_than_max_sample_age"
	LokiReasonTooFarInFuture               = "too_far_in_future"
	LokiReasonMaxLabelNamesPerSeries       = "max_label_names_per_series"
	LokiReasonLabelNameTooLong             = "label_name_too_long"
	LokiReasonLabelValueTooLong            = "label_value_too_long"
	LokiReasonDuplicateLabelNames          = "duplicate_label_names"
	LokiReasonDisallowedStructuredMetadata = "disallowed_structured_metadata"
	LokiReasonStructuredMetadataTooLarge   = "structured_metadata_too_large"
	LokiReasonStructuredMetadataTooMany    = "structured_metadata_too_many"
)

// Loki's error texts (pkg/validation/validate.go, pkg/ingester/stream.go,
// pkg/chunkenc). The %s for a stream is its label set as Loki prints it:
// {a="1", b="2"}.
const (
	lokiMissingStreamsMsg      = "error at least one valid stream is required for ingestion"
	lokiMissingLabelsMsg       = "error at least one label pair is required per stream"
	lokiRateLimitedMsg         = "Ingestion rate limit exceeded for user %s (limit: %d bytes/sec) while attempting to ingest '%d' lines totaling '%d' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased"
	lokiLineTooLongMsg         = "Max entry size '%d' bytes exceeded for stream '%s' while adding an entry with length '%d' bytes"
	lokiTooOldMsg              = "entry for stream '%s' has timestamp too old: %v, oldest acceptable timestamp is: %v"
	lokiTooNewMsg              = "entry for stream '%s' has timestamp too new: %v"
	lokiMaxLabelNamesMsg       = "entry for stream '%s' has %d label names; limit %d"
	lokiLabelNameTooLongMsg    = "stream '%s' has label name too long: '%s'"
	lokiLabelValueTooLongMsg   = "stream '%s' has label value too long: '%s'"
	lokiDuplicateLabelNamesMsg = "stream '%s' has duplicate label name: '%s'"
	lokiSMDisallowedMsg        = "stream '%s' includes structured metadata, but this feature is disallowed. Please see `limits_config.allow_structured_metadata` or contact your Loki administrator to enable it."
	lokiSMTooLargeMsg          = "stream '%s' has structured metadata too large: '%d' bytes, limit: '%d' bytes. Please see `limits_config.max_structured_metadata_size` or contact your Loki administrator to increase it."
	lokiSMTooManyMsg           = "stream '%s' has too many structured metadata labels: '%d', limit: '%d'. Please see `limits_config.max_structured_metadata_entries_count` or contact your Loki administrator to increase it."
	lokiStreamRateLimitMsg     = "Per stream rate limit exceeded (limit: %s/sec) while attempting to ingest for stream '%s' totaling %s, consider splitting a stream via additional labels or contact your Loki administrator to see if the limit can be increased"
	lokiTooFarBehindMsg        = "entry too far behind, entry timestamp is: %s, oldest acceptable timestamp is: %s"
)

// LokiLimits are the limits the stand-in enforces, named after Loki's config
// keys. DefaultLokiLimits returns Loki's defaults; tests lower them to make a
// rule fire quickly.
type LokiLimits struct {
	IngestionRateMB      float64 // limits_config.ingestion_rate_mb (4), MB = 1048576 bytes
	IngestionBurstSizeMB float64 // limits_config.ingestion_burst_size_mb (6)

	MaxLabelNameLength     int // limits_config.max_label_name_length (1024)
	MaxLabelValueLength    int // limits_config.max_label_value_length (2048)
	MaxLabelNamesPerSeries int // limits_config.max_label_names_per_series (15)

	RejectOldSamples       bool          // limits_config.reject_old_samples (true)
	RejectOldSamplesMaxAge time.Duration // limits_config.reject_old_samples_max_age (1w)
	CreationGracePeriod    time.Duration // limits_config.creation_grace_period (10m)

	MaxLineSize         int  // limits_config.max_line_size (256KB = 262144; 0 = no limit)
	MaxLineSizeTruncate bool // limits_config.max_line_size_truncate (false)

	AllowStructuredMetadata           bool // limits_config.allow_structured_metadata (true)
	MaxStructuredMetadataSize         int  // limits_config.max_structured_metadata_size (64KB = 65536; 0 = no limit)
	MaxStructuredMetadataEntriesCount int  // limits_config.max_structured_metadata_entries_count (128; 0 = no limit)

	PerStreamRateLimit      int // limits_config.per_stream_rate_limit (3MB = 3145728 bytes/s)
	PerStreamRateLimitBurst int // limits_config.per_stream_rate_limit_burst (15MB)

	// ShardStreamsEnabled is limits_config.shard_streams.enabled (true). The
	// stand-in does not shard streams; the setting only selects how the
	// ingester applies the per-stream rate limit: all-or-nothing per stream
	// and push when true (Loki's rateLimitWholeStream), entry by entry
	// when false.
	ShardStreamsEnabled bool

	// DiscoverServiceName is limits_config.discover_service_name: a stream
	// without service_name gets one from the first of these labels present,
	// or unknown_service. Empty disables it (then {} is missing_labels).
	DiscoverServiceName []string

	MaxChunkAge             time.Duration // ingester.max_chunk_age (2h): out-of-order window is half of it
	MaxReturnedStreamErrors int           // ingester.max_returned_stream_errors (10; 0 = all)

	// MaxDecompressedSize bounds a body after gzip/deflate/snappy (100 MiB).
	// A guard of the stand-in against decompression bombs, answered with
	// Loki's "message size too large than max (N vs M)"; Loki's own limits
	// on body size were not verified and are not claimed here.
	MaxDecompressedSize int
}

// DefaultLokiLimits returns Loki's defaults (docs/sources/shared/configuration.md,
// pkg/validation/limits.go).
func DefaultLokiLimits() LokiLimits {
	return LokiLimits{
		IngestionRateMB:                   4,
		IngestionBurstSizeMB:              6,
		MaxLabelNameLength:                1024,
		MaxLabelValueLength:               2048,
		MaxLabelNamesPerSeries:            15,
		RejectOldSamples:                  true,
		RejectOldSamplesMaxAge:            7 * 24 * time.Hour,
		CreationGracePeriod:               10 * time.Minute,
		MaxLineSize:                       256 << 10,
		AllowStructuredMetadata:           true,
		MaxStructuredMetadataSize:         64 << 10,
		MaxStructuredMetadataEntriesCount: 128,
		PerStreamRateLimit:                3 << 20,
		PerStreamRateLimitBurst:           15 << 20,
		ShardStreamsEnabled:               true,
		DiscoverServiceName: []string{"service", "app", "application", "app_name", "name",
			"app_kubernetes_io_name", "container", "container_name", "k8s_container_name",
			"component", "workload", "job", "k8s_job_name"},
		MaxChunkAge:             2 * time.Hour,
		MaxReturnedStreamErrors: 10,
		MaxDecompressedSize:     100 << 20,
	}
}

// LokiEntry is one entry the stand-in stored.
type LokiEntry struct {
	Tenant             string
	Stream             string            // Loki's label string: {a="1", b="2"}
	Labels             map[string]string // the stream's labels (service_name included when Loki adds it)
	Timestamp          time.Time         // UTC
	Line               string
	StructuredMetadata map[string]string // nil when the entry had none
}

// LokiPush is what one push request got.
type LokiPush struct {
	Tenant          string // the tenant Loki used ("fake" unless auth is enabled)
	OrgID           string // the X-Scope-OrgID header as sent
	ContentType     string
	ContentEncoding string
	Status          int
	Body            string // response body as sent (http.Error adds a newline)
	Fault           bool   // answered by an injected fault

	// Entry counts of the decoded body: Sent = Accepted + Refused +
	// Duplicates. Refused entries were not stored because of a rule (a body
	// that does not decode has Sent 0; a push refused whole for a label
	// syntax error refuses all it sent, which Loki does not count in
	// loki_discarded_samples_total). Duplicates are dropped silently, as
	// Loki's ingester does.
	Sent, Accepted, Refused, Duplicates int
}

// LokiOption configures StartStrictLoki.
type LokiOption func(*StrictLoki)

// WithLokiLimits edits the limits before the server starts.
func WithLokiLimits(edit func(*LokiLimits)) LokiOption {
	return func(s *StrictLoki) { edit(&s.limits) }
}

// WithLokiClock makes the server read time from now (timestamp windows and
// token buckets), so a test can move time instead of sleeping.
func WithLokiClock(now func() time.Time) LokiOption {
	return func(s *StrictLoki) { s.now = now }
}

// WithLokiAuth is auth_enabled: true: X-Scope-OrgID names the tenant and a
// push without it is refused (401 "no org id"). Without it (Loki's
// single-tenant mode, auth_enabled: false) the tenant is always "fake" and
// the header is ignored.
func WithLokiAuth() LokiOption {
	return func(s *StrictLoki) { s.auth = true }
}

// StrictLoki is a running stand-in. Safe for concurrent use.
type StrictLoki struct {
	URL     string // http://127.0.0.1:port
	PushURL string // URL + /loki/api/v1/push

	mu       sync.Mutex
	limits   LokiLimits
	now      func() time.Time
	auth     bool
	tenants  map[string]*lokiTenant
	entries  []LokiEntry
	pushes   []LokiPush
	samples  map[[2]string]float64 // {reason, tenant} → loki_discarded_samples_total
	bytes    map[[2]string]float64 // {reason, tenant} → loki_discarded_bytes_total
	faults   []lokiFault
	limitsID int // bumped by SetLimits so token buckets are rebuilt
}

type lokiFault struct {
	n      int
	status int
	body   string
}

type lokiTenant struct {
	limiter   *lokiTokenBucket
	limiterID int
	streams   map[string]*lokiStream
}

type lokiStream struct {
	labels    lokiLabels
	str       string
	limiter   *lokiTokenBucket
	limiterID int
	lastTs    time.Time
	lastLine  string
	hasLast   bool
	highestTs time.Time
	seen      map[lokiDupKey]struct{}
}

type lokiDupKey struct {
	ts   int64
	line string
}

// NewStrictLoki returns a stand-in that is not listening: serve it with
// Handler (StartStrictLoki does).
func NewStrictLoki(opts ...LokiOption) *StrictLoki {
	s := &StrictLoki{
		limits:  DefaultLokiLimits(),
		now:     time.Now,
		tenants: map[string]*lokiTenant{},
		samples: map[[2]string]float64{},
		bytes:   map[[2]string]float64{},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// StartStrictLoki starts the stand-in on a loopback port; it stops when the
// test ends. It serves POST /loki/api/v1/push, GET /ready, GET /metrics and
// a minimal GET /loki/api/v1/query_range (log queries of a stream selector
// and label filters, see handleQueryRange).
func StartStrictLoki(t testing.TB, opts ...LokiOption) *StrictLoki {
	t.Helper()
	s := NewStrictLoki(opts...)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	s.PushURL = srv.URL + "/loki/api/v1/push"
	return s
}

// Handler serves the stand-in's endpoints.
func (s *StrictLoki) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/loki/api/v1/push", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
			return
		}
		s.handlePush(w, r)
	})
	mux.HandleFunc("/loki/api/v1/query_range", s.handleQueryRange)
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ready\n")
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = io.WriteString(w, s.Metrics())
	})
	return mux
}

// SetLimits edits the limits of a running server. Token buckets are rebuilt
// full with the new rate and burst, as Loki's limiters are when a limit
// changes.
func (s *StrictLoki) SetLimits(edit func(*LokiLimits)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	edit(&s.limits)
	s.limitsID++
}

// Limits returns the limits in force.
func (s *StrictLoki) Limits() LokiLimits {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limits
}

// FailNext answers the next n pushes with status and body (http.Error
// style), without looking at them: for faults the rules cannot produce
// (5xx, an outage, a proxy's 413). Calls queue up.
func (s *StrictLoki) FailNext(n, status int, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n > 0 {
		s.faults = append(s.faults, lokiFault{n: n, status: status, body: body})
	}
}

// Entries returns every stored entry, in the order stored.
func (s *StrictLoki) Entries() []LokiEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]LokiEntry(nil), s.entries...)
}

// Pushes returns every push request and what it got, in arrival order.
func (s *StrictLoki) Pushes() []LokiPush {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]LokiPush(nil), s.pushes...)
}

// Discarded returns loki_discarded_samples_total by reason, summed over
// tenants. It counts as Loki does, so a stream refused for its labels counts
// under its own reason and under invalid_labels, and missing_labels counts
// one per stream; LokiPush.Refused counts each refused entry once.
func (s *StrictLoki) Discarded() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.samples {
		out[k[0]] += int(v)
	}
	return out
}

// DiscardedBytes returns loki_discarded_bytes_total by reason, summed over
// tenants (line plus structured metadata bytes, as Loki counts them).
func (s *StrictLoki) DiscardedBytes() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.bytes {
		out[k[0]] += int(v)
	}
	return out
}

// Metrics renders loki_discarded_samples_total and loki_discarded_bytes_total
// in the Prometheus text format (labels reason and tenant; Loki's
// retention_hours, policy and format labels are left out).
func (s *StrictLoki) Metrics() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	write := func(name, help string, m map[[2]string]float64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s counter\n", name, help, name)
		keys := make([][2]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			if keys[i][0] != keys[j][0] {
				return keys[i][0] < keys[j][0]
			}
			return keys[i][1] < keys[j][1]
		})
		for _, k := range keys {
			fmt.Fprintf(&b, "%s{reason=%q,tenant=%q} %s\n", name, k[0], k[1], strconv.FormatFloat(m[k], 'f', -1, 64))
		}
	}
	write("loki_discarded_samples_total", "The total number of samples that were discarded.", s.samples)
	write("loki_discarded_bytes_total", "The total number of bytes that were discarded.", s.bytes)
	return b.String()
}

// lokiHTTPError is an answer other than 204.
type lokiHTTPError struct {
	status int
	msg    string
}

func (s *StrictLoki) handlePush(w http.ResponseWriter, r *http.Request) {
	p := LokiPush{
		OrgID:           r.Header.Get("X-Scope-OrgID"),
		ContentType:     r.Header.Get("Content-Type"),
		ContentEncoding: r.Header.Get("Content-Encoding"),
	}
	body, readErr := io.ReadAll(r.Body)

	s.mu.Lock()
	defer s.mu.Unlock()
	var res *lokiHTTPError
	if len(s.faults) > 0 {
		f := &s.faults[0]
		res = &lokiHTTPError{f.status, f.body}
		p.Fault = true
		if f.n--; f.n == 0 {
			s.faults = s.faults[1:]
		}
	} else if readErr != nil {
		res = &lokiHTTPError{http.StatusBadRequest, readErr.Error()}
	} else {
		res = s.push(&p, body)
	}
	if res == nil {
		p.Status = http.StatusNoContent
		w.WriteHeader(http.StatusNoContent)
	} else {
		// Loki's push.HTTPError is http.Error: text/plain, a trailing newline.
		p.Status = res.status
		p.Body = res.msg + "\n"
		http.Error(w, res.msg, res.status)
	}
	s.pushes = append(s.pushes, p)
}

// lokiStreamIn is one decoded stream before validation.
type lokiStreamIn struct {
	labels  string
	entries []lokiEntryIn
}

type lokiEntryIn struct {
	ts   time.Time
	line string
	sm   []push.LabelAdapter
}

// push runs one decoded request through Loki's write path. s.mu is held.
func (s *StrictLoki) push(p *LokiPush, body []byte) *lokiHTTPError {
	lim := s.limits
	now := s.now()

	// Tenant (dskit middleware; pkg/distributor/http.go).
	tenant := "fake"
	if s.auth {
		if p.OrgID == "" {
			return &lokiHTTPError{http.StatusUnauthorized, "no org id"}
		}
		if strings.Contains(p.OrgID, "|") {
			return &lokiHTTPError{http.StatusBadRequest, "multiple org IDs present"}
		}
		tenant = p.OrgID
	}
	p.Tenant = tenant

	// Parse (pkg/loghttp/push/push.go): any error is a 400 for the whole push.
	streams, err := decodeLokiPush(body, p.ContentType, p.ContentEncoding, lim.MaxDecompressedSize)
	if err != nil {
		return &lokiHTTPError{http.StatusBadRequest, err.Error()}
	}
	parsed := make([]lokiLabels, len(streams))
	for i := range streams {
		p.Sent += len(streams[i].entries)
	}
	for i, st := range streams {
		ls, err := parseLokiLabels(st.labels)
		if err != nil {
			// The whole push is refused; Loki counts nothing as discarded.
			p.Refused = p.Sent
			return &lokiHTTPError{http.StatusBadRequest, "couldn't parse labels: " + err.Error()}
		}
		if !ls.has("service_name") && len(lim.DiscoverServiceName) > 0 && !ls.internal() {
			svc := "unknown_service"
			for _, name := range lim.DiscoverServiceName {
				if v := ls.get(name); v != "" {
					svc = v
					break
				}
			}
			ls = append(ls, lokiLabel{"service_name", svc})
			ls.sort()
		}
		parsed[i] = ls
	}
	if len(streams) == 0 {
		return &lokiHTTPError{http.StatusUnprocessableEntity, lokiMissingStreamsMsg}
	}

	// Distributor validation (pkg/distributor/distributor.go, validator.go):
	// invalid entries are dropped, the rest go on, errors are grouped.
	var verrs lokiGroupedErrors
	type keptStream struct {
		labels  lokiLabels
		entries []lokiEntryIn
	}
	var kept []keptStream
	validCount, validSize := 0, 0
	for i, st := range streams {
		if len(st.entries) == 0 {
			continue
		}
		ls := parsed[i]
		lsStr := ls.String()
		if lim.MaxLineSizeTruncate && lim.MaxLineSize > 0 {
			for j := range st.entries {
				if len(st.entries[j].line) > lim.MaxLineSize {
					st.entries[j].line = st.entries[j].line[:lim.MaxLineSize]
				}
			}
		}
		if reason, msg := validateLokiLabels(lim, ls, lsStr); reason != "" {
			verrs.add(msg)
			n, size := len(st.entries), lokiEntriesSize(st.entries)
			if reason == LokiReasonMissingLabels {
				s.discard(reason, tenant, 1, 0) // Loki increments this one by 1 per stream
			} else {
				s.discard(reason, tenant, n, size)
			}
			s.discard(LokiReasonInvalidLabels, tenant, n, size)
			p.Refused += n
			continue
		}
		var ok []lokiEntryIn
		for _, e := range st.entries {
			if reason, msg := validateLokiEntry(lim, now, lsStr, e); reason != "" {
				verrs.add(msg)
				s.discard(reason, tenant, 1, lokiEntrySize(e))
				p.Refused++
				continue
			}
			for j := range e.sm {
				e.sm[j].Name = normalizeLokiLabelName(e.sm[j].Name)
				if strings.ContainsRune(e.sm[j].Value, utf8.RuneError) {
					e.sm[j].Value = strings.Map(func(r rune) rune {
						if r == utf8.RuneError {
							return ' '
						}
						return r
					}, e.sm[j].Value)
				}
			}
			ok = append(ok, e)
			validCount++
			validSize += lokiEntrySize(e)
		}
		if len(ok) > 0 {
			kept = append(kept, keptStream{ls, ok})
		}
	}
	var validationErr *lokiHTTPError
	if len(verrs.msgs) > 0 {
		validationErr = &lokiHTTPError{http.StatusBadRequest, verrs.String()}
	}
	if len(kept) == 0 {
		return validationErr
	}

	// Tenant rate limit (distributor): all or nothing, 429 wins over the
	// validation errors and nothing is stored.
	t := s.tenant(tenant, now)
	if !t.limiter.allowN(now, validSize) {
		s.discard(LokiReasonRateLimited, tenant, validCount, validSize)
		p.Refused += validCount
		return &lokiHTTPError{http.StatusTooManyRequests,
			fmt.Sprintf(lokiRateLimitedMsg, tenant, int(lim.IngestionRateMB*lokiBytesInMB), validCount, validSize)}
	}

	// Ingester (pkg/ingester/instance.go): streams in request order; the
	// answer is what happened to the LAST stream only.
	var ingesterErr *lokiHTTPError
	for _, ks := range kept {
		ingesterErr = s.pushStream(p, t, tenant, ks.labels, ks.entries, now)
	}
	if ingesterErr != nil {
		return ingesterErr
	}
	return validationErr
}

const lokiBytesInMB = 1048576

func (s *StrictLoki) tenant(name string, now time.Time) *lokiTenant {
	t := s.tenants[name]
	if t == nil {
		t = &lokiTenant{streams: map[string]*lokiStream{}, limiterID: -1}
		s.tenants[name] = t
	}
	if t.limiterID != s.limitsID {
		t.limiter = newLokiTokenBucket(s.limits.IngestionRateMB*lokiBytesInMB, int(s.limits.IngestionBurstSizeMB*lokiBytesInMB), now)
		t.limiterID = s.limitsID
	}
	return t
}

func (s *StrictLoki) discard(reason, tenant string, samples, bytes int) {
	k := [2]string{reason, tenant}
	s.samples[k] += float64(samples)
	s.bytes[k] += float64(bytes)
}

type lokiFailed struct {
	ts         time.Time
	msg        string
	rateLimit  bool
	tooFarBack bool
}

// pushStream is the ingester's stream.Push (pkg/ingester/stream.go).
func (s *StrictLoki) pushStream(p *LokiPush, t *lokiTenant, tenant string, ls lokiLabels, entries []lokiEntryIn, now time.Time) *lokiHTTPError {
	lim := s.limits
	key := ls.String()
	st := t.streams[key]
	if st == nil {
		st = &lokiStream{labels: ls, str: key, seen: map[lokiDupKey]struct{}{}, limiterID: -1}
		t.streams[key] = st
	}
	if st.limiterID != s.limitsID {
		st.limiter = newLokiTokenBucket(float64(lim.PerStreamRateLimit), lim.PerStreamRateLimitBurst, now)
		st.limiterID = s.limitsID
	}
	rateMsg := func(size int) string {
		return fmt.Sprintf(lokiStreamRateLimitMsg, lokiByteSize(lim.PerStreamRateLimit), key, lokiByteSize(size))
	}

	var failed []lokiFailed
	var toStore []lokiEntryIn
	lastTs, lastLine, hasLast, highest := st.lastTs, st.lastLine, st.hasLast, st.highestTs
	validBytes, tooFar := 0, 0
	for _, e := range entries {
		// The most recently pushed line again: ignored before anything else.
		if hasLast && e.ts.Equal(lastTs) && e.line == lastLine {
			p.Duplicates++
			continue
		}
		size := lokiEntrySize(e)
		if !lim.ShardStreamsEnabled && !st.limiter.allowN(now, size) {
			failed = append(failed, lokiFailed{ts: e.ts, msg: rateMsg(size), rateLimit: true})
			s.discard(LokiReasonStreamRateLimit, tenant, 1, size)
			continue
		}
		cutoff := highest.Add(-lim.MaxChunkAge / 2)
		if !highest.IsZero() && cutoff.After(e.ts) {
			failed = append(failed, lokiFailed{ts: e.ts, tooFarBack: true,
				msg: fmt.Sprintf(lokiTooFarBehindMsg, e.ts.UTC().Format(time.RFC3339), cutoff.UTC().Format(time.RFC3339))})
			s.discard(LokiReasonTooFarBehind, tenant, 1, size)
			tooFar++
			continue
		}
		validBytes += size
		lastTs, lastLine, hasLast = e.ts, e.line, true
		if highest.Before(e.ts) {
			highest = e.ts
		}
		toStore = append(toStore, e)
	}
	if lim.ShardStreamsEnabled && !st.limiter.allowN(now, validBytes) {
		// All or nothing: every entry that passed is refused, and only
		// those are listed (the too-far-behind ones are counted, not listed).
		failed = failed[:0]
		for _, e := range toStore {
			failed = append(failed, lokiFailed{ts: e.ts, msg: rateMsg(lokiEntrySize(e)), rateLimit: true})
			s.discard(LokiReasonStreamRateLimit, tenant, 1, lokiEntrySize(e))
		}
		// The too-far-behind entries were refused as well.
		p.Refused += len(failed) + tooFar
		return lokiErrorForFailed(failed, len(entries), tenant, key, lim.MaxReturnedStreamErrors)
	}
	p.Refused += len(failed)

	for _, e := range toStore {
		k := lokiDupKey{e.ts.UnixNano(), e.line}
		if _, dup := st.seen[k]; dup {
			// The chunk's head block keeps one of two entries with the same
			// timestamp and line; the push still succeeds.
			p.Duplicates++
		} else {
			st.seen[k] = struct{}{}
			s.entries = append(s.entries, LokiEntry{
				Tenant:             tenant,
				Stream:             key,
				Labels:             ls.Map(),
				Timestamp:          e.ts.UTC(),
				Line:               e.line,
				StructuredMetadata: lokiSMMap(e.sm),
			})
			p.Accepted++
		}
		st.lastTs, st.lastLine, st.hasLast = e.ts, e.line, true
		if st.highestTs.Before(e.ts) {
			st.highestTs = e.ts
		}
	}
	return lokiErrorForFailed(failed, len(entries), tenant, key, lim.MaxReturnedStreamErrors)
}

// lokiErrorForFailed is the ingester's errorForFailedEntries: the status
// follows the LAST failed entry (429 for a rate limit, 400 for too far
// behind), at most maxErrors lines, then the total.
func lokiErrorForFailed(failed []lokiFailed, total int, tenant, stream string, maxErrors int) *lokiHTTPError {
	if len(failed) == 0 {
		return nil
	}
	status := http.StatusBadRequest
	if failed[len(failed)-1].rateLimit {
		status = http.StatusTooManyRequests
	}
	shown := failed
	if maxErrors > 0 && len(shown) > maxErrors {
		shown = shown[:maxErrors]
	}
	var b strings.Builder
	for _, f := range shown {
		fmt.Fprintf(&b, "entry with timestamp %s ignored, reason: '%s',\n", f.ts.UTC().String(), f.msg)
	}
	fmt.Fprintf(&b, "user '%s', total ignored: %d out of %d for stream: %s", tenant, len(failed), total, stream)
	return &lokiHTTPError{status, b.String()}
}

// validateLokiLabels is the distributor's ValidateLabels: reason and message,
// or "" when the labels pass.
func validateLokiLabels(lim LokiLimits, ls lokiLabels, lsStr string) (string, string) {
	if len(ls) == 0 {
		return LokiReasonMissingLabels, lokiMissingLabelsMsg
	}
	if ls.internal() {
		return "", ""
	}
	n := len(ls)
	if ls.has("service_name") { // Loki adds it itself, so it is not counted
		n--
	}
	if n > lim.MaxLabelNamesPerSeries {
		return LokiReasonMaxLabelNamesPerSeries, fmt.Sprintf(lokiMaxLabelNamesMsg, lsStr, n, lim.MaxLabelNamesPerSeries)
	}
	last := ""
	for _, l := range ls {
		switch {
		case len(l.Name) > lim.MaxLabelNameLength:
			return LokiReasonLabelNameTooLong, fmt.Sprintf(lokiLabelNameTooLongMsg, lsStr, l.Name)
		case len(l.Value) > lim.MaxLabelValueLength:
			return LokiReasonLabelValueTooLong, fmt.Sprintf(lokiLabelValueTooLongMsg, lsStr, l.Value)
		case l.Name == last:
			return LokiReasonDuplicateLabelNames, fmt.Sprintf(lokiDuplicateLabelNamesMsg, lsStr, l.Name)
		}
		last = l.Name
	}
	return "", ""
}

// validateLokiEntry is the distributor's ValidateEntry, checks in Loki's order.
func validateLokiEntry(lim LokiLimits, now time.Time, lsStr string, e lokiEntryIn) (string, string) {
	ts := e.ts.UnixNano()
	if oldest := now.Add(-lim.RejectOldSamplesMaxAge); lim.RejectOldSamples && ts < oldest.UnixNano() {
		return LokiReasonGreaterThanMaxSampleAge, fmt.Sprintf(lokiTooOldMsg, lsStr,
			e.ts.UTC().Format(time.RFC3339), time.Unix(0, oldest.UnixNano()).UTC().Format(time.RFC3339))
	}
	if ts > now.Add(lim.CreationGracePeriod).UnixNano() {
		return LokiReasonTooFarInFuture, fmt.Sprintf(lokiTooNewMsg, lsStr, e.ts.UTC().Format(time.RFC3339))
	}
	if lim.MaxLineSize != 0 && len(e.line) > lim.MaxLineSize {
		return LokiReasonLineTooLong, fmt.Sprintf(lokiLineTooLongMsg, lim.MaxLineSize, lsStr, len(e.line))
	}
	if len(e.sm) > 0 {
		if !lim.AllowStructuredMetadata {
			return LokiReasonDisallowedStructuredMetadata, fmt.Sprintf(lokiSMDisallowedMsg, lsStr)
		}
		if size := lokiSMSize(e.sm); lim.MaxStructuredMetadataSize != 0 && size > lim.MaxStructuredMetadataSize {
			return LokiReasonStructuredMetadataTooLarge, fmt.Sprintf(lokiSMTooLargeMsg, lsStr, size, lim.MaxStructuredMetadataSize)
		}
		if lim.MaxStructuredMetadataEntriesCount != 0 && len(e.sm) > lim.MaxStructuredMetadataEntriesCount {
			return LokiReasonStructuredMetadataTooMany, fmt.Sprintf(lokiSMTooManyMsg, lsStr, len(e.sm), lim.MaxStructuredMetadataEntriesCount)
		}
	}
	return "", ""
}

func lokiSMSize(sm []push.LabelAdapter) int {
	n := 0
	for _, l := range sm {
		n += len(l.Name) + len(l.Value)
	}
	return n
}

func lokiEntrySize(e lokiEntryIn) int { return len(e.line) + lokiSMSize(e.sm) }

func lokiEntriesSize(es []lokiEntryIn) int {
	n := 0
	for _, e := range es {
		n += lokiEntrySize(e)
	}
	return n
}

func lokiSMMap(sm []push.LabelAdapter) map[string]string {
	if len(sm) == 0 {
		return nil
	}
	m := make(map[string]string, len(sm))
	for _, l := range sm {
		m[l.Name] = l.Value
	}
	return m
}

// normalizeLokiLabelName is what the distributor does to structured metadata
// names (Prometheus' OTLP NormalizeLabel): characters outside [a-zA-Z0-9_]
// become '_', a leading digit gets "key_", a single leading '_' gets "key".
func normalizeLokiLabelName(name string) string {
	if name == "" {
		return name
	}
	out := make([]byte, 0, len(name))
	for _, r := range name {
		if r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			out = append(out, byte(r))
		} else {
			out = append(out, '_')
		}
	}
	n := string(out)
	switch {
	case n[0] >= '0' && n[0] <= '9':
		n = "key_" + n
	case strings.HasPrefix(n, "_") && !strings.HasPrefix(n, "__"):
		n = "key" + n
	}
	return n
}

// lokiByteSize prints a size as Loki's flagext.ByteSize does
// (c2h5oh/datasize): the largest binary unit that divides it exactly.
func lokiByteSize(n int) string {
	units := []struct {
		size int
		name string
	}{{1 << 60, "EB"}, {1 << 50, "PB"}, {1 << 40, "TB"}, {1 << 30, "GB"}, {1 << 20, "MB"}, {1 << 10, "KB"}}
	if n == 0 {
		return "0B"
	}
	for _, u := range units {
		if n%u.size == 0 {
			return fmt.Sprintf("%d%s", n/u.size, u.name)
		}
	}
	return fmt.Sprintf("%dB", n)
}

// lokiGroupedErrors is Loki's util.GroupedErrors: identical messages are counted
// ("N errors like: …") and distinct ones joined with "; ". Loki walks a Go
// map, so its order is random; here it is first-seen order.
type lokiGroupedErrors struct {
	msgs  []string
	count map[string]int
}

func (g *lokiGroupedErrors) add(msg string) {
	if g.count == nil {
		g.count = map[string]int{}
	}
	if g.count[msg] == 0 {
		g.msgs = append(g.msgs, msg)
	}
	g.count[msg]++
}

func (g *lokiGroupedErrors) String() string {
	var b strings.Builder
	for i, m := range g.msgs {
		if i > 0 {
			b.WriteString("; ")
		}
		if len(g.msgs) > 1 || g.count[m] > 1 {
			fmt.Fprintf(&b, "%d errors like: ", g.count[m])
		}
		b.WriteString(m)
	}
	return b.String()
}

// lokiTokenBucket behaves as golang.org/x/time/rate.Limiter.AllowN, which Loki's
// limiters use: full at start, refilled at limit per second up to burst, a
// request larger than burst never passes, a refused request takes nothing.
type lokiTokenBucket struct {
	limit  float64
	burst  int
	tokens float64
	last   time.Time
}

func newLokiTokenBucket(limit float64, burst int, now time.Time) *lokiTokenBucket {
	return &lokiTokenBucket{limit: limit, burst: burst, tokens: float64(burst), last: now}
}

func (b *lokiTokenBucket) allowN(now time.Time, n int) bool {
	if now.After(b.last) {
		b.tokens += b.limit * now.Sub(b.last).Seconds()
		if b.tokens > float64(b.burst) {
			b.tokens = float64(b.burst)
		}
		b.last = now
	}
	if n > b.burst || b.tokens < float64(n) {
		return false
	}
	b.tokens -= float64(n)
	return true
}

// decodeLokiPush decodes a push body as Loki's ParseLokiRequest does:
// Content-Encoding first, then the media type (application/json is JSON,
// anything else snappy-compressed protobuf). Errors are the 400 texts.
func decodeLokiPush(body []byte, contentType, contentEncoding string, maxSize int) ([]lokiStreamIn, error) {
	var rd io.Reader = bytes.NewReader(body)
	switch contentEncoding {
	case "", "snappy":
	case "gzip":
		zr, err := gzip.NewReader(rd)
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		rd = zr
	case "deflate":
		fr := flate.NewReader(rd)
		defer fr.Close()
		rd = fr
	default:
		return nil, fmt.Errorf("Content-Encoding %q not supported", contentEncoding)
	}
	mediaType, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, err
	}
	if maxSize <= 0 {
		maxSize = int(^uint(0) >> 2)
	}
	raw, err := io.ReadAll(io.LimitReader(rd, int64(maxSize)+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > maxSize {
		return nil, fmt.Errorf("message size too large than max (%d vs %d)", len(raw), maxSize)
	}
	if mediaType == "application/json" {
		return decodeLokiJSON(raw)
	}
	if n, err := snappy.DecodedLen(raw); err == nil && n > maxSize {
		return nil, fmt.Errorf("message size too large than max (%d vs %d)", n, maxSize)
	}
	dec, err := snappy.Decode(nil, raw)
	if err != nil {
		return nil, err
	}
	var req push.PushRequest
	if err := req.Unmarshal(dec); err != nil {
		return nil, err
	}
	out := make([]lokiStreamIn, len(req.Streams))
	for i, st := range req.Streams {
		out[i].labels = st.Labels
		out[i].entries = make([]lokiEntryIn, len(st.Entries))
		for j, e := range st.Entries {
			out[i].entries[j] = lokiEntryIn{ts: e.Timestamp.UTC(), line: e.Line, sm: append([]push.LabelAdapter(nil), e.StructuredMetadata...)}
		}
	}
	return out, nil
}

// decodeLokiJSON decodes Loki's v1 JSON push body:
// {"streams":[{"stream":{"a":"b"},"values":[["<ns>","<line>",{"k":"v"}]]}]}.
// Loki decodes with jsoniter; error texts here are encoding/json's.
func decodeLokiJSON(raw []byte) ([]lokiStreamIn, error) {
	var req struct {
		Streams []struct {
			Stream map[string]string `json:"stream"`
			Values []json.RawMessage `json:"values"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(raw, &req); err != nil {
		return nil, err
	}
	out := make([]lokiStreamIn, len(req.Streams))
	for i, st := range req.Streams {
		out[i].labels = lokiLabelSetString(st.Stream)
		for _, v := range st.Values {
			var parts []json.RawMessage
			if err := json.Unmarshal(v, &parts); err != nil {
				return nil, fmt.Errorf("error reading entry: %w", err)
			}
			if len(parts) < 2 || len(parts) > 3 {
				return nil, errors.New("error reading entry: array must contains 2 values")
			}
			var tsStr, line string
			if err := json.Unmarshal(parts[0], &tsStr); err != nil {
				return nil, fmt.Errorf("error reading entry timestamp: %w", err)
			}
			ns, err := strconv.ParseInt(tsStr, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("error reading entry timestamp: %w", err)
			}
			if err := json.Unmarshal(parts[1], &line); err != nil {
				return nil, fmt.Errorf("error reading entry line: %w", err)
			}
			e := lokiEntryIn{ts: time.Unix(0, ns).UTC(), line: line}
			if len(parts) == 3 {
				var sm map[string]string
				if err := json.Unmarshal(parts[2], &sm); err != nil {
					return nil, fmt.Errorf("error reading entry structured metadata: %w", err)
				}
				names := make([]string, 0, len(sm))
				for k := range sm {
					names = append(names, k)
				}
				sort.Strings(names)
				for _, k := range names {
					e.sm = append(e.sm, push.LabelAdapter{Name: k, Value: sm[k]})
				}
			}
			out[i].entries = append(out[i].entries, e)
		}
	}
	return out, nil
}

// lokiLabelSetString is loghttp.LabelSet.String: the JSON stream object as a
// label string, names sorted, values Go-quoted.
func lokiLabelSetString(m map[string]string) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(m[k]))
	}
	b.WriteByte('}')
	return b.String()
}

// EncodeLokiProto encodes a push request as Loki's clients send it:
// protobuf, snappy-compressed (Content-Type application/x-protobuf).
func EncodeLokiProto(req *push.PushRequest) ([]byte, error) {
	b, err := req.Marshal()
	if err != nil {
		return nil, err
	}
	return snappy.Encode(nil, b), nil
}

// EncodeLokiJSON encodes a push request as Loki's JSON push body.
func EncodeLokiJSON(req *push.PushRequest) ([]byte, error) {
	type stream struct {
		Stream map[string]string `json:"stream"`
		Values [][]any           `json:"values"`
	}
	var out struct {
		Streams []stream `json:"streams"`
	}
	out.Streams = []stream{}
	for _, st := range req.Streams {
		ls, err := parseLokiLabels(st.Labels)
		if err != nil {
			return nil, err
		}
		s := stream{Stream: ls.Map(), Values: [][]any{}}
		for _, e := range st.Entries {
			v := []any{strconv.FormatInt(e.Timestamp.UnixNano(), 10), e.Line}
			if len(e.StructuredMetadata) > 0 {
				v = append(v, lokiSMMap(e.StructuredMetadata))
			}
			s.Values = append(s.Values, v)
		}
		out.Streams = append(out.Streams, s)
	}
	return json.Marshal(out)
}

// lokiLabel is one label; lokiLabels a sorted label set.
type lokiLabel struct{ Name, Value string }

type lokiLabels []lokiLabel

func (ls lokiLabels) sort() {
	sort.SliceStable(ls, func(i, j int) bool {
		if ls[i].Name != ls[j].Name {
			return ls[i].Name < ls[j].Name
		}
		return ls[i].Value < ls[j].Value
	})
}

func (ls lokiLabels) has(name string) bool {
	for _, l := range ls {
		if l.Name == name {
			return true
		}
	}
	return false
}

func (ls lokiLabels) get(name string) string {
	for _, l := range ls {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

// internal: Loki's own aggregated-metric and pattern streams skip label
// validation and service name discovery.
func (ls lokiLabels) internal() bool {
	return ls.has("__aggregated_metric__") || ls.has("__pattern__")
}

// String prints labels as Prometheus' labels.Labels.String: {a="1", b="2"}.
func (ls lokiLabels) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range ls {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(l.Name)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(l.Value))
	}
	b.WriteByte('}')
	return b.String()
}

// Map returns the labels as a map (a duplicate name keeps its last value).
func (ls lokiLabels) Map() map[string]string {
	m := make(map[string]string, len(ls))
	for _, l := range ls {
		m[l.Name] = l.Value
	}
	return m
}

// ParseLokiLabels parses a stream label string as Loki's syntax.ParseLabels
// does (Prometheus' series-description grammar: an optional metric name, then
// {name="value", …} with "…", '…' or `…` values), drops empty values, sorts
// by name, and returns the labels as a map and Loki's canonical string.
// Duplicate names are kept for validation to refuse; the map keeps the last.
func ParseLokiLabels(s string) (map[string]string, string, error) {
	ls, err := parseLokiLabels(s)
	if err != nil {
		return nil, "", err
	}
	return ls.Map(), ls.String(), nil
}

// lokiParseError prints as Prometheus' ParseErr: "line:col: parse error: msg".
type lokiParseError struct {
	in  string
	pos int
	msg string
}

func (e *lokiParseError) Error() string {
	line, lastBreak := 1, -1
	for i := 0; i < e.pos && i < len(e.in); i++ {
		if e.in[i] == '\n' {
			line++
			lastBreak = i
		}
	}
	return fmt.Sprintf("%d:%d: parse error: %s", line, e.pos-lastBreak, e.msg)
}

type lokiLabelParser struct {
	in  string
	pos int
}

func (p *lokiLabelParser) errf(pos int, format string, a ...any) error {
	return &lokiParseError{in: p.in, pos: pos, msg: fmt.Sprintf(format, a...)}
}

func (p *lokiLabelParser) eof() bool { return p.pos >= len(p.in) }

func (p *lokiLabelParser) skipSpace() {
	for !p.eof() {
		switch p.in[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func isLokiLabelStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isLokiLabelChar(c byte) bool { return isLokiLabelStart(c) || (c >= '0' && c <= '9') }

// token describes what is at pos, for "unexpected …" messages.
func (p *lokiLabelParser) token() string {
	if p.eof() {
		return "end of input"
	}
	c := p.in[p.pos]
	next := byte(0)
	if p.pos+1 < len(p.in) {
		next = p.in[p.pos+1]
	}
	switch {
	case isLokiLabelStart(c):
		end := p.pos
		for end < len(p.in) && isLokiLabelChar(p.in[end]) {
			end++
		}
		return fmt.Sprintf("identifier %q", p.in[p.pos:end])
	case c == '"' || c == '\'' || c == '`':
		return "string"
	case c == '!' && next == '=':
		return `"!="`
	case c == '=' && next == '~':
		return `"=~"`
	case c == '!' && next == '~':
		return `"!~"`
	case c == ',' || c == '=' || c == '}' || c == '{':
		return fmt.Sprintf("%q", string(c))
	}
	r, _ := utf8.DecodeRuneInString(p.in[p.pos:])
	return strconv.QuoteRune(r)
}

// unexpected is the error for what is at pos inside braces: the lexer's
// when it is no token at all, else the parser's "expected …".
func (p *lokiLabelParser) unexpected(expected string) error {
	c := p.in[p.pos]
	lexable := isLokiLabelStart(c) || c == ',' || c == '"' || c == '\'' || c == '`' || c == '=' || c == '}' ||
		(c == '!' && p.pos+1 < len(p.in) && (p.in[p.pos+1] == '=' || p.in[p.pos+1] == '~'))
	if c == '{' {
		return p.errf(p.pos, "unexpected left brace '{'")
	}
	if !lexable {
		r, _ := utf8.DecodeRuneInString(p.in[p.pos:])
		return p.errf(p.pos, "unexpected character inside braces: %s", strconv.QuoteRune(r))
	}
	return p.errf(p.pos, "unexpected %s in label set, expected %s", p.token(), expected)
}

func parseLokiLabels(in string) (lokiLabels, error) {
	p := &lokiLabelParser{in: in}
	var ls lokiLabels
	p.skipSpace()
	if p.eof() {
		return nil, p.errf(p.pos, "unexpected end of input")
	}
	if c := p.in[p.pos]; isLokiLabelStart(c) || c == ':' {
		start := p.pos
		for !p.eof() && (isLokiLabelChar(p.in[p.pos]) || p.in[p.pos] == ':') {
			p.pos++
		}
		ls = append(ls, lokiLabel{"__name__", p.in[start:p.pos]})
		p.skipSpace()
		if p.eof() {
			return finishLokiLabels(ls), nil
		}
	}
	if p.in[p.pos] != '{' {
		return nil, p.errf(p.pos, "unexpected %s, expected \"{\"", p.token())
	}
	braceOpen := p.pos
	p.pos++
	for {
		p.skipSpace()
		if p.eof() {
			return nil, p.errf(braceOpen, "unexpected end of input inside braces")
		}
		c := p.in[p.pos]
		if c == '}' {
			p.pos++
			break
		}
		if !isLokiLabelStart(c) {
			return nil, p.unexpected(`identifier or "}"`)
		}
		start := p.pos
		for !p.eof() && isLokiLabelChar(p.in[p.pos]) {
			p.pos++
		}
		name := p.in[start:p.pos]
		p.skipSpace()
		if p.eof() {
			return nil, p.errf(braceOpen, "unexpected end of input inside braces")
		}
		if p.in[p.pos] != '=' || (p.pos+1 < len(p.in) && p.in[p.pos+1] == '~') {
			return nil, p.unexpected(`"="`)
		}
		p.pos++
		p.skipSpace()
		if p.eof() {
			return nil, p.errf(braceOpen, "unexpected end of input inside braces")
		}
		value, err := p.str()
		if err != nil {
			return nil, err
		}
		ls = append(ls, lokiLabel{name, value})
		p.skipSpace()
		if p.eof() {
			return nil, p.errf(braceOpen, "unexpected end of input inside braces")
		}
		switch p.in[p.pos] {
		case ',':
			p.pos++
			continue
		case '}':
			p.pos++
		default:
			return nil, p.unexpected(`"," or "}"`)
		}
		break
	}
	p.skipSpace()
	if !p.eof() {
		return nil, p.errf(p.pos, "unexpected %s", p.token())
	}
	return finishLokiLabels(ls), nil
}

// finishLokiLabels drops empty values (Loki: "empty label values are
// equivalent to absent labels") and sorts.
func finishLokiLabels(ls lokiLabels) lokiLabels {
	out := ls[:0]
	for _, l := range ls {
		if l.Value != "" {
			out = append(out, l)
		}
	}
	out.sort()
	return out
}

// str reads a "…", '…' or `…` string with Prometheus' escapes.
func (p *lokiLabelParser) str() (string, error) {
	q := p.in[p.pos]
	if q != '"' && q != '\'' && q != '`' {
		return "", p.unexpected("string")
	}
	start := p.pos
	p.pos++
	if q == '`' {
		end := strings.IndexByte(p.in[p.pos:], '`')
		if end < 0 {
			return "", p.errf(start, "unterminated raw string")
		}
		v := p.in[p.pos : p.pos+end]
		p.pos += end + 1
		return v, nil
	}
	var b strings.Builder
	for {
		if p.eof() {
			return "", p.errf(start, "unterminated quoted string")
		}
		c := p.in[p.pos]
		switch {
		case c == q:
			p.pos++
			return b.String(), nil
		case c == '\n':
			return "", p.errf(start, "unterminated quoted string")
		case c == '\\':
			if err := p.escape(q, &b); err != nil {
				return "", err
			}
		default:
			b.WriteByte(c)
			p.pos++
		}
	}
}

func (p *lokiLabelParser) escape(q byte, b *strings.Builder) error {
	at := p.pos
	p.pos++ // the backslash
	if p.eof() {
		return p.errf(at, "escape sequence not terminated")
	}
	c := p.in[p.pos]
	simple := map[byte]byte{'a': '\a', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t', 'v': '\v', '\\': '\\'}
	if r, ok := simple[c]; ok {
		b.WriteByte(r)
		p.pos++
		return nil
	}
	if c == q {
		b.WriteByte(q)
		p.pos++
		return nil
	}
	var n, base int
	var max uint64
	switch {
	case c >= '0' && c <= '7':
		n, base, max = 3, 8, 255
	case c == 'x':
		n, base, max = 2, 16, 255
		p.pos++
	case c == 'u':
		n, base, max = 4, 16, utf8.MaxRune
		p.pos++
	case c == 'U':
		n, base, max = 8, 16, utf8.MaxRune
		p.pos++
	default:
		r, _ := utf8.DecodeRuneInString(p.in[p.pos:])
		return p.errf(p.pos, "unknown escape sequence %#U", r)
	}
	if p.pos+n > len(p.in) {
		return p.errf(at, "escape sequence not terminated")
	}
	digits := p.in[p.pos : p.pos+n]
	v, err := strconv.ParseUint(digits, base, 32)
	if err != nil {
		return p.errf(p.pos, "illegal character in escape sequence %q", digits)
	}
	if v > max || (v >= 0xD800 && v < 0xE000) {
		return p.errf(at, "escape sequence is an invalid Unicode code point")
	}
	p.pos += n
	if c == 'u' || c == 'U' {
		b.WriteRune(rune(v))
	} else {
		b.WriteByte(byte(v))
	}
	return nil
}

// handleQueryRange answers the minimal form of a log query over what was
// stored, after Loki's HTTP API documentation
// (https://grafana.com/docs/loki/latest/reference/loki-http-api/#query-logs-within-a-range-of-time)
// and the LogQL documentation on label filter expressions
// (https://grafana.com/docs/loki/latest/query/log_queries/#label-filter-expression):
//
//   - query: a stream selector of = matchers, then any number of label
//     filters `| name="value"` or `| name!="value"`, each on a stream label
//     or an entry's structured metadata (what `{…} | trace_id="…"` needs);
//     anything else (regex matchers, line filters, parsers, metric queries)
//     is a 400 naming what is not supported;
//   - start, end: Unix nanoseconds or RFC 3339 (default: end = now, start =
//     end - 1h), start inclusive, end exclusive; limit (default 100);
//     direction backward (default, newest first) or forward;
//   - the answer is resultType "streams". With the header
//     X-Loki-Response-Encoding-Flags: categorize-labels, each value is
//     [ts, line, {"structuredMetadata": {…}}] and streams carry only their
//     labels; without it, structured metadata is folded into the stream
//     labels (entries grouped by the combined set), as Loki does.
//
// Tenants: with WithLokiAuth the X-Scope-OrgID header names the tenant read;
// else "fake".
func (s *StrictLoki) handleQueryRange(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		return
	}
	_ = r.ParseForm()
	q, err := parseLokiLogQuery(r.Form.Get("query"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	now := s.now()
	end, err := lokiQueryTime(r.Form.Get("end"), now)
	if err != nil {
		http.Error(w, "invalid parameter \"end\": "+err.Error(), http.StatusBadRequest)
		return
	}
	start, err := lokiQueryTime(r.Form.Get("start"), end.Add(-time.Hour))
	if err != nil {
		http.Error(w, "invalid parameter \"start\": "+err.Error(), http.StatusBadRequest)
		return
	}
	if end.Before(start) {
		http.Error(w, "end timestamp must not be before or equal to start time", http.StatusBadRequest)
		return
	}
	limit := 100
	if l := r.Form.Get("limit"); l != "" {
		if limit, err = strconv.Atoi(l); err != nil || limit <= 0 {
			http.Error(w, "limit must be a positive value", http.StatusBadRequest)
			return
		}
	}
	forward := false
	switch strings.ToLower(r.Form.Get("direction")) {
	case "", "backward":
	case "forward":
		forward = true
	default:
		http.Error(w, "invalid direction", http.StatusBadRequest)
		return
	}
	tenant := "fake"
	if s.auth {
		if tenant = r.Header.Get("X-Scope-OrgID"); tenant == "" {
			http.Error(w, "no org id", http.StatusUnauthorized)
			return
		}
	}
	var hits []LokiEntry
	for _, e := range s.Entries() {
		if e.Tenant == tenant && !e.Timestamp.Before(start) && e.Timestamp.Before(end) && q.match(e) {
			hits = append(hits, e)
		}
	}
	sort.SliceStable(hits, func(i, j int) bool {
		if forward {
			return hits[i].Timestamp.Before(hits[j].Timestamp)
		}
		return hits[i].Timestamp.After(hits[j].Timestamp)
	})
	if len(hits) > limit {
		hits = hits[:limit]
	}
	categorize := false
	for _, f := range strings.Split(r.Header.Get("X-Loki-Response-Encoding-Flags"), ",") {
		categorize = categorize || strings.TrimSpace(f) == "categorize-labels"
	}
	type stream struct {
		Stream map[string]string `json:"stream"`
		Values [][]any           `json:"values"`
	}
	var order []string
	streams := map[string]*stream{}
	for _, e := range hits {
		labels := map[string]string{}
		for k, v := range e.Labels {
			labels[k] = v
		}
		v := []any{strconv.FormatInt(e.Timestamp.UnixNano(), 10), e.Line}
		if categorize {
			if len(e.StructuredMetadata) > 0 {
				v = append(v, map[string]any{"structuredMetadata": e.StructuredMetadata})
			}
		} else {
			for k, x := range e.StructuredMetadata {
				labels[k] = x
			}
		}
		key := lokiLabelSetString(labels)
		st := streams[key]
		if st == nil {
			st = &stream{Stream: labels}
			streams[key] = st
			order = append(order, key)
		}
		st.Values = append(st.Values, v)
	}
	result := make([]*stream, 0, len(order))
	for _, k := range order {
		result = append(result, streams[k])
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{
		"resultType": "streams", "result": result, "stats": map[string]any{}}})
}

func lokiQueryTime(s string, def time.Time) (time.Time, error) {
	if s == "" {
		return def, nil
	}
	if ns, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(0, ns).UTC(), nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Unix(0, int64(f*1e9)).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
	}
	return t.UTC(), nil
}

// lokiLogQuery is a stream selector and label filters.
type lokiLogQuery struct {
	selector lokiLabels
	filters  []lokiLabelFilter
}

type lokiLabelFilter struct {
	name, value string
	not         bool
}

func (q lokiLogQuery) match(e LokiEntry) bool {
	for _, l := range q.selector {
		if e.Labels[l.Name] != l.Value {
			return false
		}
	}
	for _, f := range q.filters {
		v, ok := e.StructuredMetadata[f.name]
		if !ok {
			v = e.Labels[f.name]
		}
		if (v == f.value) == f.not {
			return false
		}
	}
	return true
}

// parseLokiLogQuery reads `{a="1", b="2"} | name="v" | other!="w"`.
func parseLokiLogQuery(in string) (lokiLogQuery, error) {
	var q lokiLogQuery
	unsupported := func(what string) error {
		return fmt.Errorf("parse error: the Loki stand-in supports only a stream selector of = matchers and | name=\"value\" label filters, not %s", what)
	}
	// The selector ends at the first } outside a string.
	end, quote := -1, byte(0)
	for i := 0; i < len(in) && end < 0; i++ {
		c := in[i]
		switch {
		case quote != 0 && c == '\\' && quote != '`':
			i++
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case c == '}':
			end = i
		}
	}
	if end < 0 {
		return q, fmt.Errorf("parse error: a log query starts with a stream selector {…}: %q", in)
	}
	sel, err := parseLokiLabels(in[:end+1])
	if err != nil {
		return q, err
	}
	if len(sel) == 0 {
		return q, errors.New("parse error: queries require at least one regexp or equality matcher that does not have an empty-compatible value")
	}
	q.selector = sel
	p := &lokiLabelParser{in: in, pos: end + 1}
	for {
		p.skipSpace()
		if p.eof() {
			return q, nil
		}
		if p.in[p.pos] != '|' || p.pos+1 < len(p.in) && (p.in[p.pos+1] == '=' || p.in[p.pos+1] == '~') {
			return q, unsupported(fmt.Sprintf("%q", p.in[p.pos:]))
		}
		p.pos++
		p.skipSpace()
		start := p.pos
		for !p.eof() && isLokiLabelChar(p.in[p.pos]) {
			p.pos++
		}
		if start == p.pos || !isLokiLabelStart(p.in[start]) {
			return q, unsupported(fmt.Sprintf("the stage %q", p.in[start:]))
		}
		f := lokiLabelFilter{name: p.in[start:p.pos]}
		p.skipSpace()
		switch {
		case strings.HasPrefix(p.in[p.pos:], "!="):
			f.not = true
			p.pos += 2
		case strings.HasPrefix(p.in[p.pos:], "=~"), strings.HasPrefix(p.in[p.pos:], "!~"):
			return q, unsupported("regex label filters")
		case strings.HasPrefix(p.in[p.pos:], "=="):
			p.pos += 2
		case strings.HasPrefix(p.in[p.pos:], "="):
			p.pos++
		default:
			return q, unsupported(fmt.Sprintf("the stage %q", p.in[start:]))
		}
		p.skipSpace()
		if p.eof() {
			return q, errors.New("parse error: unexpected end of query")
		}
		if f.value, err = p.str(); err != nil {
			return q, err
		}
		q.filters = append(q.filters, f)
	}
}
