package lokiexporter

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configcompression"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/exporter/exporterhelper"

	"github.com/opsight/opsight/internal/configenum"
	"github.com/opsight/opsight/internal/conventions"
)

// Encoding is the value of the encoding key: the push body's format.
type Encoding string

// Encodings of the push body.
const (
	EncodingProtobuf Encoding = "protobuf" // snappy-compressed push.PushRequest (what Promtail/Alloy send)
	EncodingJSON     Encoding = "json"     // the documented JSON body, optionally gzip-compressed
)

var encodings = []Encoding{EncodingProtobuf, EncodingJSON}

// UnmarshalText rejects an unknown encoding while the configuration loads.
func (e *Encoding) UnmarshalText(text []byte) error {
	return configenum.Unmarshal(e, text, encodings...)
}

// Config is the loki exporter's configuration.
type Config struct {
	// ClientConfig carries endpoint (the full push URL), headers, tls, timeout,
	// compression (json only) and auth (an authenticator extension).
	ClientConfig confighttp.ClientConfig                                  `mapstructure:",squash"`
	QueueConfig  configoptional.Optional[exporterhelper.QueueBatchConfig] `mapstructure:"sending_queue"`
	RetryConfig  configretry.BackOffConfig                                `mapstructure:"retry_on_failure"`

	// Encoding is protobuf (default) or json.
	Encoding Encoding `mapstructure:"encoding"`
	// TenantID is sent as X-Scope-OrgID (multi-tenant Loki); empty sends none.
	TenantID string `mapstructure:"tenant_id"`
	// BasicAuth and BearerToken are shortcuts for the common cases that do not
	// need an authenticator extension. At most one auth mechanism may be set.
	BasicAuth   configoptional.Optional[BasicAuthConfig] `mapstructure:"basic_auth"`
	BearerToken configopaque.String                      `mapstructure:"bearer_token"`

	Labels LabelsConfig `mapstructure:"labels"`

	// Limits mirror the Loki server's limits_config so nothing Loki would
	// refuse is sent as it is; keep them equal to (or below) the server's.
	Limits LimitsConfig `mapstructure:"limits"`
	// DeadLetter keeps what Loki refused and the exporter could not fix.
	DeadLetter DeadLetterConfig `mapstructure:"dead_letter"`
}

// BasicAuthConfig holds the credentials of the basic_auth shortcut.
type BasicAuthConfig struct {
	Username string              `mapstructure:"username"`
	Password configopaque.String `mapstructure:"password"`
}

// LabelsConfig adds stream labels beyond the conventions' fixed set.
type LabelsConfig struct {
	// Extra maps a Loki label name to the resource attribute it is read from.
	Extra map[string]string `mapstructure:"extra"`
}

var _ component.Config = (*Config)(nil)

var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// forbiddenSourceAttrs are the attributes whose values are per-reconcile or
// per-request ids: as labels they would create one stream per value.
var forbiddenSourceAttrs = append(slices.Clone(conventions.ForbiddenLokiLabels), conventions.AttrReconcileIDSpan)

// Validate checks the configuration and names the key at fault.
func (cfg *Config) Validate() error {
	var errs []error
	if cfg.ClientConfig.Endpoint == "" {
		errs = append(errs, errors.New("endpoint: required; set the Loki push URL, e.g. http://loki:3100/loki/api/v1/push"))
	} else if u, err := url.Parse(cfg.ClientConfig.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("endpoint: %q is not an http(s) URL; set the Loki push URL, e.g. http://loki:3100/loki/api/v1/push", cfg.ClientConfig.Endpoint))
	}
	switch cfg.Encoding {
	case EncodingProtobuf:
		if cfg.ClientConfig.Compression.IsCompressed() {
			errs = append(errs, fmt.Errorf("compression: %q applies to encoding: json only; protobuf bodies are already snappy-compressed, remove compression", cfg.ClientConfig.Compression))
		}
	case EncodingJSON:
		if c := cfg.ClientConfig.Compression; c.IsCompressed() && c != configcompression.TypeGzip {
			errs = append(errs, fmt.Errorf("compression: %q is not supported by Loki's JSON push; use gzip or none", c))
		}
	default:
		errs = append(errs, configenum.Check("encoding", cfg.Encoding, encodings...))
	}

	nAuth := 0
	if cfg.BasicAuth.HasValue() {
		nAuth++
		if cfg.BasicAuth.Get().Username == "" {
			errs = append(errs, errors.New("basic_auth.username: required when basic_auth is set"))
		}
	}
	if cfg.BearerToken != "" {
		nAuth++
	}
	if cfg.ClientConfig.Auth.HasValue() {
		nAuth++
	}
	if nAuth > 1 {
		errs = append(errs, errors.New("basic_auth, bearer_token, auth: set at most one way to authenticate"))
	}
	if cfg.TenantID != "" {
		for k := range cfg.ClientConfig.Headers.Iter {
			if strings.EqualFold(k, headerTenant) {
				errs = append(errs, fmt.Errorf("tenant_id: also set as headers.%s; keep only one", k))
			}
		}
	}

	errs = append(errs, cfg.Labels.validate(cfg.Limits)...)
	errs = append(errs, cfg.Limits.validate()...)
	errs = append(errs, cfg.DeadLetter.validate()...)
	return errors.Join(errs...)
}

func (l LabelsConfig) validate(lim LimitsConfig) []error {
	var errs []error
	keys := make([]string, 0, len(l.Extra))
	for k := range l.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		attr := l.Extra[k]
		switch {
		case slices.Contains(conventions.ForbiddenLokiLabels, k):
			errs = append(errs, fmt.Errorf("labels.extra.%s: %q may never be a stream label (one stream per value: unbounded cardinality); it is already sent as structured metadata", k, k))
		case !labelNameRE.MatchString(k):
			errs = append(errs, fmt.Errorf("labels.extra.%s: %q is not a valid Loki label name (want [a-zA-Z_][a-zA-Z0-9_]*)", k, k))
		case strings.HasPrefix(k, "__"):
			errs = append(errs, fmt.Errorf("labels.extra.%s: names starting with __ are reserved by Loki", k))
		case isBuiltinLabel(k):
			errs = append(errs, fmt.Errorf("labels.extra.%s: %q is already a stream label set per the conventions; remove it", k, k))
		case attr == "":
			errs = append(errs, fmt.Errorf("labels.extra.%s: the resource attribute to read is empty; name one, e.g. k8s.deployment.name", k))
		case lim.MaxLabelNameLength > 0 && len(k) > lim.MaxLabelNameLength:
			errs = append(errs, fmt.Errorf("labels.extra.%s: the name is %d bytes, more than limits.max_label_name_length (%d); use a shorter name", k, len(k), lim.MaxLabelNameLength))
		case slices.Contains(forbiddenSourceAttrs, attr):
			errs = append(errs, fmt.Errorf("labels.extra.%s: mapped from %q, a per-request id (unbounded cardinality); it may never become a stream label", k, attr))
		}
	}
	if maxLabels := lim.MaxLabelNamesPerSeries; maxLabels > 0 {
		if n := len(conventions.LokiLabels) + len(l.Extra); n > maxLabels {
			errs = append(errs, fmt.Errorf("labels.extra: %d built-in + %d extra = %d stream labels, more than Loki's %d (limits.max_label_names_per_series); remove %d", len(conventions.LokiLabels), len(l.Extra), n, maxLabels, n-maxLabels))
		}
	}
	return errs
}

func isBuiltinLabel(name string) bool {
	for _, l := range conventions.LokiLabels {
		if l.Label == name {
			return true
		}
	}
	return false
}
