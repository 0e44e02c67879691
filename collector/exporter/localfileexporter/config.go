package localfileexporter

import (
	"errors"
	"fmt"

	"go.opentelemetry.io/collector/component"
)

const (
	defaultMaxFileBytes = 64 << 20
	defaultMaxFiles     = 10
)

// Config is the localfile exporter's configuration.
type Config struct {
	// Directory receives logs-<start>.ndjson and traces-<start>.jsonl; it is
	// created when missing.
	Directory string `mapstructure:"directory"`
	// MaxFileBytes: a file is closed and a new one started before a line
	// would take it past this size (a single longer line gets a file of its own).
	MaxFileBytes int64 `mapstructure:"max_file_bytes"`
	// MaxFiles: how many files per signal to keep, oldest removed first; 0 keeps all.
	MaxFiles int `mapstructure:"max_files"`
}

var _ component.Config = (*Config)(nil)

// Validate checks the configuration and names the key at fault.
func (cfg *Config) Validate() error {
	var errs []error
	if cfg.Directory == "" {
		errs = append(errs, errors.New("directory: required; set where the NDJSON/OTLP JSON files go, e.g. /var/lib/opsight/out"))
	}
	if cfg.MaxFileBytes <= 0 {
		errs = append(errs, fmt.Errorf("max_file_bytes: %d must be positive (default %d)", cfg.MaxFileBytes, defaultMaxFileBytes))
	}
	if cfg.MaxFiles < 0 {
		errs = append(errs, fmt.Errorf("max_files: %d must be 0 (keep all) or positive", cfg.MaxFiles))
	}
	return errors.Join(errs...)
}
