package componentcheck

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"
)

func TestReadMetadata(t *testing.T) {
	tests := []struct{ file, wantErr string }{
		{"good.yaml", ""},
		{"bad_unknown_key.yaml", "field distribution not found"},
		{"bad_level.yaml", "status.stability.alfa: not a level"},
		{"bad_signal_twice.yaml", "logs is listed under both"},
		{"bad_class.yaml", `status.class: "connector" is not one of`},
		{"bad_signal.yaml", `"extension" is not a signal of a receiver`},
		{"bad_no_type.yaml", "type: required"},
		{"bad_no_codeowners.yaml", "status.codeowners.active: required"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			m, err := ReadMetadata(filepath.Join("testdata", tt.file))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if m.Type != "sample" || m.StabilityOf("traces") != "beta" || m.StabilityOf("metrics") != "" {
					t.Errorf("parsed %+v", m)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func sampleFactory(logs, traces component.StabilityLevel) receiver.Factory {
	var opts []receiver.FactoryOption
	if logs != component.StabilityLevelUndefined {
		opts = append(opts, receiver.WithLogs(func(context.Context, receiver.Settings, component.Config, consumer.Logs) (receiver.Logs, error) {
			return nil, nil
		}, logs))
	}
	if traces != component.StabilityLevelUndefined {
		opts = append(opts, receiver.WithTraces(func(context.Context, receiver.Settings, component.Config, consumer.Traces) (receiver.Traces, error) {
			return nil, nil
		}, traces))
	}
	return receiver.NewFactory(component.MustNewType("sample"), func() component.Config { return &struct{}{} }, opts...)
}

func TestCheckFactory(t *testing.T) {
	m, err := ReadMetadata(filepath.Join("testdata", "good.yaml")) // alpha: [logs], beta: [traces]
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		f       component.Factory
		wantErr string
	}{
		{"agrees", sampleFactory(component.StabilityLevelAlpha, component.StabilityLevelBeta), ""},
		{"other level", sampleFactory(component.StabilityLevelBeta, component.StabilityLevelBeta), "logs is alpha in metadata.yaml, beta in the factory"},
		{"signal not created", sampleFactory(component.StabilityLevelAlpha, component.StabilityLevelUndefined), "lists traces (beta), which the factory does not create"},
		{"other type", receiver.NewFactory(component.MustNewType("other"), func() component.Config { return &struct{}{} },
			receiver.WithLogs(func(context.Context, receiver.Settings, component.Config, consumer.Logs) (receiver.Logs, error) {
				return nil, nil
			}, component.StabilityLevelAlpha),
			receiver.WithTraces(func(context.Context, receiver.Settings, component.Config, consumer.Traces) (receiver.Traces, error) {
				return nil, nil
			}, component.StabilityLevelBeta)),
			`type: metadata.yaml says "sample", the factory "other"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckFactory(m, tt.f)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("CheckFactory = %v, want %q", err, tt.wantErr)
			}
		})
	}
	m.Status.Stability["alpha"] = append(m.Status.Stability["alpha"], "metrics")
	if err := CheckFactory(m, sampleFactory(component.StabilityLevelAlpha, component.StabilityLevelBeta)); err == nil || !strings.Contains(err.Error(), "lists metrics (alpha)") {
		t.Errorf("metrics listed but not created: %v", err)
	}
}

func TestCheckReadme(t *testing.T) {
	m, err := ReadMetadata(filepath.Join("testdata", "good.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ file, wantErr string }{
		{"README_good.md", ""},
		{"README_bad_stability.md", `status table Stability is "alpha: logs, traces"; metadata.yaml says "alpha: logs; beta: traces"`},
		{"README_no_type.md", "no Type row"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			err := CheckReadme(m, filepath.Join("testdata", tt.file))
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("CheckReadme = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestConfigDiff(t *testing.T) {
	type inner struct {
		N    int
		Tags []string
	}
	type cfg struct {
		Name  string
		In    inner
		ID    component.ID // its state is unexported
		Extra map[string]string
		_     struct{}
	}
	base := func() *cfg {
		return &cfg{Name: "a", In: inner{1, []string{"x"}}, ID: component.MustNewID("file_storage"), Extra: map[string]string{"k": "v"}}
	}
	for _, tt := range []struct {
		name string
		edit func(*cfg)
		want string // a substring of the diff; "" = no difference
	}{
		{"equal", func(*cfg) {}, ""},
		{"top field", func(c *cfg) { c.Name = "b" }, "Name"},
		{"nested slice element", func(c *cfg) { c.In.Tags[0] = "y" }, "Tags"},
		{"unexported state", func(c *cfg) { c.ID = component.MustNewIDWithName("file_storage", "x") }, "ID"},
		{"map", func(c *cfg) { c.Extra["k"] = "w" }, "Extra"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := base()
			tt.edit(got)
			d := ConfigDiff(base(), got)
			if tt.want == "" && d != "" || tt.want != "" && !strings.Contains(d, tt.want) {
				t.Errorf("ConfigDiff = %q, want one naming %q", d, tt.want)
			}
		})
	}
}
