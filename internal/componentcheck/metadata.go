// Package componentcheck holds what the OpenTelemetry Collector's mdatagen
// generates for every component, written once for opsight's seven: the one
// schema of metadata.yaml (parsed strictly), the checks that metadata.yaml,
// the factory and the README's status table agree, the lifecycle test
// (create, start, shut down; shut down without start) and a whole-struct
// config comparison for config tests.
//
// mdatagen itself is not used: the newest version the module proxy serves
// (v0.150.0) generates code for an older collector API than the v0.165.0 /
// pdata v1.71.0 this repository builds against.
package componentcheck

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"

	"go.opentelemetry.io/collector/component"
	"go.yaml.in/yaml/v3"
)

// Metadata is the schema of every component's metadata.yaml, a subset of
// mdatagen's: unknown keys are rejected, so a typo cannot pass unnoticed.
type Metadata struct {
	// Type is the component type, the key users write in the collector YAML.
	Type   string `yaml:"type"`
	Status Status `yaml:"status"`
	Tests  Tests  `yaml:"tests"`
}

// Status is what the README's status table shows.
type Status struct {
	// Class is receiver, processor, exporter or extension.
	Class string `yaml:"class"`
	// Stability maps a level (development, alpha, beta, stable, deprecated,
	// unmaintained) to the signals at that level (traces, metrics, logs; an
	// extension lists [extension]).
	Stability map[string][]string `yaml:"stability"`
	// Distributions that ship the component.
	Distributions []string `yaml:"distributions"`
	// Codeowners who answer for the component.
	Codeowners Codeowners `yaml:"codeowners"`
}

// Codeowners lists the active owners.
type Codeowners struct {
	Active []string `yaml:"active"`
}

// Tests configures the lifecycle test.
type Tests struct {
	// Config is merged over the factory's defaults before the lifecycle
	// test creates the component (e.g. an endpoint on port 0). The string
	// "${tempdir}" inside a value is replaced by a fresh temporary directory.
	Config map[string]any `yaml:"config"`
}

// Levels are the stability levels in the order the README lists them.
var Levels = []string{"development", "alpha", "beta", "stable", "deprecated", "unmaintained"}

var (
	classes = []string{"receiver", "processor", "exporter", "extension"}
	signals = []string{"traces", "metrics", "logs"}
)

// ReadMetadata parses path strictly: unknown keys, a second document or a
// missing required key are errors naming the file.
func ReadMetadata(path string) (Metadata, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Metadata{}, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var m Metadata
	if err := dec.Decode(&m); err != nil {
		return Metadata{}, fmt.Errorf("%s: %w", path, err)
	}
	if err := m.validate(); err != nil {
		return Metadata{}, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

func (m Metadata) validate() error {
	var errs []string
	if m.Type == "" {
		errs = append(errs, "type: required")
	} else if _, err := component.NewType(m.Type); err != nil {
		errs = append(errs, fmt.Sprintf("type: %v", err))
	}
	if !slices.Contains(classes, m.Status.Class) {
		errs = append(errs, fmt.Sprintf("status.class: %q is not one of %s", m.Status.Class, strings.Join(classes, ", ")))
	}
	if len(m.Status.Stability) == 0 {
		errs = append(errs, "status.stability: required, e.g. alpha: [logs]")
	}
	seen := map[string]string{}
	for level, sigs := range m.Status.Stability {
		if !slices.Contains(Levels, level) {
			errs = append(errs, fmt.Sprintf("status.stability.%s: not a level; use one of %s", level, strings.Join(Levels, ", ")))
		}
		if len(sigs) == 0 {
			errs = append(errs, fmt.Sprintf("status.stability.%s: lists no signal", level))
		}
		for _, s := range sigs {
			valid := slices.Contains(signals, s)
			if m.Status.Class == "extension" {
				valid = s == "extension"
			}
			if !valid {
				errs = append(errs, fmt.Sprintf("status.stability.%s: %q is not a signal of a %s", level, s, m.Status.Class))
			}
			if other, dup := seen[s]; dup {
				errs = append(errs, fmt.Sprintf("status.stability: %s is listed under both %s and %s", s, other, level))
			}
			seen[s] = level
		}
	}
	if len(m.Status.Distributions) == 0 {
		errs = append(errs, "status.distributions: required, e.g. [opsight]")
	}
	if len(m.Status.Codeowners.Active) == 0 {
		errs = append(errs, "status.codeowners.active: required")
	}
	slices.Sort(errs)
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// StabilityOf returns the level metadata.yaml gives a signal ("" when the
// component does not support it).
func (m Metadata) StabilityOf(signal string) string {
	for level, sigs := range m.Status.Stability {
		if slices.Contains(sigs, signal) {
			return level
		}
	}
	return ""
}

// StabilityCell renders the README status table's Stability cell:
// "alpha: logs, traces", levels in Levels order joined by "; ".
func (m Metadata) StabilityCell() string {
	var parts []string
	for _, level := range Levels {
		if sigs := m.Status.Stability[level]; len(sigs) > 0 {
			parts = append(parts, level+": "+strings.Join(sigs, ", "))
		}
	}
	return strings.Join(parts, "; ")
}
