package redmetricsexporter

import (
	"errors"
	"fmt"
)

// DefaultDimensionsCacheSize bounds the distinct label sets (series) the
// exporter creates; see README.md for what happens beyond it.
const DefaultDimensionsCacheSize = 10000

// Config is the redmetrics exporter's configuration.
type Config struct {
	// DimensionsCacheSize is the most distinct label sets kept. Spans that
	// would create a new set beyond it are counted under span_name="other".
	DimensionsCacheSize int `mapstructure:"dimensions_cache_size"`
	// ExcludeSpanKinds lists span kinds (SPAN_KIND_INTERNAL, …) not counted.
	ExcludeSpanKinds []string `mapstructure:"exclude_span_kinds"`

	_ struct{} // prevent unkeyed literals
}

// Validate checks every key and names the one that is wrong.
func (c *Config) Validate() error {
	var errs []error
	if c.DimensionsCacheSize <= 0 {
		errs = append(errs, fmt.Errorf("dimensions_cache_size must be > 0, got %d: set it to the most series you accept (default %d)", c.DimensionsCacheSize, DefaultDimensionsCacheSize))
	}
	for _, k := range c.ExcludeSpanKinds {
		if _, ok := spanKindByName[k]; !ok {
			errs = append(errs, fmt.Errorf("exclude_span_kinds: unknown span kind %q: use one of SPAN_KIND_UNSPECIFIED, SPAN_KIND_INTERNAL, SPAN_KIND_SERVER, SPAN_KIND_CLIENT, SPAN_KIND_PRODUCER, SPAN_KIND_CONSUMER", k))
		}
	}
	return errors.Join(errs...)
}
