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
	ExcludeSpanKinds []SpanKindName `mapstructure:"exclude_span_kinds"`

	_ struct{} // prevent unkeyed literals
}

// SpanKindName is an OTLP span kind as the span-derived metrics' span_kind
// label spells it: SPAN_KIND_INTERNAL, SPAN_KIND_SERVER, …
type SpanKindName string

const spanKindsHint = "use one of SPAN_KIND_UNSPECIFIED, SPAN_KIND_INTERNAL, SPAN_KIND_SERVER, SPAN_KIND_CLIENT, SPAN_KIND_PRODUCER, SPAN_KIND_CONSUMER"

// UnmarshalText rejects an unknown span kind while the configuration loads.
func (k *SpanKindName) UnmarshalText(text []byte) error {
	if _, ok := spanKindByName[string(text)]; !ok {
		return fmt.Errorf("unknown span kind %q: %s", text, spanKindsHint)
	}
	*k = SpanKindName(text)
	return nil
}

// Validate checks every key and names the one that is wrong.
func (c *Config) Validate() error {
	var errs []error
	if c.DimensionsCacheSize <= 0 {
		errs = append(errs, fmt.Errorf("dimensions_cache_size must be > 0, got %d: set it to the most series you accept (default %d)", c.DimensionsCacheSize, DefaultDimensionsCacheSize))
	}
	for _, k := range c.ExcludeSpanKinds {
		if _, ok := spanKindByName[string(k)]; !ok {
			errs = append(errs, fmt.Errorf("exclude_span_kinds: unknown span kind %q: %s", k, spanKindsHint))
		}
	}
	return errors.Join(errs...)
}
