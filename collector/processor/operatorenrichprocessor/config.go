package operatorenrichprocessor

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/opsight/opsight/internal/configenum"
	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/riskpatterns"
)

// Config of the operatorenrich processor. Empty strings mean "from the
// environment" (see README.md), so the chart's downward-API variables work
// without a config file.
type Config struct {
	// Revision stamped as service.version; else RevisionFile, else
	// $OPSIGHT_REVISION, else the tag of $OPSIGHT_POD_IMAGE.
	Revision     string `mapstructure:"revision"`
	RevisionFile string `mapstructure:"revision_file"`
	// ServiceName; else $OPSIGHT_SERVICE_NAME, else the container name, else "operator".
	ServiceName string `mapstructure:"service_name"`

	Cluster   string `mapstructure:"cluster"`   // else $OPSIGHT_CLUSTER
	Namespace string `mapstructure:"namespace"` // else $POD_NAMESPACE
	Pod       string `mapstructure:"pod"`       // else $POD_NAME
	Container string `mapstructure:"container"` // else $CONTAINER_NAME
	Node      string `mapstructure:"node"`      // else $NODE_NAME
	Zone      string `mapstructure:"zone"`      // else $OPSIGHT_ZONE
	NodePool  string `mapstructure:"node_pool"` // else $OPSIGHT_NODE_POOL

	Risk        RiskConfig        `mapstructure:"risk"`
	Correlation CorrelationConfig `mapstructure:"correlation"`

	_ struct{}
}

// RiskConfig selects the risk patterns matched in every line.
type RiskConfig struct {
	// DisableDefaults drops riskpatterns.Default; only Patterns are matched.
	DisableDefaults bool            `mapstructure:"disable_defaults"`
	Patterns        []PatternConfig `mapstructure:"patterns"`
}

// PatternConfig is one user pattern: a line matches when it contains any
// needle, ASCII case-insensitively.
type PatternConfig struct {
	ID       string   `mapstructure:"id"`
	Severity Severity `mapstructure:"severity"` // critical, warning (default), info
	Needles  []string `mapstructure:"needles"`
}

// Severity is the value of a user pattern's severity key: critical, warning
// or info; empty means warning.
type Severity string

var severities = []Severity{"", Severity(riskpatterns.Critical), Severity(riskpatterns.Warning), Severity(riskpatterns.Info)}

// UnmarshalText rejects an unknown severity while the configuration loads.
func (s *Severity) UnmarshalText(text []byte) error {
	if len(text) == 0 {
		*s = ""
		return nil
	}
	return configenum.Unmarshal(s, text, severities[1:]...)
}

// CorrelationConfig is the late join of log lines to spans.
type CorrelationConfig struct {
	LogKey        string        `mapstructure:"log_key"`        // log field with the correlation key
	SpanAttribute string        `mapstructure:"span_attribute"` // span attribute with the same key
	Wait          time.Duration `mapstructure:"wait"`           // longest hold of a batch; 0 = never hold
	ActiveWindow  time.Duration `mapstructure:"active_window"`  // hold only if a keyed span came this recently
	IndexSize     int           `mapstructure:"index_size"`     // span index entries (ring)
	IndexTTL      time.Duration `mapstructure:"index_ttl"`      // span index entry lifetime
	MaxHeld       int           `mapstructure:"max_held"`       // lines held at once over all batches
}

const (
	defaultWait         = 2 * time.Second
	defaultActiveWindow = time.Minute
	defaultIndexSize    = 100_000
	defaultIndexTTL     = 5 * time.Minute
	defaultMaxHeld      = 10_000

	maxWait      = 30 * time.Second // the receiver's checkpoint waits this long at most
	maxIndexSize = 10_000_000
)

func createDefaultConfig() *Config {
	return &Config{
		Correlation: CorrelationConfig{
			LogKey:        conventions.DefaultLogCorrelationKey,
			SpanAttribute: conventions.DefaultSpanCorrelationKey,
			Wait:          defaultWait,
			ActiveWindow:  defaultActiveWindow,
			IndexSize:     defaultIndexSize,
			IndexTTL:      defaultIndexTTL,
			MaxHeld:       defaultMaxHeld,
		},
	}
}

// Validate names the offending key and what to do.
func (c *Config) Validate() error {
	cc := c.Correlation
	switch {
	case cc.LogKey == "":
		return errors.New("correlation.log_key: must not be empty (default reconcileID)")
	case cc.SpanAttribute == "":
		return errors.New("correlation.span_attribute: must not be empty (default reconcile.id)")
	case cc.Wait < 0 || cc.Wait > maxWait:
		return fmt.Errorf("correlation.wait: %v is out of range: use 0 (never hold) up to %v", cc.Wait, maxWait)
	case cc.ActiveWindow <= 0:
		return fmt.Errorf("correlation.active_window: %v must be positive (default %v)", cc.ActiveWindow, defaultActiveWindow)
	case cc.IndexSize <= 0 || cc.IndexSize > maxIndexSize:
		return fmt.Errorf("correlation.index_size: %d is out of range: use 1 to %d (default %d)", cc.IndexSize, maxIndexSize, defaultIndexSize)
	case cc.IndexTTL <= 0:
		return fmt.Errorf("correlation.index_ttl: %v must be positive (default %v)", cc.IndexTTL, defaultIndexTTL)
	case cc.MaxHeld < 0:
		return fmt.Errorf("correlation.max_held: %d must be 0 (never hold) or more (default %d)", cc.MaxHeld, defaultMaxHeld)
	}
	if c.Risk.DisableDefaults && len(c.Risk.Patterns) == 0 {
		return errors.New("risk.patterns: risk.disable_defaults is true but no patterns are given: add patterns or keep the defaults")
	}
	seen := map[string]bool{}
	if !c.Risk.DisableDefaults {
		for _, p := range riskpatterns.Default {
			seen[p.ID] = true
		}
	}
	for i, p := range c.Risk.Patterns {
		key := fmt.Sprintf("risk.patterns[%d]", i)
		if !riskpatterns.IsLowerSnake(p.ID) {
			return fmt.Errorf("%s.id: %q must be lower_snake ([a-z][a-z0-9_]*, e.g. my_pattern)", key, p.ID)
		}
		if seen[p.ID] {
			return fmt.Errorf("%s.id: %q is already used (by a default pattern or an earlier one): choose another id, or set risk.disable_defaults", key, p.ID)
		}
		seen[p.ID] = true
		if !slices.Contains(severities, p.Severity) {
			return fmt.Errorf("%s.severity: %q must be critical, warning or info", key, p.Severity)
		}
		if len(p.Needles) == 0 {
			return fmt.Errorf("%s.needles: pattern %q needs at least one needle", key, p.ID)
		}
		for k, n := range p.Needles {
			if n == "" {
				return fmt.Errorf("%s.needles[%d]: empty needle (it would match every line)", key, k)
			}
		}
	}
	return nil
}

// patterns returns the effective pattern set, defaults first (catalogue order).
func (c *Config) patterns() []riskpatterns.Pattern {
	var ps []riskpatterns.Pattern
	if !c.Risk.DisableDefaults {
		ps = append(ps, riskpatterns.Default...)
	}
	for _, p := range c.Risk.Patterns {
		sev := riskpatterns.Severity(p.Severity)
		if sev == "" {
			sev = riskpatterns.Warning
		}
		ps = append(ps, riskpatterns.Pattern{ID: p.ID, Severity: sev, Needles: p.Needles, Summary: "user pattern"})
	}
	return ps
}
