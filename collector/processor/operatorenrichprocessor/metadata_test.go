package operatorenrichprocessor

import (
	"os"
	"strings"
	"testing"
)

// metadata.yaml and the factory must agree on the type and stability.
func TestMetadataMatchesFactory(t *testing.T) {
	b, err := os.ReadFile("metadata.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := NewFactory()
	if !strings.Contains(s, "type: "+f.Type().String()+"\n") {
		t.Errorf("metadata.yaml type differs from the factory's %q", f.Type())
	}
	want := strings.ToLower(f.LogsStability().String()) + ": [logs, traces]"
	if !strings.Contains(s, want) || f.TracesStability() != f.LogsStability() {
		t.Errorf("metadata.yaml stability differs from the factory's (%q)", want)
	}
}
