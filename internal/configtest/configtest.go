// Package configtest loads a component's test configuration the way the
// collector does: a section of testdata/<file> unmarshalled over the
// factory's defaults, then validated with confmap.Validate (the config's
// Validate and those of its nested structs).
package configtest

import (
	"path/filepath"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
)

// Load reads section id of testdata/file ("" = the whole file) into the
// defaults and validates it. A missing file or section fails the test; an
// unmarshal or validation error is returned for the test to check.
func Load[T any](t testing.TB, defaults component.CreateDefaultConfigFunc, file, id string) (*T, error) {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", file))
	if err != nil {
		t.Fatalf("loading %s: %v", file, err)
	}
	if id != "" {
		if cm, err = cm.Sub(id); err != nil {
			t.Fatalf("%s: no section %q: %v", file, id, err)
		}
	}
	cfg, ok := defaults().(*T)
	if !ok {
		t.Fatalf("default config is %T, not *%T", defaults(), *new(T))
	}
	if err := cm.Unmarshal(cfg); err != nil {
		return nil, err
	}
	return cfg, confmap.Validate(cfg)
}
