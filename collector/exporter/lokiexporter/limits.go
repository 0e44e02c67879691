package lokiexporter

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// LimitsConfig mirrors the keys of Loki's limits_config that decide whether
// an entry is accepted. Defaults are Loki 3.x's, from
// docs/sources/shared/configuration.md (limits_config) and
// docs/sources/operations/troubleshooting/troubleshoot-ingest.md. Set them to
// the server's values when its limits differ; a smaller value is always safe.
type LimitsConfig struct {
	// MaxLineSize is limits_config.max_line_size (256KB = 262144 bytes). A
	// longer line is split into pieces of at most this many bytes.
	MaxLineSize ByteSize `mapstructure:"max_line_size"`
	// RejectOldSamplesMaxAge is limits_config.reject_old_samples_max_age
	// (168h). An older timestamp is restamped.
	RejectOldSamplesMaxAge time.Duration `mapstructure:"reject_old_samples_max_age"`
	// CreationGracePeriod is limits_config.creation_grace_period (10m). A
	// timestamp further in the future is restamped.
	CreationGracePeriod time.Duration `mapstructure:"creation_grace_period"`
	// OutOfOrderWindow is half of ingester.max_chunk_age (2h/2 = 1h): Loki
	// refuses an entry older than the newest of its stream by more than this
	// ("too_far_behind"). Such an entry is restamped.
	OutOfOrderWindow time.Duration `mapstructure:"out_of_order_window"`
	// MaxLabelNamesPerSeries is limits_config.max_label_names_per_series (15).
	MaxLabelNamesPerSeries int `mapstructure:"max_label_names_per_series"`
	// MaxLabelNameLength is limits_config.max_label_name_length (1024 bytes).
	MaxLabelNameLength int `mapstructure:"max_label_name_length"`
	// MaxLabelValueLength is limits_config.max_label_value_length (2048
	// bytes). A longer value is truncated at a rune boundary.
	MaxLabelValueLength int `mapstructure:"max_label_value_length"`
	// MaxStructuredMetadataSize is limits_config.max_structured_metadata_size
	// (64KB = 65536 bytes: names plus values of one entry).
	MaxStructuredMetadataSize ByteSize `mapstructure:"max_structured_metadata_size"`
	// MaxStructuredMetadataEntriesCount is
	// limits_config.max_structured_metadata_entries_count (128).
	MaxStructuredMetadataEntriesCount int `mapstructure:"max_structured_metadata_entries_count"`
}

// Loki 3.x defaults (see LimitsConfig).
func defaultLimits() LimitsConfig {
	return LimitsConfig{
		MaxLineSize:                       256 * 1024,
		RejectOldSamplesMaxAge:            168 * time.Hour,
		CreationGracePeriod:               10 * time.Minute,
		OutOfOrderWindow:                  time.Hour,
		MaxLabelNamesPerSeries:            15,
		MaxLabelNameLength:                1024,
		MaxLabelValueLength:               2048,
		MaxStructuredMetadataSize:         64 * 1024,
		MaxStructuredMetadataEntriesCount: 128,
	}
}

// minLineSize keeps a split piece able to hold any rune (utf8.UTFMax bytes).
const minLineSize = utf8.UTFMax

// windowMargin is taken off out_of_order_window: Loki measures from the
// newest entry it holds, which after a restart of this exporter (persistent
// queue) or through clock rounding may be newer than what we remember.
const windowMargin = 5 * time.Minute

func (l LimitsConfig) validate() []error {
	var errs []error
	if l.MaxLineSize < minLineSize {
		errs = append(errs, fmt.Errorf("limits.max_line_size: %d is too small; set Loki's limits_config.max_line_size in bytes (default 262144 = 256KB), at least %d", l.MaxLineSize, minLineSize))
	}
	if l.RejectOldSamplesMaxAge <= 2*clockMargin {
		errs = append(errs, fmt.Errorf("limits.reject_old_samples_max_age: %v must be more than %v; set Loki's limits_config.reject_old_samples_max_age (default 168h)", l.RejectOldSamplesMaxAge, 2*clockMargin))
	}
	if l.CreationGracePeriod < clockMargin {
		errs = append(errs, fmt.Errorf("limits.creation_grace_period: %v must be at least %v (kept as a margin for clock differences); set Loki's limits_config.creation_grace_period (default 10m)", l.CreationGracePeriod, clockMargin))
	}
	if l.OutOfOrderWindow <= windowMargin {
		errs = append(errs, fmt.Errorf("limits.out_of_order_window: %v must be more than %v; set half of Loki's ingester.max_chunk_age (default 1h)", l.OutOfOrderWindow, windowMargin))
	}
	if l.CreationGracePeriod >= l.OutOfOrderWindow-windowMargin {
		errs = append(errs, fmt.Errorf("limits.creation_grace_period: %v must be less than limits.out_of_order_window minus %v (%v): a restamp to now must stay inside the window", l.CreationGracePeriod, windowMargin, l.OutOfOrderWindow-windowMargin))
	}
	if l.MaxLabelNamesPerSeries < 1 {
		errs = append(errs, fmt.Errorf("limits.max_label_names_per_series: %d must be at least 1; set Loki's limits_config.max_label_names_per_series (default 15)", l.MaxLabelNamesPerSeries))
	}
	if l.MaxLabelNameLength < len("service_name") {
		errs = append(errs, fmt.Errorf("limits.max_label_name_length: %d cannot hold the built-in label names; set Loki's limits_config.max_label_name_length (default 1024)", l.MaxLabelNameLength))
	}
	if l.MaxLabelValueLength < minLineSize {
		errs = append(errs, fmt.Errorf("limits.max_label_value_length: %d is too small; set Loki's limits_config.max_label_value_length (default 2048), at least %d", l.MaxLabelValueLength, minLineSize))
	}
	if l.MaxStructuredMetadataSize < 64 {
		errs = append(errs, fmt.Errorf("limits.max_structured_metadata_size: %d is too small for trace_id and span_id; set Loki's limits_config.max_structured_metadata_size in bytes (default 65536 = 64KB), at least 64", l.MaxStructuredMetadataSize))
	}
	if l.MaxStructuredMetadataEntriesCount < 1 {
		errs = append(errs, fmt.Errorf("limits.max_structured_metadata_entries_count: %d must be at least 1; set Loki's limits_config.max_structured_metadata_entries_count (default 128)", l.MaxStructuredMetadataEntriesCount))
	}
	return errs
}

// DeadLetterConfig is where entries go that Loki refused and that cannot be
// made acceptable: NDJSON files, one entry per line (see README).
type DeadLetterConfig struct {
	// Directory holds the files; empty disables dead-lettering (refused
	// entries are then dropped and counted in opsight_export_dropped_total).
	Directory string `mapstructure:"directory"`
	// MaxBytes bounds all dead-letter files of this exporter together; when
	// full, further refused entries are dropped (loudly).
	MaxBytes ByteSize `mapstructure:"max_bytes"`
}

const defaultDeadLetterMaxBytes = 256 << 20

func (d DeadLetterConfig) validate() []error {
	var errs []error
	if d.Directory != "" && !filepath.IsAbs(d.Directory) {
		errs = append(errs, fmt.Errorf("dead_letter.directory: %q is not an absolute path; use one on the state volume, e.g. /var/lib/opsight/dead-letter", d.Directory))
	}
	if d.MaxBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("dead_letter.max_bytes: %d is less than 1 MiB; one refused 256KB line needs room (default 256MiB)", d.MaxBytes))
	}
	return errs
}

var errNoDeadLetter = errors.New("dead_letter.directory is not set")

// ByteSize is a number of bytes, written as an integer or, like Loki's
// limits_config, with a unit: 256KB, 64KiB, 1MB, 2GiB (KB = KiB = 1024, as
// Loki reads them).
type ByteSize int64

var byteUnits = map[string]int64{"": 1, "b": 1, "kb": 1 << 10, "kib": 1 << 10, "mb": 1 << 20, "mib": 1 << 20, "gb": 1 << 30, "gib": 1 << 30}

// UnmarshalText reads "262144", "256KB", "256 KiB".
func (b *ByteSize) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	unit, ok := byteUnits[strings.ToLower(strings.TrimSpace(s[i:]))]
	if err != nil || !ok || n > math.MaxInt64/unit {
		return fmt.Errorf("%q is not a byte size; write bytes (262144) or a number with KB, MB, GB (256KB; KB = 1024 bytes as in Loki)", s)
	}
	*b = ByteSize(n * unit)
	return nil
}

// truncateRunes returns the longest prefix of s (valid UTF-8) of at most n
// bytes that ends on a rune boundary.
func truncateRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	i := n
	// Step back over continuation bytes to the start of the rune that does
	// not fit (at most UTFMax-1 steps).
	for i > 0 && i > n-utf8.UTFMax && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// splitLine cuts s (valid UTF-8) into pieces of at most max bytes, each
// ending on a rune boundary; the pieces are substrings (no copy) and their
// concatenation is s. max must be >= utf8.UTFMax.
func splitLine(s string, max int) []string {
	if len(s) <= max {
		return []string{s}
	}
	pieces := make([]string, 0, len(s)/max+1)
	for len(s) > max {
		p := truncateRunes(s, max)
		if p == "" { // cannot happen with max >= UTFMax on valid UTF-8; never loop
			p = s[:max]
		}
		pieces = append(pieces, p)
		s = s[len(p):]
	}
	if s != "" {
		pieces = append(pieces, s)
	}
	return pieces
}
