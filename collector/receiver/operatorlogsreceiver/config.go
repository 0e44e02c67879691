package operatorlogsreceiver

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"go.opentelemetry.io/collector/component"
)

// Values of the format key.
const (
	FormatAuto   = "auto"
	FormatCRI    = "cri"
	FormatDocker = "docker"
	FormatJSON   = "json"
)

// Values of start_at and long_lines.
const (
	StartAtBeginning = "beginning"
	StartAtEnd       = "end"
	LongLinesSplit   = "split"
	LongLinesTrunc   = "truncate"
)

// Config is the operatorlogs receiver's configuration. See README.md for
// every key and its default.
type Config struct {
	// Include lists filepath.Match globs of files to tail (required).
	Include []string `mapstructure:"include"`
	// Exclude lists globs removed from what Include matched.
	Exclude []string `mapstructure:"exclude"`
	// Format is auto, cri, docker or json; auto decides per file from its
	// first line.
	Format string `mapstructure:"format"`
	// StartAt applies only to files found on the very first start (no
	// checkpoint exists yet): beginning (default) or end.
	StartAt string `mapstructure:"start_at"`
	// PollInterval is how often files are listed and read.
	PollInterval time.Duration `mapstructure:"poll_interval"`
	// MaxLineSize bounds one record's Body, in bytes.
	MaxLineSize int `mapstructure:"max_line_size"`
	// LongLines says what happens to a longer line: split (every byte is
	// shipped, in pieces) or truncate (the rest is dropped).
	LongLines string `mapstructure:"long_lines"`
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
	if len(c.Include) == 0 {
		errs = append(errs, errors.New("include: at least one glob is required, e.g. /var/log/pods/*/*/*.log"))
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
	switch c.Format {
	case FormatAuto, FormatCRI, FormatDocker, FormatJSON:
	default:
		errs = append(errs, fmt.Errorf("format: %q is not one of auto, cri, docker, json", c.Format))
	}
	switch c.StartAt {
	case StartAtBeginning, StartAtEnd:
	default:
		errs = append(errs, fmt.Errorf("start_at: %q is not one of beginning, end", c.StartAt))
	}
	if c.PollInterval < minPollInterval {
		errs = append(errs, fmt.Errorf("poll_interval: %v is below the minimum %v", c.PollInterval, minPollInterval))
	}
	if c.MaxLineSize < minLineSize || c.MaxLineSize > maxLineSizeLimit {
		errs = append(errs, fmt.Errorf("max_line_size: %d is outside [%d, %d] bytes", c.MaxLineSize, minLineSize, maxLineSizeLimit))
	}
	switch c.LongLines {
	case LongLinesSplit, LongLinesTrunc:
	default:
		errs = append(errs, fmt.Errorf("long_lines: %q is not one of split, truncate", c.LongLines))
	}
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
