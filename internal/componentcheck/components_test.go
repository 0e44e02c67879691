package componentcheck_test

import (
	"path/filepath"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"

	"github.com/opsight/opsight/collector/exporter/localfileexporter"
	"github.com/opsight/opsight/collector/exporter/lokiexporter"
	"github.com/opsight/opsight/collector/exporter/redmetricsexporter"
	"github.com/opsight/opsight/collector/extension/opsightmetricsextension"
	"github.com/opsight/opsight/collector/processor/adaptivesamplingprocessor"
	"github.com/opsight/opsight/collector/processor/operatorenrichprocessor"
	"github.com/opsight/opsight/collector/receiver/operatorlogsreceiver"
	"github.com/opsight/opsight/internal/componentcheck"
)

// components are opsight's own collector components and their folders.
var components = []struct {
	dir     string
	factory component.Factory
}{
	{"receiver/operatorlogsreceiver", operatorlogsreceiver.NewFactory()},
	{"processor/operatorenrichprocessor", operatorenrichprocessor.NewFactory()},
	{"processor/adaptivesamplingprocessor", adaptivesamplingprocessor.NewFactory()},
	{"exporter/lokiexporter", lokiexporter.NewFactory()},
	{"exporter/localfileexporter", localfileexporter.NewFactory()},
	{"exporter/redmetricsexporter", redmetricsexporter.NewFactory()},
	{"extension/opsightmetricsextension", opsightmetricsextension.NewFactory()},
}

func dir(d string) string { return filepath.Join("..", "..", "collector", d) }

// TestComponentFolders: every folder under collector/<class>/ with a
// metadata.yaml is in the list above, so a new component gets these tests.
func TestComponentFolders(t *testing.T) {
	found, err := filepath.Glob(filepath.Join("..", "..", "collector", "*", "*", "metadata.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, c := range components {
		listed[filepath.Join(dir(c.dir), "metadata.yaml")] = true
	}
	for _, f := range found {
		if !listed[f] {
			t.Errorf("%s: component not listed in components_test.go", f)
		}
	}
	if len(found) != len(components) {
		t.Errorf("%d metadata.yaml files, %d components listed", len(found), len(components))
	}
}

func TestMetadata(t *testing.T) {
	for _, c := range components {
		t.Run(c.dir, func(t *testing.T) {
			m, err := componentcheck.ReadMetadata(filepath.Join(dir(c.dir), "metadata.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			if err := componentcheck.CheckFactory(m, c.factory); err != nil {
				t.Errorf("metadata.yaml and NewFactory disagree:\n%v", err)
			}
			if err := componentcheck.CheckReadme(m, filepath.Join(dir(c.dir), "README.md")); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestConfigStruct(t *testing.T) {
	for _, c := range components {
		t.Run(c.dir, func(t *testing.T) {
			if err := componenttest.CheckConfigStruct(c.factory.CreateDefaultConfig()); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestLifecycle(t *testing.T) {
	for _, c := range components {
		t.Run(c.dir, func(t *testing.T) {
			m, err := componentcheck.ReadMetadata(filepath.Join(dir(c.dir), "metadata.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			componentcheck.Lifecycle(t, c.factory, componentcheck.TestConfig(t, c.factory, m))
		})
	}
}
