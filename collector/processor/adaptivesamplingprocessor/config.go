package adaptivesamplingprocessor

import (
	"errors"
	"fmt"
	"time"

	"github.com/opsight/opsight/internal/conventions"
)

// Defaults; see README.md.
const (
	DefaultBaselineRatio = 0.1
	DefaultKeyAttribute  = conventions.AttrServiceName
	DefaultWindow        = time.Minute
	DefaultCooldown      = 5 * time.Minute
	DefaultMaxKeys       = 1000
	DefaultMinSamples    = 20
)

// Config is the adaptivesampling processor's configuration.
type Config struct {
	// BaselineRatio is the fraction of traces kept while a key is healthy.
	BaselineRatio float64 `mapstructure:"baseline_ratio"`
	// KeyAttribute names the span (first) or resource attribute whose value
	// is the key health is tracked for, e.g. service.name or cloud.availability_zone.
	KeyAttribute string `mapstructure:"key_attribute"`
	// Window is the sliding window over which p99 and error ratio are computed.
	Window time.Duration `mapstructure:"window"`
	// P99Threshold raises sampling to 100% for a key whose root/server span
	// p99 latency over the window exceeds it. 0 disables the latency trigger.
	P99Threshold time.Duration `mapstructure:"p99_threshold"`
	// ErrorRatioThreshold raises sampling to 100% for a key whose ratio of
	// error root/server spans over the window exceeds it. 0 disables it.
	ErrorRatioThreshold float64 `mapstructure:"error_ratio_threshold"`
	// MinSamples is the fewest root/server spans in the window before a key
	// can breach: one slow call out of three is not a p99.
	MinSamples int `mapstructure:"min_samples"`
	// Cooldown is how long a key stays at 100% after its last breach.
	Cooldown time.Duration `mapstructure:"cooldown"`
	// MaxKeys bounds the keys tracked (and the metric series); further keys
	// share the key "other".
	MaxKeys int `mapstructure:"max_keys"`

	_ struct{} // prevent unkeyed literals
}

func createDefaultConfig() *Config {
	return &Config{
		BaselineRatio: DefaultBaselineRatio,
		KeyAttribute:  DefaultKeyAttribute,
		Window:        DefaultWindow,
		MinSamples:    DefaultMinSamples,
		Cooldown:      DefaultCooldown,
		MaxKeys:       DefaultMaxKeys,
	}
}

// Validate checks every key and names the one that is wrong.
func (c *Config) Validate() error {
	var errs []error
	if !(c.BaselineRatio >= 0 && c.BaselineRatio <= 1) {
		errs = append(errs, fmt.Errorf("baseline_ratio must be within [0, 1], got %v (0.1 keeps one trace in ten)", c.BaselineRatio))
	}
	if c.KeyAttribute == "" {
		errs = append(errs, errors.New("key_attribute must be set, e.g. service.name or cloud.availability_zone"))
	}
	if c.Window <= 0 {
		errs = append(errs, fmt.Errorf("window must be > 0, got %v (e.g. 1m)", c.Window))
	}
	if c.P99Threshold < 0 {
		errs = append(errs, fmt.Errorf("p99_threshold must be >= 0 (0 disables it), got %v", c.P99Threshold))
	}
	if !(c.ErrorRatioThreshold >= 0 && c.ErrorRatioThreshold <= 1) {
		errs = append(errs, fmt.Errorf("error_ratio_threshold must be within [0, 1] (0 disables it), got %v", c.ErrorRatioThreshold))
	}
	if c.P99Threshold == 0 && c.ErrorRatioThreshold == 0 {
		errs = append(errs, errors.New("set p99_threshold or error_ratio_threshold (or both): with neither, sampling never rises above baseline_ratio"))
	}
	if c.MinSamples < 1 {
		errs = append(errs, fmt.Errorf("min_samples must be >= 1, got %d", c.MinSamples))
	}
	if c.Cooldown < 0 {
		errs = append(errs, fmt.Errorf("cooldown must be >= 0, got %v (e.g. 5m)", c.Cooldown))
	}
	if c.MaxKeys < 1 {
		errs = append(errs, fmt.Errorf("max_keys must be >= 1, got %d", c.MaxKeys))
	}
	return errors.Join(errs...)
}
