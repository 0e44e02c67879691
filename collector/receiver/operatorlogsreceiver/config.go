package operatorlogsreceiver

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	"go.opentelemetry.io/collector/component"

	"github.com/opsight/opsight/internal/configenum"
)

// Source is the value of the source key: where the log lines come from.
type Source string

// Format is the value of the format key: how a file's lines are framed.
type Format string

// StartAt is the value of start_at: where a file found on the very first
// start is read from.
type StartAt string

// LongLines is the value of long_lines: what happens to a line longer than
// max_line_size.
type LongLines string

// The values of each key. They are untyped constants so the reader's resolved
// per-file format (a string: auto resolves to cri, docker or json) compares
// with them too.
const (
	SourceFile = "file"
	SourceAPI  = "api"

	FormatAuto   = "auto"
	FormatCRI    = "cri"
	FormatDocker = "docker"
	FormatJSON   = "json"

	StartAtBeginning = "beginning"
	StartAtEnd       = "end"

	LongLinesSplit = "split"
	LongLinesTrunc = "truncate"
)

var (
	sources   = []Source{SourceFile, SourceAPI}
	formats   = []Format{FormatAuto, FormatCRI, FormatDocker, FormatJSON}
	startAts  = []StartAt{StartAtBeginning, StartAtEnd}
	longLines = []LongLines{LongLinesSplit, LongLinesTrunc}
)

// UnmarshalText rejects a value other than file or api while loading.
func (s *Source) UnmarshalText(text []byte) error { return configenum.Unmarshal(s, text, sources...) }

// UnmarshalText rejects an unknown format while loading.
func (f *Format) UnmarshalText(text []byte) error { return configenum.Unmarshal(f, text, formats...) }

// UnmarshalText rejects a value other than beginning or end while loading.
func (s *StartAt) UnmarshalText(text []byte) error { return configenum.Unmarshal(s, text, startAts...) }

// UnmarshalText rejects a value other than split or truncate while loading.
func (l *LongLines) UnmarshalText(text []byte) error {
	return configenum.Unmarshal(l, text, longLines...)
}

// Config is the operatorlogs receiver's configuration. See README.md for
// every key and its default.
type Config struct {
	// Source is file (tail Include) or api (stream the container's log
	// through the Kubernetes API, see APIConfig).
	Source Source `mapstructure:"source"`
	// API configures source api.
	API APIConfig `mapstructure:"api"`
	// Include lists filepath.Match globs of files to tail (required with
	// source file).
	Include []string `mapstructure:"include"`
	// Exclude lists globs removed from what Include matched.
	Exclude []string `mapstructure:"exclude"`
	// Format is auto, cri, docker or json; auto decides per file from its
	// first line.
	Format Format `mapstructure:"format"`
	// StartAt applies only to files found on the very first start (no
	// checkpoint exists yet): beginning (default) or end.
	StartAt StartAt `mapstructure:"start_at"`
	// PollInterval is how often files are listed and read.
	PollInterval time.Duration `mapstructure:"poll_interval"`
	// MaxLineSize bounds one record's Body, in bytes.
	MaxLineSize int `mapstructure:"max_line_size"`
	// LongLines says what happens to a longer line: split (every byte is
	// shipped, in pieces) or truncate (the rest is dropped).
	LongLines LongLines `mapstructure:"long_lines"`
	// ForceFlushPeriod is how long an unterminated last line or a logical
	// line whose end (CRI F, docker's last piece) has not come waits for
	// more bytes before it is shipped as it is; 0 waits forever.
	ForceFlushPeriod time.Duration `mapstructure:"force_flush_period"`
	// FingerprintSize is how many leading bytes identify a file.
	FingerprintSize int `mapstructure:"fingerprint_size"`
	// MaxBatchLines and MaxBatchBytes bound one ConsumeLogs call.
	MaxBatchLines int `mapstructure:"max_batch_lines"`
	MaxBatchBytes int `mapstructure:"max_batch_bytes"`
	// Storage names a storage extension (e.g. file_storage) keeping
	// checkpoints across restarts; without it they live in memory.
	Storage *component.ID `mapstructure:"storage"`
	// IncludeFilePath sets the resource attribute log.file.path.
	IncludeFilePath bool `mapstructure:"include_file_path"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// APIConfig names the container whose log is streamed from
// GET /api/v1/namespaces/{namespace}/pods/{pod}/log and how to authenticate.
// The defaults are what every pod has: the in-cluster service account.
type APIConfig struct {
	// Endpoint is the API server's URL; empty: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT.
	Endpoint  string `mapstructure:"endpoint"`
	Namespace string `mapstructure:"namespace"`
	Pod       string `mapstructure:"pod"`
	Container string `mapstructure:"container"`
	// TokenFile is read on every request: projected tokens are rotated.
	TokenFile string `mapstructure:"token_file"`
	// CAFile verifies the API server's certificate.
	CAFile string `mapstructure:"ca_file"`
}

// In-cluster defaults of APIConfig.
const (
	DefaultTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	DefaultCAFile    = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
)

// Limits that keep a bad value from exhausting memory or spinning the CPU.
const (
	minLineSize        = 1 << 10
	maxLineSizeLimit   = 16 << 20
	minFingerprintSize = 16
	maxFingerprintSize = 64 << 10
	minPollInterval    = 10 * time.Millisecond
)

// Validate checks every key and names the one that is wrong.
func (c *Config) Validate() error {
	var errs []error
	switch c.Source {
	case SourceFile:
		if len(c.Include) == 0 {
			errs = append(errs, errors.New("include: at least one glob is required, e.g. /var/log/pods/*/*/*.log"))
		}
	case SourceAPI:
		errs = append(errs, c.API.validate()...)
	default:
		errs = append(errs, configenum.Check("source", c.Source, sources...))
	}
	for key, globs := range map[string][]string{"include": c.Include, "exclude": c.Exclude} {
		for _, g := range globs {
			if g == "" {
				errs = append(errs, fmt.Errorf("%s: empty glob; remove it or give a path pattern", key))
			} else if _, err := filepath.Match(g, ""); err != nil {
				errs = append(errs, fmt.Errorf("%s: bad glob %q (%v); use filepath.Match syntax: * ? [..]", key, g, err))
			}
		}
	}
	errs = append(errs, configenum.Check("format", c.Format, formats...), configenum.Check("start_at", c.StartAt, startAts...))
	if c.PollInterval < minPollInterval {
		errs = append(errs, fmt.Errorf("poll_interval: %v is below the minimum %v", c.PollInterval, minPollInterval))
	}
	if c.MaxLineSize < minLineSize || c.MaxLineSize > maxLineSizeLimit {
		errs = append(errs, fmt.Errorf("max_line_size: %d is outside [%d, %d] bytes", c.MaxLineSize, minLineSize, maxLineSizeLimit))
	}
	if c.ForceFlushPeriod < 0 {
		errs = append(errs, fmt.Errorf("force_flush_period: %v is negative; use 0 to never ship a line before its end", c.ForceFlushPeriod))
	}
	errs = append(errs, configenum.Check("long_lines", c.LongLines, longLines...))
	if c.FingerprintSize < minFingerprintSize || c.FingerprintSize > maxFingerprintSize {
		errs = append(errs, fmt.Errorf("fingerprint_size: %d is outside [%d, %d] bytes", c.FingerprintSize, minFingerprintSize, maxFingerprintSize))
	}
	if c.MaxBatchLines < 1 {
		errs = append(errs, fmt.Errorf("max_batch_lines: %d must be at least 1", c.MaxBatchLines))
	}
	if c.MaxBatchBytes < 1 {
		errs = append(errs, fmt.Errorf("max_batch_bytes: %d must be at least 1", c.MaxBatchBytes))
	}
	return errors.Join(errs...)
}

func (a *APIConfig) validate() []error {
	var errs []error
	for _, k := range []struct{ key, v string }{{"api.namespace", a.Namespace}, {"api.pod", a.Pod}, {"api.container", a.Container}} {
		if k.v == "" {
			errs = append(errs, fmt.Errorf("%s: required with source api (the pod's own; pass it through the downward API)", k.key))
		}
	}
	if a.Endpoint != "" {
		if u, err := url.Parse(a.Endpoint); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("api.endpoint: %q is not an http(s) URL such as https://kubernetes.default.svc", a.Endpoint))
		}
	}
	if a.TokenFile == "" {
		errs = append(errs, fmt.Errorf("api.token_file: empty; the in-cluster default is %s", DefaultTokenFile))
	}
	return errs
}
